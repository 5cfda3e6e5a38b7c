//! Envoy for the end-to-end tests: resources in Envoy's own YAML, a bootstrap that points Envoy
//! at Bosun over ADS, and waiting for traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Backend, Bosun, Proc, eventually, free_port, http_get, write_atomic};

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

pub fn listener(name: &str, port: u16) -> String {
    http_listener(name, port, "")
}

/// A listener whose HTTP connection manager uses RDS `local_route` and runs `filters` (items of
/// `http_filters`, indented as such) before the router.
pub fn http_listener(name: &str, port: u16, filters: &str) -> String {
    format!(
        r#"
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: {name}
address:
  socket_address: {{ address: 127.0.0.1, port_value: {port} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress
      rds:
        route_config_name: local_route
        config_source: {{ ads: {{}}, resource_api_version: V3 }}
      http_filters:{filters}
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

pub fn route(cluster: &str) -> String {
    format!(
        r#"
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: local_route
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {{ prefix: "/" }}
    route: {{ cluster: {cluster} }}
"#
    )
}

/// An EDS cluster and its endpoints, in Envoy's file-based xDS format.
pub fn eds_cluster(name: &str, backend_port: u16) -> String {
    format!(
        r#"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: {name}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config:
    eds_config: {{ ads: {{}}, resource_api_version: V3 }}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: {{ address: 127.0.0.1, port_value: {backend_port} }}
"#
    )
}

/// The ADS protocol variant Envoy speaks to Bosun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdsApi {
    /// State of the World (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`).
    Delta,
}

impl AdsApi {
    fn api_type(self) -> &'static str {
        match self {
            AdsApi::Sotw => "GRPC",
            AdsApi::Delta => "DELTA_GRPC",
        }
    }
}

pub fn envoy_bootstrap(xds_port: u16, admin_port: u16, api: AdsApi) -> String {
    let api_type = api.api_type();
    format!(
        r#"
node: {{ id: envoy-e2e, cluster: edge }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [ {{ envoy_grpc: {{ cluster_name: xds }} }} ]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {xds_port} }}
"#
    )
}

pub fn start_envoy(work: &Path, xds_port: u16) -> Proc {
    start_envoy_with(work, xds_port, AdsApi::Sotw)
}

/// Starts Envoy speaking `api` to Bosun's ADS on `xds_port`.
pub fn start_envoy_with(work: &Path, xds_port: u16, api: AdsApi) -> Proc {
    start_envoy_with_admin(work, xds_port, api, free_port())
}

/// Starts Envoy speaking `api` to Bosun's ADS on `xds_port`, its admin API on `admin_port`.
pub fn start_envoy_with_admin(work: &Path, xds_port: u16, api: AdsApi, admin_port: u16) -> Proc {
    start_envoy_with_bootstrap(work, &envoy_bootstrap(xds_port, admin_port, api))
}

/// Starts Envoy with `bootstrap` (written to `work/envoy.yaml`), logging to `work/envoy.log`.
pub fn start_envoy_with_bootstrap(work: &Path, bootstrap: &str) -> Proc {
    let path = work.join("envoy.yaml");
    std::fs::write(&path, bootstrap).expect("bootstrap");
    let bootstrap = path;
    let mut cmd = Command::new(super::envoy_binary());
    cmd.arg("-c").arg(&bootstrap).args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"]);
    Proc::spawn("envoy", cmd, work.join("envoy.log"))
}

/// Waits until a request through Envoy gets `expected` as the body.
pub fn expect_body(envoy: &Proc, bosun: &Bosun, addr: SocketAddr, expected: &str, within: Duration) {
    let got = eventually(within, || http_get(addr, "/").ok().filter(|(s, b)| *s == 200 && b == expected));
    assert!(
        got.is_some(),
        "Envoy never answered {expected:?}; last: {:?}\n--- bosun ---\n{}\n--- envoy ---\n{}",
        http_get(addr, "/"),
        bosun.proc.output(),
        envoy.output()
    );
}

/// What an Envoy end-to-end test starts from: a working directory with an empty resources
/// directory, two backends answering `one` and `two`, and a free port for Envoy's listener.
pub struct Scene {
    pub work: tempfile::TempDir,
    pub dir: std::path::PathBuf,
    pub one: Backend,
    pub two: Backend,
    pub port: u16,
    pub ingress: SocketAddr,
}

impl Scene {
    pub fn new() -> Scene {
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path().join("resources");
        std::fs::create_dir(&dir).expect("mkdir");
        let port = free_port();
        Scene {
            work,
            dir,
            one: Backend::start("one"),
            two: Backend::start("two"),
            port,
            ingress: ([127, 0, 0, 1], port).into(),
        }
    }
}

/// The main end-to-end scenario with Envoy speaking `api`: Bosun serves a listener, a route and
/// an EDS cluster from a resources directory; traffic follows edits of the directory; a resource
/// Envoy rejects is NACKed, shown in `/status`, not resent, and traffic keeps flowing.
pub fn envoy_follows_the_resources_directory(api: AdsApi) {
    let Scene { work, dir, one, two, port, ingress } = Scene::new();

    std::fs::write(dir.join("listener.yaml"), listener("ingress", port)).expect("write");
    std::fs::write(dir.join("route.yaml"), route("alpha")).expect("write");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", one.port)).expect("write");

    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);
    let admin_port = free_port();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let envoy = start_envoy_with_admin(work.path(), bosun.xds_port, api, admin_port);
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(30));
    // `bosun status` (CSDS's tracker) sees the node in sync, over either protocol.
    let synced = eventually(Duration::from_secs(10), || {
        let (ok, out, _) = bosun.cli(&["status", "-o", "json"], None);
        let nodes: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        let node = nodes.as_array()?.first()?.clone();
        ["CDS", "EDS", "LDS", "RDS"].iter().all(|t| node["types"][t]["state"] == "SYNCED").then_some(())
    });
    assert!(synced.is_some(), "bosun status never showed every type SYNCED over {api:?}");

    // A change of endpoint: alpha now points at the second backend.
    write_atomic(&dir.join("alpha.yaml"), &eds_cluster("alpha", two.port));
    expect_body(&envoy, &bosun, ingress, "two", Duration::from_secs(5));

    // A change of route: to a new cluster beta, on the first backend.
    write_atomic(&dir.join("beta.yaml"), &eds_cluster("beta", one.port));
    write_atomic(&dir.join("route.yaml"), &route("beta"));
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(5));

    // An updated cluster (same endpoints) finishes warming: Envoy gets its endpoints again.
    write_atomic(
        &dir.join("beta.yaml"),
        &eds_cluster("beta", one.port).replace("connect_timeout: 1s", "connect_timeout: 2s"),
    );
    let warmed = eventually(Duration::from_secs(5), || {
        let modified = envoy_stat(admin, "cluster_manager.cluster_modified")?;
        let warming = envoy_stat(admin, "cluster_manager.warming_clusters")?;
        (modified > 0 && warming == 0).then_some(())
    });
    assert!(
        warmed.is_some(),
        "the updated cluster did not warm: {:?}\n{}",
        envoy_stat(admin, "cluster_manager.warming_clusters"),
        envoy.output()
    );
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(2));

    // /status shows the node with what it accepted.
    let status = bosun.status();
    let node = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node_id"] == "envoy-e2e"))
        .cloned()
        .unwrap_or_else(|| panic!("node missing from /status: {status}"));
    assert_eq!(node["cluster"], "edge");
    let lds = &node["types"][LISTENER_TYPE];
    assert_eq!(lds["acked_version"], lds["sent_version"], "{node}");

    // A second listener on the same address: Envoy rejects it.
    let nacks_before = bosun.metric("bosun_xds_nacks_total{type=\"Listener\"}");
    write_atomic(&dir.join("dup.yaml"), &listener("ingress-dup", port));
    let nack = eventually(Duration::from_secs(10), || {
        let status = bosun.status();
        let node = status["nodes"].as_array()?.iter().find(|n| n["node_id"] == "envoy-e2e")?.clone();
        let nack = node["types"][LISTENER_TYPE]["last_nack"].clone();
        nack["message"].as_str().map(|m| (m.to_owned(), node))
    });
    let (message, node) = nack.unwrap_or_else(|| panic!("no NACK in /status: {}\n{}", bosun.status(), envoy.output()));
    assert!(!message.is_empty());
    assert!(bosun.metric("bosun_xds_nacks_total{type=\"Listener\"}") > nacks_before);
    let lds = &node["types"][LISTENER_TYPE];
    assert_ne!(lds["acked_version"], lds["sent_version"], "the rejected version is not the accepted one: {node}");

    // Not resent: no new listener response while nothing changes.
    let sent = bosun.metric("bosun_xds_responses_total{type=\"Listener\"}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bosun.metric("bosun_xds_responses_total{type=\"Listener\"}"), sent, "the rejected version was resent");
    // Traffic keeps flowing on the last good configuration.
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(2));

    // Removing the bad listener is a new version, which Envoy accepts.
    std::fs::remove_file(dir.join("dup.yaml")).expect("rm");
    let synced = eventually(Duration::from_secs(5), || {
        let status = bosun.status();
        let node = status["nodes"].as_array()?.iter().find(|n| n["node_id"] == "envoy-e2e")?.clone();
        let lds = &node["types"][LISTENER_TYPE];
        (lds["acked_version"] == lds["sent_version"] && lds["last_nack"].is_null()).then_some(())
    });
    assert!(synced.is_some(), "Envoy did not accept the fixed listeners: {}", bosun.status());
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(2));
}

/// The value of Envoy's stat `name`, read from its admin API at `admin`.
pub fn envoy_stat(admin: SocketAddr, name: &str) -> Option<u64> {
    let (status, body) = http_get(admin, &format!("/stats?filter=^{name}$")).ok()?;
    if status != 200 {
        return None;
    }
    body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
}
