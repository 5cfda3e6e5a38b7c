//! End to end with a real Envoy: Bosun serves a listener, a route and an EDS cluster from a
//! resources directory; traffic follows edits of the directory; a resource Envoy rejects is
//! NACKed, shown in `/status`, not resent, and traffic keeps flowing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::{LISTENER_TYPE, eds_cluster, expect_body, listener, route, start_envoy};
use common::{Backend, Bosun, eventually, free_port, write_atomic};

#[test]
fn envoy_follows_the_resources_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("resources");
    std::fs::create_dir(&dir).expect("mkdir");
    let one = Backend::start("one");
    let two = Backend::start("two");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();

    std::fs::write(dir.join("listener.yaml"), listener("ingress", port)).expect("write");
    std::fs::write(dir.join("route.yaml"), route("alpha")).expect("write");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", one.port)).expect("write");

    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);
    let envoy = start_envoy(work.path(), bosun.xds_port);
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(30));

    // A change of endpoint: alpha now points at the second backend.
    write_atomic(&dir.join("alpha.yaml"), &eds_cluster("alpha", two.port));
    expect_body(&envoy, &bosun, ingress, "two", Duration::from_secs(5));

    // A change of route: to a new cluster beta, on the first backend.
    write_atomic(&dir.join("beta.yaml"), &eds_cluster("beta", one.port));
    write_atomic(&dir.join("route.yaml"), &route("beta"));
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(5));

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
