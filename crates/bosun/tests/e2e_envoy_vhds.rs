//! On-demand VHDS with a real Envoy over Delta ADS: a request for a host Envoy cannot route
//! makes it ask Bosun for `<route configuration>/<host>`; Bosun answers with the virtual host
//! that serves the host and the request goes through. A host nobody serves gets Bosun's
//! not-found answer and a 404 at once, and is served as soon as a virtual host for it appears.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::{AdsApi, Scene, eds_cluster, envoy_stat, http_listener, start_envoy_with_admin};
use common::{Bosun, eventually, free_port, http_request, write_atomic};

/// The `on_demand` filter: a request whose host no virtual host serves asks VHDS first.
const ON_DEMAND: &str = r#"
      - name: envoy.filters.http.on_demand
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.on_demand.v3.OnDemand"#;

/// The route configuration: one virtual host in RDS, the rest from VHDS.
const ROUTE: &str = r#"
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: local_route
virtual_hosts:
- name: base
  domains: ["base.test"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: alpha }
vhds:
  config_source: { ads: {}, resource_api_version: V3 }
"#;

/// A virtual host of `local_route` for VHDS.
fn virtual_host(name: &str, domain: &str, cluster: &str) -> String {
    format!(
        r#"
"@type": type.googleapis.com/envoy.config.route.v3.VirtualHost
name: local_route/{name}
domains: ["{domain}"]
routes:
- match: {{ prefix: "/" }}
  route: {{ cluster: {cluster} }}
"#
    )
}

fn get(addr: SocketAddr, host: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", "/", &[&format!("Host: {host}")], "").ok()
}

#[test]
fn envoy_fetches_virtual_hosts_on_demand() {
    let Scene { work, dir, one, two, port, ingress } = Scene::new();
    std::fs::write(dir.join("listener.yaml"), http_listener("ingress", port, ON_DEMAND)).expect("write");
    std::fs::write(dir.join("route.yaml"), ROUTE).expect("write");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", one.port)).expect("write");
    std::fs::write(dir.join("beta.yaml"), eds_cluster("beta", two.port)).expect("write");
    std::fs::write(dir.join("late.yaml"), virtual_host("late", "late.test", "beta")).expect("write");

    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);
    let admin_port = free_port();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let envoy = start_envoy_with_admin(work.path(), bosun.xds_port, AdsApi::Delta, admin_port);
    let init_timeouts = |admin| envoy_stat(admin, "http.ingress.rds.vhds.local_route.init_fetch_timeout");
    let explain =
        |what: &str| format!("{what}\n--- bosun ---\n{}\n--- envoy ---\n{}", bosun.proc.output(), envoy.output());

    // The virtual host in RDS routes as usual.
    let base =
        eventually(Duration::from_secs(30), || get(ingress, "base.test").filter(|(s, b)| *s == 200 && b == "one"));
    assert!(base.is_some(), "{}", explain(&format!("base.test never routed: {:?}", get(ingress, "base.test"))));
    assert_eq!(init_timeouts(admin), Some(0), "{}", explain("VHDS's initial fetch was not answered"));
    let reloads = |admin| envoy_stat(admin, "http.ingress.rds.vhds.local_route.config_reload").unwrap_or(0);
    let before = reloads(admin);

    // A host Envoy does not know yet: the first request itself is answered, through VHDS.
    let late = get(ingress, "late.test");
    assert_eq!(late, Some((200, "two".to_owned())), "{}", explain("the on-demand request failed"));
    assert!(
        reloads(admin) > before,
        "{}",
        explain(&format!(
            "Envoy did not load a virtual host over VHDS: {:?}",
            common::http_get(admin, "/stats?filter=vhds")
        ))
    );

    // A host nobody serves: a 404 at once, not a request held until a timeout.
    let started = std::time::Instant::now();
    let nowhere = get(ingress, "later.test");
    assert_eq!(nowhere.as_ref().map(|(s, _)| *s), Some(404), "{}", explain("an unknown host"));
    assert!(started.elapsed() < Duration::from_secs(5), "the unknown host waited {:?}", started.elapsed());

    // It is served as soon as a virtual host for it appears.
    write_atomic(&dir.join("later.yaml"), &virtual_host("later", "later.test", "alpha"));
    let later =
        eventually(Duration::from_secs(10), || get(ingress, "later.test").filter(|(s, b)| *s == 200 && b == "one"));
    assert!(later.is_some(), "{}", explain(&format!("later.test never routed: {:?}", get(ingress, "later.test"))));

    // A virtual host Envoy fetched on demand follows its updates.
    write_atomic(&dir.join("late.yaml"), &virtual_host("late", "late.test", "alpha"));
    let moved =
        eventually(Duration::from_secs(10), || get(ingress, "late.test").filter(|(s, b)| *s == 200 && b == "one"));
    assert!(moved.is_some(), "{}", explain(&format!("late.test did not follow: {:?}", get(ingress, "late.test"))));
}
