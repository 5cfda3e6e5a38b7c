//! Resource TTLs with a real Envoy, over State of the World and Delta: resources labelled
//! `bosun.io/xds-ttl` (a cluster and a listener) stay in Envoy while `bosun serve` sends
//! heartbeats (for several TTLs), and Envoy drops them, and only them, once the TTL passes after
//! Bosun is killed. (Envoy 1.40 acts on the expiry of clusters and listeners; it ignores that of
//! endpoints and, over Delta, of route configurations, and crashes on that of a route
//! configuration over SotW, which Bosun therefore sends it without a TTL.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::{AdsApi, start_envoy_with_admin};
use common::{Backend, Bosun, Proc, eventually, free_port, http_get};

/// The TTL of the resources that have one.
const TTL: Duration = Duration::from_secs(3);

/// A cluster with a TTL (static, so it needs nothing else), a cluster without one on the
/// backend at `port`, a route configuration sending everything to the latter, and a listener
/// with a TTL on `listener_port` using it.
fn documents(port: u16, listener_port: u16) -> String {
    format!(
        r#"
kind: Cluster
metadata: {{ name: ttl-cluster, labels: {{ bosun.io/xds-ttl: 3s }} }}
spec:
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: ttl-cluster
    endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9 }} }} }} }} ] }} ]
---
kind: Cluster
metadata: {{ name: steady }}
spec:
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: steady
    endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ]
---
kind: RouteConfiguration
metadata: {{ name: local_route }}
spec:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: steady }} }} ]
---
kind: Listener
metadata: {{ name: ingress, labels: {{ bosun.io/xds-ttl: 3s }} }}
spec:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        rds: {{ route_config_name: local_route, config_source: {{ ads: {{}}, resource_api_version: V3 }} }}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

/// What Envoy holds, seen from its admin API and its listener.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    ttl_cluster: bool,
    steady: bool,
    /// The status of a request through the listener (`None`: nothing listens).
    through_listener: Option<u16>,
}

fn seen(admin: SocketAddr, ingress: SocketAddr) -> Option<Seen> {
    let (status, body) = http_get(admin, "/clusters").ok()?;
    if status != 200 {
        return None;
    }
    let has = |prefix: &str| body.lines().any(|l| l.starts_with(prefix));
    Some(Seen {
        ttl_cluster: has("ttl-cluster::"),
        steady: has("steady::"),
        through_listener: http_get(ingress, "/").ok().map(|(status, _)| status),
    })
}

fn envoy_keeps_resources_while_heartbeats_come_and_drops_them_after_the_ttl(api: AdsApi) {
    let work = tempfile::tempdir().expect("tempdir");
    let backend = Backend::start("ok");
    let mut bosun = Bosun::start(work.path(), &["--xds-heartbeat-interval", "1"]);
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(&documents(backend.port, port)));
    assert!(ok, "apply failed: {out}{err}");
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let envoy: Proc = start_envoy_with_admin(work.path(), bosun.xds_port, api, admin.port());
    let report = |what: &str, bosun: &Bosun| {
        format!(
            "{what} over {api:?}: {:?}\n--- bosun ---\n{}\n--- envoy ---\n{}",
            seen(admin, ingress),
            bosun.proc.output(),
            envoy.output()
        )
    };
    let all = Seen { ttl_cluster: true, steady: true, through_listener: Some(200) };
    assert!(
        eventually(Duration::from_secs(30), || seen(admin, ingress).filter(|s| *s == all)).is_some(),
        "{}",
        report("Envoy never had every resource", &bosun)
    );

    // Three TTLs later everything is still there: the heartbeats renewed the TTLs.
    std::thread::sleep(TTL * 3);
    assert_eq!(seen(admin, ingress), Some(all), "{}", report("a resource expired while Bosun ran", &bosun));
    assert!(bosun.metric("bosun_xds_heartbeats_total") >= 2.0, "{}", report("no heartbeats counted", &bosun));

    // Bosun is gone: after the TTL, Envoy drops the cluster and the listener that had one; the
    // rest stays.
    let _ = bosun.proc.child.kill();
    let _ = bosun.proc.child.wait();
    let expected = Seen { ttl_cluster: false, steady: true, through_listener: None };
    assert!(
        eventually(TTL + Duration::from_secs(10), || seen(admin, ingress).filter(|s| *s == expected)).is_some(),
        "{}",
        report("Envoy kept a resource past its TTL", &bosun)
    );
}
#[test]
fn sotw_envoy_keeps_resources_while_heartbeats_come_and_drops_them_after_the_ttl() {
    envoy_keeps_resources_while_heartbeats_come_and_drops_them_after_the_ttl(AdsApi::Sotw);
}

#[test]
fn delta_envoy_keeps_resources_while_heartbeats_come_and_drops_them_after_the_ttl() {
    envoy_keeps_resources_while_heartbeats_come_and_drops_them_after_the_ttl(AdsApi::Delta);
}
