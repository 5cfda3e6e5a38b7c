//! ADS behaviour over a real tonic client on 127.0.0.1: push ordering, warming, snapshot
//! consistency, encode-once sharing, stream errors and node grouping.

mod common;

use std::sync::Arc;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use bosun_xds::{Resource, Snapshot, SnapshotError};
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use tonic::Code;

/// The names a client subscribes to for each type in the ordering tests.
fn subscribed(type_url: &str) -> &'static [&'static str] {
    match type_url {
        CLUSTER | LISTENER => &[],
        ENDPOINT => &["c1"],
        ROUTE => &["l1-route"],
        other => panic!("unexpected {other}"),
    }
}

/// Subscribes an ADS stream to CDS, EDS, LDS and RDS, ACKs the initial responses, then sets a
/// snapshot that changes a cluster, its endpoints, a listener and its route configuration at
/// once. Returns the stream and the responses to that update, unACKed.
async fn push_everything_at_once(server: &TestServer) -> (XdsStream, Vec<DiscoveryResponse>) {
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1"])).expect("consistent");
    let mut ads = server.ads("n1").await;
    for t in [CLUSTER, ENDPOINT, LISTENER, ROUTE] {
        ads.request(t, subscribed(t), "", "").await;
    }
    let mut initial = Vec::new();
    for _ in 0..4 {
        initial.push(ads.recv().await);
    }
    let types: Vec<&str> = initial.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CLUSTER, ENDPOINT, LISTENER, ROUTE]);
    for r in &initial {
        ads.ack(r, subscribed(&r.type_url)).await;
    }
    ads.expect_no_response(QUIET).await;

    let update = Snapshot::new([
        Resource::new(&eds_cluster_with_timeout("c1", 9)),
        Resource::new(&cla("c1", 9500)),
        Resource::new(&listener("l1", "l1-route", 10500)),
        Resource::new(&route_config("l1-route", "changed.example", "c1")),
    ]);
    server.cache.set_snapshot("n1", update).expect("consistent");
    let mut pushed = Vec::new();
    for _ in 0..4 {
        pushed.push(ads.recv().await);
    }
    (ads, pushed)
}

/// 7. ADS "make before break": a snapshot that changes clusters, endpoints, listeners and
/// routes at once arrives as CDS, EDS, LDS, RDS, each with the new content and version.
#[tokio::test]
async fn ads_pushes_cds_eds_lds_rds_in_order() {
    let server = TestServer::start().await;
    let (mut ads, pushed) = push_everything_at_once(&server).await;
    let types: Vec<&str> = pushed.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CLUSTER, ENDPOINT, LISTENER, ROUTE]);
    let snap = server.cache.snapshot("n1").expect("set");
    for r in &pushed {
        assert_eq!(r.version_info, snap.version(&r.type_url), "{}", r.type_url);
    }
    assert_eq!(decode::<Cluster>(&pushed[0], "c1"), eds_cluster_with_timeout("c1", 9));
    assert_eq!(decode::<ClusterLoadAssignment>(&pushed[1], "c1"), cla("c1", 9500));
    assert_eq!(decode::<Listener>(&pushed[2], "l1"), listener("l1", "l1-route", 10500));
    assert_eq!(decode::<RouteConfiguration>(&pushed[3], "l1-route"), route_config("l1-route", "changed.example", "c1"));
    for r in &pushed {
        ads.ack(r, subscribed(&r.type_url)).await;
    }

    drop(ads);
    server.shutdown().await;
}

/// 7b (library bug). After the ordered push of 7, the client ACKs all four responses. The EDS
/// and RDS responses it ACKs were sent *after* the CDS and LDS responses, so they already
/// answer the warming clusters and listeners; nothing changed since, so nothing more must be
/// sent (DESIGN.md §2 item 4). The server instead sends EDS and RDS again, unchanged.
#[tokio::test]
async fn ads_ordered_push_is_not_followed_by_duplicate_eds_rds() {
    let server = TestServer::start().await;
    let (mut ads, pushed) = push_everything_at_once(&server).await;
    for r in &pushed {
        ads.ack(r, subscribed(&r.type_url)).await;
    }
    ads.expect_no_response(QUIET).await;

    drop(ads);
    server.shutdown().await;
}

/// 11. Warming: after a CDS update on ADS, an EDS request that looks like an ACK (current
/// nonce, same names) is answered even though the endpoints did not change. Control: the same
/// request before the CDS update gets nothing.
#[tokio::test]
async fn eds_request_after_cds_update_is_answered_while_warming() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let c1 = ads.recv().await;
    ads.ack(&c1, &[]).await;
    ads.request(ENDPOINT, &["c1"], "", "").await;
    let e1 = ads.recv().await;
    assert_eq!(e1.type_url, ENDPOINT);
    ads.ack(&e1, &["c1"]).await;
    ads.expect_no_response(QUIET).await;
    // Control: an ACK-shaped EDS request with nothing changed is not answered.
    ads.ack(&e1, &["c1"]).await;
    ads.expect_no_response(QUIET).await;

    // The cluster changes, its endpoints do not.
    server
        .cache
        .set_snapshot(
            "n1",
            Snapshot::new([Resource::new(&eds_cluster_with_timeout("c1", 5)), Resource::new(&cla("c1", 9000))]),
        )
        .expect("consistent");
    let c2 = ads.recv().await;
    assert_eq!(c2.type_url, CLUSTER);
    assert_ne!(c2.version_info, c1.version_info);
    ads.expect_no_response(QUIET).await;
    ads.ack(&c2, &[]).await;
    // Envoy re-requests the endpoints of the warming cluster with the current EDS nonce.
    ads.ack(&e1, &["c1"]).await;
    let e2 = ads.recv().await;
    assert_eq!(e2.type_url, ENDPOINT);
    assert_eq!(e2.version_info, e1.version_info, "the endpoints did not change");
    assert_ne!(e2.nonce, e1.nonce);
    assert_eq!(names(&e2), strings(&["c1"]));
    ads.ack(&e2, &["c1"]).await;
    ads.expect_no_response(QUIET).await;

    drop(ads);
    server.shutdown().await;
}

/// 8. An inconsistent snapshot (an EDS cluster without endpoints, a listener whose RDS route
/// configuration is missing) is refused with an error naming what is missing, and the previous
/// snapshot keeps being served: open streams see no change, new streams get the old content.
#[tokio::test]
async fn inconsistent_snapshot_is_refused_and_previous_kept() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1"])).expect("consistent");
    let before = server.cache.snapshot("n1").expect("set");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let c = ads.recv().await;
    ads.ack(&c, &[]).await;
    ads.request(LISTENER, &[], "", "").await;
    let l = ads.recv().await;
    ads.ack(&l, &[]).await;
    ads.expect_no_response(QUIET).await;

    // An EDS cluster whose endpoints are missing.
    let mut res = resources(&["c1"], &["l1"]);
    res.push(Resource::new(&eds_cluster("no-endpoints")));
    let err = server.cache.set_snapshot("n1", Snapshot::new(res)).expect_err("missing endpoints");
    match &err {
        SnapshotError::Inconsistent(missing) => {
            assert_eq!(missing.len(), 1, "{missing:?}");
            assert!(missing[0].contains("\"no-endpoints\"") && missing[0].contains("EDS"), "{missing:?}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    // A listener whose route configuration is missing.
    let mut res = resources(&["c1"], &["l1"]);
    res.push(Resource::new(&listener("l2", "missing-route", 10001)));
    let err = server.cache.set_snapshot("n1", Snapshot::new(res)).expect_err("missing route");
    let text = err.to_string();
    assert!(text.contains("\"l2\"") && text.contains("\"missing-route\""), "{text}");
    // Both at once: both named.
    let mut res = resources(&["c1"], &["l1"]);
    res.push(Resource::new(&eds_cluster("no-endpoints")));
    res.push(Resource::new(&listener("l2", "missing-route", 10001)));
    match server.cache.set_snapshot("n1", Snapshot::new(res)).expect_err("both missing") {
        SnapshotError::Inconsistent(missing) => assert_eq!(missing.len(), 2, "{missing:?}"),
        other => panic!("unexpected error {other:?}"),
    }

    let after = server.cache.snapshot("n1").expect("still set");
    assert!(Arc::ptr_eq(&before, &after), "the previous snapshot is kept");
    ads.expect_no_response(QUIET).await;
    let mut fresh = server.ads("n1").await;
    fresh.request(CLUSTER, &[], "", "").await;
    let fc = fresh.recv().await;
    assert_eq!(names(&fc), strings(&["c1"]));
    assert_eq!(fc.version_info, c.version_info);
    fresh.request(LISTENER, &[], "", "").await;
    let fl = fresh.recv().await;
    assert_eq!(names(&fl), strings(&["l1"]));
    assert_eq!(fl.version_info, l.version_info);

    drop(ads);
    drop(fresh);
    server.shutdown().await;
}

/// 9. Encode once, share everywhere.
///
/// Through the wire, a client can only see that 50 ADS streams of one group receive
/// byte-identical resources (the observer also reports identical response sizes). Sharing is
/// observable through the public API instead: (a) `set_snapshot` keeps the caller's encoded
/// bytes (the `Bytes` of a resource in the cache point at the same memory as the `Resource`
/// that was passed in: nothing is re-encoded); (b) a later snapshot whose clusters have the
/// same content — even re-encoded from scratch — reuses the previous per-type set
/// (`Arc::ptr_eq` on `Snapshot::resources(CLUSTER)`), including its prebuilt body and creation
/// time, while the changed listeners get a new set; and (c) since the set is the same, the
/// streams that ACKed the clusters are not woken and receive nothing.
#[tokio::test]
async fn resources_are_encoded_once_and_shared() {
    const STREAMS: usize = 50;
    let server = TestServer::start().await;
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let mut s = server.ads("shared").await;
        s.request(CLUSTER, &[], "", "").await;
        streams.push(s);
    }
    for s in &mut streams {
        s.expect_no_response(std::time::Duration::from_millis(20)).await;
    }

    let c1 = Resource::new(&eds_cluster("c1"));
    let mut res = resources(&["c1", "c2", "c3"], &["l1"]);
    res[0] = c1.clone();
    server.cache.set_snapshot("shared", Snapshot::new(res)).expect("consistent");
    let snap = server.cache.snapshot("shared").expect("set");
    let stored = snap.resources(CLUSTER).expect("clusters").get("c1").expect("c1");
    assert_eq!(stored.value().as_ptr(), c1.value().as_ptr(), "the cache holds the caller's encoded bytes");

    let mut responses = Vec::new();
    for s in &mut streams {
        responses.push(s.recv().await);
    }
    let first = &responses[0];
    assert_eq!(names(first), strings(&["c1", "c2", "c3"]));
    for r in &responses {
        assert_eq!(r.type_url, CLUSTER);
        assert_eq!(r.version_info, snap.version(CLUSTER));
        assert_eq!(r.resources, first.resources, "every stream gets identical resource bytes");
    }
    let events = server.observer.responses(CLUSTER);
    assert_eq!(events.len(), STREAMS);
    let sizes: std::collections::BTreeSet<usize> = events
        .iter()
        .map(|e| match e {
            Event::Response { bytes, .. } => *bytes,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(sizes.len(), 1, "one response size for every stream: {sizes:?}");
    for (s, r) in streams.iter_mut().zip(&responses) {
        s.ack(r, &[]).await;
    }

    // Same clusters, encoded again from scratch; the listener changes.
    let clusters_before = snap.resources(CLUSTER).expect("clusters").clone();
    let listeners_before = snap.resources(LISTENER).expect("listeners").clone();
    let mut res = resources(&["c1", "c2", "c3"], &["l1"]);
    for r in &mut res {
        if r.type_url() == LISTENER {
            *r = Resource::new(&listener("l1", "l1-route", 12345));
        }
    }
    server.cache.set_snapshot("shared", Snapshot::new(res)).expect("consistent");
    let snap2 = server.cache.snapshot("shared").expect("set");
    assert!(!Arc::ptr_eq(&snap, &snap2));
    assert!(
        Arc::ptr_eq(snap2.resources(CLUSTER).expect("clusters"), &clusters_before),
        "unchanged clusters keep their set (and its prebuilt body)"
    );
    assert_eq!(snap2.resources(CLUSTER).expect("clusters").created(), clusters_before.created());
    assert!(!Arc::ptr_eq(snap2.resources(LISTENER).expect("listeners"), &listeners_before));
    assert_ne!(snap2.version(LISTENER), snap.version(LISTENER));

    futures::future::join_all(streams.iter_mut().map(|s| s.expect_no_response(QUIET))).await;

    drop(streams);
    server.shutdown().await;
}

/// A client cannot grow the server without bound by asking for made-up type URLs: the 33rd
/// type on one stream ends it with RESOURCE_EXHAUSTED.
#[tokio::test]
async fn a_stream_cannot_subscribe_to_unbounded_types() {
    let server = TestServer::start().await;
    let mut ads = server.ads("n1").await;
    for i in 0..32 {
        ads.request(&format!("type.googleapis.com/made.up.Type{i}"), &["x"], "", "").await;
    }
    ads.expect_no_response(QUIET).await;
    ads.request("type.googleapis.com/made.up.OneTooMany", &["x"], "", "").await;
    let status = ads.recv_status().await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("type_url"), "{status:?}");
    drop(ads);
    server.shutdown().await;
}

/// 12a. An ADS request without a type URL ends the stream with INVALID_ARGUMENT.
#[tokio::test]
async fn ads_request_without_type_url_is_invalid_argument() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request("", &[], "", "").await;
    let status = ads.recv_status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("type_url"), "{status:?}");
    server
        .observer
        .wait_for("the stream to close with INVALID_ARGUMENT", |ev| {
            ev.iter().any(|e| matches!(e, Event::Closed { error: Some(Code::InvalidArgument), .. }))
        })
        .await;

    drop(ads);
    server.shutdown().await;
}

/// 12b. A first request without a node ends the stream with INVALID_ARGUMENT.
#[tokio::test]
async fn first_request_without_node_is_invalid_argument() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.send_raw(request(CLUSTER, &[], "", "")).await;
    let status = ads.recv_status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("node"), "{status:?}");

    drop(ads);
    server.shutdown().await;
}

/// 12c. A per-type CDS stream refuses an EDS type URL with INVALID_ARGUMENT.
#[tokio::test]
async fn cds_stream_refuses_other_type_urls() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut cds = server.cds("n1").await;
    cds.request(ENDPOINT, &["c1"], "", "").await;
    let status = cds.recv_status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(ENDPOINT), "{status:?}");

    drop(cds);
    server.shutdown().await;
}

/// 12d. Nodes with different ids get their own snapshots; an update of one group reaches only
/// that group's streams, and a node without a snapshot gets nothing.
#[tokio::test]
async fn nodes_with_different_ids_get_their_own_snapshots() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["for-n1"], &[])).expect("consistent");
    server.cache.set_snapshot("n2", snapshot(&["for-n2a", "for-n2b"], &[])).expect("consistent");
    let mut a = server.ads("n1").await;
    let mut b = server.ads("n2").await;
    let mut none = server.ads("n3").await;
    for s in [&mut a, &mut b, &mut none] {
        s.request(CLUSTER, &[], "", "").await;
    }
    let ra = a.recv().await;
    let rb = b.recv().await;
    assert_eq!(names(&ra), strings(&["for-n1"]));
    assert_eq!(names(&rb), strings(&["for-n2a", "for-n2b"]));
    assert_ne!(ra.version_info, rb.version_info);
    none.expect_no_response(QUIET).await;
    a.ack(&ra, &[]).await;
    b.ack(&rb, &[]).await;

    server.cache.set_snapshot("n1", snapshot(&["for-n1", "more"], &[])).expect("consistent");
    assert_eq!(names(&a.recv().await), strings(&["for-n1", "more"]));
    b.expect_no_response(QUIET).await;
    none.expect_no_response(std::time::Duration::from_millis(10)).await;
    let opened: Vec<String> = server
        .observer
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Opened { node, .. } => Some(node),
            _ => None,
        })
        .collect();
    assert_eq!(opened, strings(&["n1", "n2", "n3"]));

    drop((a, b, none));
    server.shutdown().await;
}

/// (library bug) `clear_snapshot` followed by `set_snapshot` must reach the streams that were
/// open: "its streams keep what they have until a new one is set" (doc of `clear_snapshot`).
/// The cache drops the group and with it the watch senders, so the open streams never hear of
/// the new snapshot.
#[tokio::test]
async fn snapshot_set_after_clear_reaches_open_streams() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let r1 = ads.recv().await;
    ads.ack(&r1, &[]).await;
    ads.expect_no_response(QUIET).await;

    server.cache.clear_snapshot("n1");
    ads.expect_no_response(QUIET).await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2"], &[])).expect("consistent");
    let r2 = ads.recv().await;
    assert_eq!(names(&r2), strings(&["c1", "c2"]));

    drop(ads);
    server.shutdown().await;
}

/// 7c (library bug). The same ordering as 7 on a multi-threaded runtime, with the snapshot set
/// from another thread, as in a real server: the stream's task can run while `set_snapshot` is
/// still waking the per-type watches one by one. The watches are woken in `HashMap` order, so
/// a stream that runs in between sees, say, only the EDS change and pushes EDS before CDS.
/// Repeated 100 times; every push must arrive as CDS, EDS, LDS, RDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ads_push_order_holds_when_the_snapshot_is_set_from_another_thread() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1"])).expect("consistent");
    let mut ads = server.ads("n1").await;
    for t in [CLUSTER, ENDPOINT, LISTENER, ROUTE] {
        ads.request(t, subscribed(t), "", "").await;
    }
    let mut last = Vec::new();
    for _ in 0..4 {
        last.push(ads.recv().await);
    }
    let mut misordered = Vec::new();
    for i in 0..100u32 {
        for r in &last {
            ads.ack(r, subscribed(&r.type_url)).await;
        }
        // Answer whatever else comes (see 7b) until the stream is quiet.
        while let Some(r) = ads.try_recv(std::time::Duration::from_millis(30)).await {
            ads.ack(&r, subscribed(&r.type_url)).await;
        }
        let cache = server.cache.clone();
        tokio::task::spawn_blocking(move || {
            cache.set_snapshot(
                "n1",
                Snapshot::new([
                    Resource::new(&eds_cluster_with_timeout("c1", 10 + i64::from(i))),
                    Resource::new(&cla("c1", 20000 + i)),
                    Resource::new(&listener("l1", "l1-route", 30000 + i)),
                    Resource::new(&route_config("l1-route", &format!("d{i}.example"), "c1")),
                ]),
            )
        })
        .await
        .expect("set_snapshot task")
        .expect("consistent");
        last.clear();
        for _ in 0..4 {
            last.push(ads.recv().await);
        }
        let types: Vec<String> = last.iter().map(|r| r.type_url.rsplit('.').next().unwrap_or("").to_owned()).collect();
        if types != ["Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"] {
            misordered.push((i, types));
        }
    }
    assert!(misordered.is_empty(), "pushes out of CDS, EDS, LDS, RDS order: {misordered:?}");

    drop(ads);
    server.shutdown().await;
}
