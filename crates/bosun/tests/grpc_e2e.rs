//! Proxyless gRPC clients against Bosun: Python `grpcio` (C-core's xDS client) and Node
//! `@grpc/grpc-js-xds` resolve `xds:///echo` through Bosun (LDS with an `api_listener`, RDS or an
//! inline route configuration, CDS, EDS from the resources directory), call a gRPC backend, and
//! follow an endpoint change in the directory to another backend on the same channel.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Bosun, Proc, eventually, free_port, write_atomic};

/// How long a client may take to resolve `xds:///echo` and reach the first backend.
const FIRST_CALL: Duration = Duration::from_secs(30);
/// How long an endpoint change may take to reach a client.
const FOLLOW_CHANGE: Duration = Duration::from_secs(15);

/// `$BOSUN_TEST_PYTHON`, the venv's Python with grpcio (scripts/test.sh installs it).
fn python() -> PathBuf {
    match std::env::var_os("BOSUN_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!("BOSUN_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs grpcio"),
    }
}

/// `$BOSUN_TEST_NODE_MODULES`, where scripts/test.sh installed @grpc/grpc-js-xds.
fn node_modules() -> PathBuf {
    match std::env::var_os("BOSUN_TEST_NODE_MODULES") {
        Some(path) => PathBuf::from(path),
        None => panic!("BOSUN_TEST_NODE_MODULES is not set: run the tests with scripts/test.sh, which installs it"),
    }
}

/// The test clients and backend: the workspace's `tests/grpc`.
fn grpc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/grpc")
}

/// The LDS resource a client of `xds:///echo` asks for: an `api_listener` whose connection
/// manager takes its routes over RDS, or carries them inline.
fn api_listener(inline_routes: bool) -> String {
    let routes = if inline_routes {
        format!("route_config:\n{}", indent(&route_body(), 6))
    } else {
        "rds:\n        route_config_name: echo-routes\n        config_source: { ads: {}, resource_api_version: V3 }"
            .to_owned()
    };
    format!(
        r#"
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: echo
api_listener:
  api_listener:
    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
    {routes}
    http_filters:
    - name: router
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

fn route_body() -> String {
    r#"name: echo-routes
virtual_hosts:
- name: echo
  domains: ["*"]
  routes:
  - match: { prefix: "" }
    route: { cluster: echo-backends }
"#
    .to_owned()
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines().map(|l| format!("{}{l}", " ".repeat(spaces))).collect::<Vec<_>>().join("\n")
}

/// The cluster and its endpoints: the backend on `port`, in a weighted locality (gRPC ignores
/// localities without a weight).
fn backends(port: u16) -> String {
    format!(
        r#"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: echo-backends
  type: EDS
  lb_policy: ROUND_ROBIN
  eds_cluster_config:
    eds_config: {{ ads: {{}}, resource_api_version: V3 }}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: echo-backends
  endpoints:
  - locality: {{ region: local }}
    load_balancing_weight: 1
    lb_endpoints:
    - endpoint:
        address:
          socket_address: {{ address: 127.0.0.1, port_value: {port} }}
"#
    )
}

/// A gRPC xDS bootstrap pointing at Bosun's xDS port.
fn bootstrap(xds_port: u16, node_id: &str) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("127.0.0.1:{xds_port}"),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": node_id, "cluster": "proxyless", "locality": {"region": "local"}},
    })
    .to_string()
}

/// A backend that answers with `name`, once it serves.
fn echo_server(work: &Path, name: &'static str) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(grpc_dir().join("echo_server.py")).arg(port.to_string()).arg(name);
    let server = Proc::spawn("echo server", cmd, work.join(format!("echo-{name}.log")));
    let ready = eventually(Duration::from_secs(20), || server.output().contains("ready").then_some(()));
    assert!(ready.is_some(), "the echo server {name} did not start:\n{}", server.output());
    (server, port)
}

/// The reply of the client's last successful call.
fn last_reply(client: &Proc) -> Option<String> {
    client.output().lines().rev().find_map(|l| l.strip_prefix("ok ").map(str::to_owned))
}

fn expect_reply(client: &Proc, bosun: &Bosun, expected: &str, within: Duration) {
    let got = eventually(within, || (last_reply(client).as_deref() == Some(expected)).then_some(()));
    assert!(
        got.is_some(),
        "the client never got {expected:?}\n--- client ---\n{}\n--- bosun ---\n{}",
        client.output(),
        bosun.proc.output()
    );
}

/// Runs one proxyless client (`client` with its arguments, given `GRPC_XDS_BOOTSTRAP`) through
/// a backend change, and checks `bosun status` shows it SYNCED on every type it uses.
fn proxyless_client_follows_bosun(name: &'static str, inline_routes: bool, client: impl FnOnce(&Path) -> Command) {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("resources");
    std::fs::create_dir(&dir).expect("mkdir");
    let (_one, one_port) = echo_server(work.path(), "one");
    let (_two, two_port) = echo_server(work.path(), "two");
    std::fs::write(dir.join("listener.yaml"), api_listener(inline_routes)).expect("write");
    if !inline_routes {
        std::fs::write(
            dir.join("routes.yaml"),
            format!("\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n{}", route_body()),
        )
        .expect("write");
    }
    std::fs::write(dir.join("backends.yaml"), backends(one_port)).expect("write");
    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);

    let bootstrap_file = work.path().join("bootstrap.json");
    std::fs::write(&bootstrap_file, bootstrap(bosun.xds_port, name)).expect("bootstrap");
    let mut cmd = client(&bootstrap_file);
    cmd.env("GRPC_XDS_BOOTSTRAP", &bootstrap_file);
    let mut client = Proc::spawn(name, cmd, work.path().join(format!("{name}.log")));
    expect_reply(&client, &bosun, "one", FIRST_CALL);

    // The endpoints move to the second backend: the same channel follows.
    write_atomic(&dir.join("backends.yaml"), &backends(two_port));
    expect_reply(&client, &bosun, "two", FOLLOW_CHANGE);

    // `bosun status` shows the client, SYNCED on what it subscribed to.
    let (ok, out, err) = bosun.cli(&["status", "-o", "json"], None);
    assert!(ok, "{err}");
    let nodes: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let node = nodes.as_array().and_then(|n| n.iter().find(|n| n["node"] == name)).cloned();
    let node = node.unwrap_or_else(|| panic!("{name} missing from bosun status: {out}"));
    let types: &[&str] = if inline_routes { &["LDS", "CDS", "EDS"] } else { &["LDS", "RDS", "CDS", "EDS"] };
    for t in types {
        assert_eq!(node["types"][t]["state"], "SYNCED", "{t} of {node}");
    }
    assert!(client.terminate(Duration::from_secs(5)).is_some(), "the client did not stop on SIGTERM");
}

#[test]
fn python_grpcio_resolves_xds_through_bosun() {
    proxyless_client_follows_bosun("grpc-python", false, |_| {
        let mut cmd = Command::new(python());
        cmd.arg(grpc_dir().join("xds_client.py")).args(["xds:///echo", "120"]).env("GRPC_VERBOSITY", "ERROR");
        cmd
    });
}

#[test]
fn node_grpc_js_xds_resolves_xds_through_bosun_with_inline_routes() {
    proxyless_client_follows_bosun("grpc-node", true, |_| {
        let mut cmd = Command::new("node");
        cmd.arg(grpc_dir().join("node/xds_client.js")).args(["xds:///echo", "120"]).env("NODE_PATH", node_modules());
        cmd
    });
}
