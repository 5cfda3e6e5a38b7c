//! State-of-the-World protocol rules (DESIGN.md §2) over a real tonic client on 127.0.0.1:
//! ACK/NACK, stale nonces, wildcards, late and newly subscribed names, full-state types and the
//! per-type streams.

mod common;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER};
use bosun_xds::{Resource, Snapshot};
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

/// 1. The first CDS request (empty names) gets every cluster with the snapshot's CDS version;
/// its ACK gets no further response and is reported to the observer as an ACK.
#[tokio::test]
async fn ack_of_first_cds_response_is_recorded_and_not_answered() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2"], &["l1"])).expect("consistent");
    let version = server.cache.snapshot("n1").expect("set").version(CLUSTER).to_owned();
    assert_ne!(version, "empty");

    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let resp = ads.recv().await;
    assert_eq!(resp.type_url, CLUSTER);
    assert_eq!(resp.version_info, version);
    assert!(!resp.nonce.is_empty(), "a response carries a nonce");
    assert_eq!(names(&resp), strings(&["c1", "c2"]));
    assert_eq!(decode::<Cluster>(&resp, "c2"), eds_cluster("c2"), "the resource decodes to what was set");

    ads.ack(&resp, &[]).await;
    ads.expect_no_response(QUIET).await;
    server
        .observer
        .wait_for("the CDS ACK", |ev| {
            ev.iter()
                .any(|e| matches!(e, Event::Ack { type_url, version: v, .. } if type_url == CLUSTER && *v == version))
        })
        .await;
    assert!(server.observer.nacks(CLUSTER).is_empty());
    let responses = server.observer.responses(CLUSTER);
    assert_eq!(responses.len(), 1, "one CDS response: {responses:?}");
    assert!(
        matches!(&responses[0], Event::Response { nonce, version: v, resources: 2, .. } if *nonce == resp.nonce && *v == version)
    );

    drop(ads);
    server.shutdown().await;
}

/// 2. A NACKed version is reported (with the client's message and the version it keeps) and is
/// not sent again — not on its own, and not when the same content is set again; a new version
/// is sent.
#[tokio::test]
async fn nack_is_recorded_and_rejected_version_not_resent() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let r1 = ads.recv().await;
    ads.ack(&r1, &[]).await;

    let rejected =
        || Snapshot::new([Resource::new(&eds_cluster_with_timeout("c1", 5)), Resource::new(&cla("c1", 9000))]);
    server.cache.set_snapshot("n1", rejected()).expect("consistent");
    let r2 = ads.recv().await;
    assert_eq!(r2.type_url, CLUSTER);
    assert_ne!(r2.version_info, r1.version_info);
    assert_ne!(r2.nonce, r1.nonce, "nonces are not reused");
    ads.nack(&r2, &[], &r1.version_info, "bad cluster c1: connect_timeout").await;

    server.observer.wait_for("the CDS NACK", |ev| ev.iter().any(|e| matches!(e, Event::Nack { .. }))).await;
    assert_eq!(
        server.observer.nacks(CLUSTER),
        vec![(r1.version_info.clone(), "bad cluster c1: connect_timeout".to_owned())]
    );
    ads.expect_no_response(QUIET).await;
    // The same (rejected) content set again wakes nobody and is not resent.
    server.cache.set_snapshot("n1", rejected()).expect("consistent");
    ads.expect_no_response(QUIET).await;

    // A changed cluster is a new version, which is sent.
    server
        .cache
        .set_snapshot(
            "n1",
            Snapshot::new([Resource::new(&eds_cluster_with_timeout("c1", 7)), Resource::new(&cla("c1", 9000))]),
        )
        .expect("consistent");
    let r3 = ads.recv().await;
    assert_eq!(r3.type_url, CLUSTER);
    assert_eq!(r3.version_info, server.cache.snapshot("n1").expect("set").version(CLUSTER));
    assert_ne!(r3.version_info, r2.version_info);
    assert_eq!(decode::<Cluster>(&r3, "c1").connect_timeout.map(|d| d.seconds), Some(7));
    ads.ack(&r3, &[]).await;
    ads.expect_no_response(QUIET).await;
    assert_eq!(server.observer.acks(CLUSTER), vec![r1.version_info.clone(), r3.version_info.clone()]);

    drop(ads);
    server.shutdown().await;
}

/// 3. Stale nonces on EDS (ADS stream).
///
/// Part A — stale while a response is outstanding: the client ACKed response N1 (names {a});
/// the server then pushed N2 (a changed). Before seeing N2 the client asks for {a, b} with the
/// nonce N1. Asserted: the server does not treat that as an answer to N2 (no ACK event, and no
/// response — answering N2 would let the server send the {a, b} selection at once); once the
/// client ACKs N2, a response carrying a and b follows.
///
/// Part B — stale while nothing is outstanding: after the client ACKed the {a, b} response, a
/// request naming only {b} with an old nonce (and one with an unknown nonce) is not an ACK, but
/// its names apply at once: the server sends {b}, then {a} again for the unknown-nonce request.
#[tokio::test]
async fn stale_nonce_is_not_an_ack_but_its_names_apply() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["a", "b"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(ENDPOINT, &["a"], "", "").await;
    let r1 = ads.recv().await;
    assert_eq!(names(&r1), strings(&["a"]));
    ads.ack(&r1, &["a"]).await;
    server.observer.wait_for("the first EDS ACK", |ev| ev.iter().any(|e| matches!(e, Event::Ack { .. }))).await;

    // a's endpoints change: N2.
    let changed = Snapshot::new([
        Resource::new(&eds_cluster("a")),
        Resource::new(&eds_cluster("b")),
        Resource::new(&cla("a", 9100)),
        Resource::new(&cla("b", 9001)),
    ]);
    server.cache.set_snapshot("n1", changed).expect("consistent");
    let r2 = ads.recv().await;
    assert_eq!(names(&r2), strings(&["a"]));
    assert_ne!(r2.version_info, r1.version_info);

    // Part A: a request with the stale nonce N1 and new names.
    ads.request(ENDPOINT, &["a", "b"], &r1.version_info, &r1.nonce).await;
    ads.expect_no_response(QUIET).await;
    assert_eq!(server.observer.acks(ENDPOINT), vec![r1.version_info.clone()], "a stale nonce is not an ACK");
    // The client now ACKs N2 and the name change is served.
    ads.ack(&r2, &["a", "b"]).await;
    let r3 = ads.recv().await;
    assert_eq!(r3.type_url, ENDPOINT);
    // EDS responses may be partial: the client holds a's current endpoints already (r2), so
    // only the newly subscribed b is sent.
    assert_eq!(sorted_names(&r3), strings(&["b"]));
    assert_eq!(decode::<ClusterLoadAssignment>(&r3, "b"), cla("b", 9001));
    assert_eq!(server.observer.acks(ENDPOINT), vec![r1.version_info.clone(), r2.version_info.clone()]);
    ads.ack(&r3, &["a", "b"]).await;
    ads.expect_no_response(QUIET).await;
    let acks = server.observer.acks(ENDPOINT).len();
    assert_eq!(acks, 3);

    // Part B: nothing outstanding; an old nonce with a smaller name set. The names apply (a is
    // unsubscribed), and since EDS responses may be partial and the client holds b, nothing
    // needs sending; it is not an ACK either.
    ads.request(ENDPOINT, &["b"], &r3.version_info, &r1.nonce).await;
    ads.expect_no_response(QUIET).await;
    assert_eq!(server.observer.acks(ENDPOINT).len(), acks, "a stale nonce is not an ACK");
    // An unknown nonce is stale too, and its names apply: a, unsubscribed above, is sent again.
    ads.request(ENDPOINT, &["a", "b"], &r3.version_info, "no-such-nonce").await;
    let r5 = ads.recv().await;
    assert_eq!(names(&r5), strings(&["a"]), "the names of a stale request apply");
    assert_eq!(server.observer.acks(ENDPOINT).len(), acks, "a stale nonce is not an ACK");

    drop(ads);
    server.shutdown().await;
}

/// 4a. An empty first CDS request is a wildcard, and stays one while the client sends empty
/// name lists: a cluster added later is sent.
#[tokio::test]
async fn empty_first_cds_request_is_wildcard() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2", "c3"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let r1 = ads.recv().await;
    assert_eq!(names(&r1), strings(&["c1", "c2", "c3"]));
    ads.ack(&r1, &[]).await;
    ads.expect_no_response(QUIET).await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2", "c3", "c4"], &[])).expect("consistent");
    let r2 = ads.recv().await;
    assert_eq!(names(&r2), strings(&["c1", "c2", "c3", "c4"]));

    drop(ads);
    server.shutdown().await;
}

/// 4b. On LDS an explicit `*` can be mixed with names: `[l1]` gets l1, `[*, l1]` gets every
/// listener (including one added later), `[l1]` again gets only l1.
#[tokio::test]
async fn explicit_lds_wildcard_mixes_with_names() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1", "l2"])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(LISTENER, &["l1"], "", "").await;
    let r1 = ads.recv().await;
    assert_eq!(r1.type_url, LISTENER);
    assert_eq!(names(&r1), strings(&["l1"]));
    ads.ack(&r1, &["*", "l1"]).await;
    let r2 = ads.recv().await;
    assert_eq!(names(&r2), strings(&["l1", "l2"]));
    ads.ack(&r2, &["*", "l1"]).await;
    ads.expect_no_response(QUIET).await;

    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1", "l2", "l3"])).expect("consistent");
    let r3 = ads.recv().await;
    assert_eq!(names(&r3), strings(&["l1", "l2", "l3"]));
    ads.ack(&r3, &["l1"]).await;
    let r4 = ads.recv().await;
    assert_eq!(names(&r4), strings(&["l1"]), "without `*` only the named listener (LDS is full-state)");

    drop(ads);
    server.shutdown().await;
}

/// 4c. An empty first EDS request is not a wildcard: nothing is sent, not even after a
/// snapshot update; naming a cluster then gets just that cluster.
#[tokio::test]
async fn empty_first_eds_request_is_not_wildcard() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(ENDPOINT, &[], "", "").await;
    ads.expect_no_response(QUIET).await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2", "c3"], &[])).expect("consistent");
    ads.expect_no_response(QUIET).await;
    ads.request(ENDPOINT, &["c2"], "", "").await;
    let r = ads.recv().await;
    assert_eq!(r.type_url, ENDPOINT);
    assert_eq!(names(&r), strings(&["c2"]));

    drop(ads);
    server.shutdown().await;
}

/// 5. A name asked for before it exists is remembered: no response while it is missing (not
/// even when other endpoints change), a response as soon as a snapshot adds it.
#[tokio::test]
async fn name_that_does_not_exist_yet_is_sent_when_it_appears() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(ENDPOINT, &["late"], "", "").await;
    ads.expect_no_response(QUIET).await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2"], &[])).expect("consistent");
    ads.expect_no_response(QUIET).await;

    server.cache.set_snapshot("n1", snapshot(&["c1", "late"], &[])).expect("consistent");
    let r = ads.recv().await;
    assert_eq!(r.type_url, ENDPOINT);
    assert_eq!(names(&r), strings(&["late"]));
    assert_eq!(r.version_info, server.cache.snapshot("n1").expect("set").version(ENDPOINT));
    assert_eq!(decode::<ClusterLoadAssignment>(&r, "late"), cla("late", 9001));

    drop(ads);
    server.shutdown().await;
}

/// 6. CDS and LDS responses carry the full set: a removed cluster or listener is missing from
/// the next response, and removing every cluster sends an empty CDS response.
#[tokio::test]
async fn cds_and_lds_responses_are_full_state() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2", "c3"], &["l1", "l2"])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let c = ads.recv().await;
    assert_eq!(names(&c), strings(&["c1", "c2", "c3"]));
    ads.ack(&c, &[]).await;
    ads.request(LISTENER, &["l1", "l2"], "", "").await;
    let l = ads.recv().await;
    assert_eq!(names(&l), strings(&["l1", "l2"]));
    ads.ack(&l, &["l1", "l2"]).await;
    ads.expect_no_response(QUIET).await;

    server.cache.set_snapshot("n1", snapshot(&["c1", "c3"], &["l1"])).expect("consistent");
    let c = ads.recv().await;
    assert_eq!(c.type_url, CLUSTER);
    assert_eq!(names(&c), strings(&["c1", "c3"]), "c2 was removed");
    let l = ads.recv().await;
    assert_eq!(l.type_url, LISTENER);
    assert_eq!(names(&l), strings(&["l1"]), "l2 was removed");
    ads.ack(&c, &[]).await;
    ads.ack(&l, &["l1", "l2"]).await;
    ads.expect_no_response(QUIET).await;

    server.cache.set_snapshot("n1", snapshot(&[], &["l1"])).expect("consistent");
    let c = ads.recv().await;
    assert_eq!(c.type_url, CLUSTER);
    assert!(c.resources.is_empty(), "every cluster was removed: {:?}", names(&c));
    assert_eq!(c.version_info, "empty");

    drop(ads);
    server.shutdown().await;
}

/// 10. A newly subscribed name is sent even if unchanged (go-control-plane #431): {a} → {a, b}
/// sends b (EDS responses may be partial, and the client has a); dropping b and subscribing it
/// again sends b again.
#[tokio::test]
async fn newly_subscribed_name_is_sent_even_if_unchanged() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["a", "b"], &[])).expect("consistent");
    let mut ads = server.ads("n1").await;
    ads.request(ENDPOINT, &["a"], "", "").await;
    let r1 = ads.recv().await;
    assert_eq!(names(&r1), strings(&["a"]));
    ads.ack(&r1, &["a"]).await;
    ads.expect_no_response(QUIET).await;

    ads.ack(&r1, &["a", "b"]).await;
    let r2 = ads.recv().await;
    assert_eq!(sorted_names(&r2), strings(&["b"]));
    ads.ack(&r2, &["a", "b"]).await;
    ads.expect_no_response(QUIET).await;

    // Unsubscribe b. EDS is not full-state, so a response is optional; if one comes it must
    // carry only a.
    ads.ack(&r2, &["a"]).await;
    let mut last = r2;
    if let Some(r) = ads.try_recv(QUIET).await {
        assert_eq!(names(&r), strings(&["a"]));
        ads.ack(&r, &["a"]).await;
        last = r;
    }
    ads.expect_no_response(QUIET).await;
    ads.ack(&last, &["a", "b"]).await;
    let r = ads.recv().await;
    assert_eq!(sorted_names(&r), strings(&["b"]), "re-subscribed b is sent again");

    drop(ads);
    server.shutdown().await;
}

/// 13. The per-type CDS service (`ClusterDiscoveryService/StreamClusters`) works like ADS for
/// clusters: wildcard response, ACK, update, removal. The EDS service serves named endpoints.
#[tokio::test]
async fn per_type_cds_and_eds_streams() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1", "c2"], &[])).expect("consistent");
    let mut cds = server.cds("n1").await;
    cds.request(CLUSTER, &[], "", "").await;
    let r1 = cds.recv().await;
    assert_eq!(r1.type_url, CLUSTER);
    assert_eq!(r1.version_info, server.cache.snapshot("n1").expect("set").version(CLUSTER));
    assert_eq!(names(&r1), strings(&["c1", "c2"]));
    cds.ack(&r1, &[]).await;
    cds.expect_no_response(QUIET).await;

    server.cache.set_snapshot("n1", snapshot(&["c1"], &[])).expect("consistent");
    let r2 = cds.recv().await;
    assert_eq!(names(&r2), strings(&["c1"]));
    assert_ne!(r2.nonce, r1.nonce);
    cds.ack(&r2, &[]).await;
    cds.expect_no_response(QUIET).await;
    server
        .observer
        .wait_for("two CDS ACKs", |ev| ev.iter().filter(|e| matches!(e, Event::Ack { .. })).count() == 2)
        .await;

    let mut eds = server.eds("n1").await;
    eds.request(ENDPOINT, &["c1"], "", "").await;
    let e = eds.recv().await;
    assert_eq!(e.type_url, ENDPOINT);
    assert_eq!(names(&e), strings(&["c1"]));
    eds.ack(&e, &["c1"]).await;
    eds.expect_no_response(QUIET).await;

    drop(cds);
    drop(eds);
    server.shutdown().await;
}
