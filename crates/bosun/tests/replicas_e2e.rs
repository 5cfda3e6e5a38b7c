//! Several replicas, one truth: two `bosun serve` processes on one shared store (PostgreSQL, etcd)
//! serve the same config; a write through replica A reaches an Envoy connected to replica B;
//! killing A leaves B serving; B restarted with SIGKILL comes back with the same versions.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::envoy::{eds_cluster, expect_body, listener, route, start_envoy};
use common::{Backend, Bosun, eventually, free_port};

fn two_replicas(work: &Path, store: &str) {
    let mut a = Bosun::start(&work.join("a"), &["--store", store]);
    let mut b = Bosun::start(&work.join("b"), &["--store", store]);
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();

    // Written through A, served by B.
    let config = format!("{}---\n{}---\n{}", listener("ingress", port), route("web"), eds_cluster("web", one.port));
    let (ok, _, err) = a.cli(&["apply", "-f", "-"], Some(&config));
    assert!(ok, "{err}");
    let envoy = start_envoy(work, b.xds_port);
    expect_body(&envoy, &b, ingress, "one", Duration::from_secs(20));
    let versions =
        eventually(Duration::from_secs(10), || b.acked_versions("envoy-e2e")).expect("Envoy ACKs every type");
    let served_by_a = a.status()["resources"]["versions"].clone();
    assert_eq!(served_by_a, b.status()["resources"]["versions"], "both replicas build the same snapshots");

    // A change through A reaches the Envoy on B.
    let (ok, _, err) = a.cli(&["apply", "-f", "-"], Some(&eds_cluster("web", two.port)));
    assert!(ok, "{err}");
    expect_body(&envoy, &b, ingress, "two", Duration::from_secs(10));

    // A dies; B keeps serving and takes writes.
    let _ = a.proc.child.kill();
    let (ok, _, err) = b.cli(&["apply", "-f", "-"], Some(&eds_cluster("web", one.port)));
    assert!(ok, "{err}");
    expect_body(&envoy, &b, ingress, "one", Duration::from_secs(10));

    // B killed with SIGKILL and restarted: Envoy reconnects and gets the same versions.
    b.kill_and_restart();
    let after = eventually(Duration::from_secs(20), || b.acked_versions("envoy-e2e")).expect("Envoy reconnects");
    assert_eq!(after, versions, "the same content gives the same versions after a restart");
    expect_body(&envoy, &b, ingress, "one", Duration::from_secs(10));
    a.kill_and_restart();
    assert_eq!(a.status()["resources"]["versions"], b.status()["resources"]["versions"]);
}

#[test]
fn two_replicas_on_postgres() {
    let work = tempfile::tempdir().expect("tempdir");
    let server = bosun_testkit::postgres::PostgresServer::start();
    two_replicas(work.path(), &server.url());
}

#[test]
fn two_replicas_on_etcd() {
    let work = tempfile::tempdir().expect("tempdir");
    let server = bosun_testkit::etcd::EtcdServer::start();
    let endpoints: Vec<String> =
        server.endpoints().iter().map(|e| e.trim_start_matches("http://").to_owned()).collect();
    two_replicas(work.path(), &format!("etcd://{}/replicas-test", endpoints.join(",")));
}
