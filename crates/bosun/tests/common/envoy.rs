//! Envoy for the end-to-end tests: resources in Envoy's own YAML, a bootstrap that points Envoy
//! at Bosun over ADS, and waiting for traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Bosun, Proc, eventually, free_port, http_get};

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

pub fn listener(name: &str, port: u16) -> String {
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
      http_filters:
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

pub fn envoy_bootstrap(xds_port: u16, admin_port: u16) -> String {
    format!(
        r#"
node: {{ id: envoy-e2e, cluster: edge }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
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
    let bootstrap = work.join("envoy.yaml");
    std::fs::write(&bootstrap, envoy_bootstrap(xds_port, free_port())).expect("bootstrap");
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
