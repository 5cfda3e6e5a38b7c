//! Delta (incremental) xDS over TCP with a tonic client: subscriptions, removals, reconnects
//! with `initial_resource_versions`, per-resource updates, NACKs and ADS ordering.

mod common;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use bosun_xds::{Resource, Snapshot};
use common::delta::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use prost::Message;

/// Sets clusters `cs` (EDS, with endpoints on port `port`) for node `n1`.
fn set_clusters(server: &TestServer, cs: &[(&str, u32)]) {
    let mut rs = Vec::new();
    for (c, port) in cs {
        rs.push(Resource::new(&eds_cluster(c)));
        rs.push(Resource::new(&cla(c, *port)));
    }
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
}

#[tokio::test]
async fn wildcard_then_one_change_out_of_many_sends_that_one() {
    let server = TestServer::start().await;
    let clusters: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let mut cs: Vec<(&str, u32)> = clusters.iter().map(|c| (c.as_str(), 9000)).collect();
    set_clusters(&server, &cs);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &[], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), clusters, "an empty first CDS request is a wildcard");
    assert!(first.removed_resources.is_empty());
    cds.ack(&first).await;
    cds.expect_quiet().await;

    // Change one cluster's content (endpoints stay): only that cluster is sent.
    let mut rs: Vec<Resource> = Vec::new();
    for (c, port) in &cs {
        let mut cluster = eds_cluster(c);
        if *c == "c07" {
            cluster.alt_stat_name = "changed".into();
        }
        rs.push(Resource::new(&cluster));
        rs.push(Resource::new(&cla(c, *port)));
    }
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let update = cds.recv().await;
    assert_eq!(sent(&update), ["c07"]);
    assert_ne!(versions(&update)["c07"], versions(&first)["c07"]);
    let c07 = Cluster::decode(update.resources[0].resource.as_ref().expect("any").value.as_slice()).expect("cluster");
    assert_eq!(c07.alt_stat_name, "changed");
    cds.ack(&update).await;

    // Delete one: only its removal is sent.
    cs.retain(|(c, _)| *c != "c03");
    set_clusters(&server, &cs);
    let deletion = cds.recv().await;
    assert!(deletion.resources.iter().all(|r| r.name != "c03"));
    assert_eq!(removed(&deletion), ["c03"]);
    drop(cds);
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_unsubscribe_and_unknown_names_are_removed() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a", "ghost"], &[], "").await;
    let r1 = eds.recv().await;
    assert_eq!(sent(&r1), ["a"]);
    assert_eq!(removed(&r1), ["ghost"], "a subscribed name that does not exist is reported removed");
    eds.ack(&r1).await;
    eds.expect_quiet().await;

    // Subscribe to b: only b comes.
    eds.request(ENDPOINT, &["b"], &[], &r1.nonce).await;
    let r2 = eds.recv().await;
    assert_eq!(sent(&r2), ["b"]);
    assert!(r2.removed_resources.is_empty(), "ghost was already reported: {:?}", r2.removed_resources);
    eds.ack(&r2).await;

    // Unsubscribe from a; a change to a is then not sent, a change to b is.
    eds.request(ENDPOINT, &[], &["a"], &r2.nonce).await;
    eds.expect_quiet().await;
    set_clusters(&server, &[("a", 9100), ("b", 9101)]);
    let r3 = eds.recv().await;
    assert_eq!(sent(&r3), ["b"]);
    eds.ack(&r3).await;

    // ghost appears: it is sent, as it is still subscribed.
    set_clusters(&server, &[("a", 9100), ("b", 9101), ("ghost", 9102)]);
    let r4 = eds.recv().await;
    assert_eq!(sent(&r4), ["ghost"]);
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_with_a_stale_nonce_is_honoured() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a"], &[], "").await;
    let r1 = eds.recv().await;
    eds.ack(&r1).await;
    set_clusters(&server, &[("a", 9100), ("b", 9001)]);
    let r2 = eds.recv().await;
    assert_eq!(sent(&r2), ["a"]);
    // The client has not seen r2 yet: it subscribes to b answering r1's (stale) nonce.
    eds.request(ENDPOINT, &["b"], &[], &r1.nonce).await;
    eds.ack(&r2).await;
    let r3 = eds.recv().await;
    assert_eq!(sent(&r3), ["b"], "the subscription of a stale-nonce request counts");
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_with_initial_versions_sends_only_the_difference() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001), ("c", 9002)]);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &["*"], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), ["a", "b", "c"]);
    let held = versions(&first);
    drop(cds);

    // While disconnected: b changes, c is deleted, d appears.
    let mut rs = vec![Resource::new(&eds_cluster("a")), Resource::new(&cla("a", 9000))];
    let mut b = eds_cluster("b");
    b.alt_stat_name = "b2".into();
    rs.extend([Resource::new(&b), Resource::new(&cla("b", 9001))]);
    rs.extend([Resource::new(&eds_cluster("d")), Resource::new(&cla("d", 9003))]);
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");

    let mut again = DeltaStream::open(&server, "n1", Kind::Cds).await;
    again
        .send(DeltaDiscoveryRequest {
            type_url: CLUSTER.into(),
            resource_names_subscribe: strings(&["*"]),
            initial_resource_versions: held,
            ..Default::default()
        })
        .await;
    let resp = again.recv().await;
    assert_eq!(sent(&resp), ["b", "d"], "a is held at its current version");
    assert_eq!(removed(&resp), ["c"]);
    drop(again);
    server.shutdown().await;
}

#[tokio::test]
async fn wildcard_and_explicit_names_mix() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &["*", "a", "later"], &[], "").await;
    let r1 = cds.recv().await;
    assert_eq!(sent(&r1), ["a", "b"]);
    assert_eq!(removed(&r1), ["later"]);
    cds.ack(&r1).await;
    // Leaving the wildcard keeps the explicit names: b is dropped by the client, a stays.
    cds.request(CLUSTER, &[], &["*"], &r1.nonce).await;
    cds.expect_quiet().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001), ("later", 9002)]);
    let r2 = cds.recv().await;
    assert_eq!(sent(&r2), ["later"], "b is not subscribed any more");
    drop(cds);
    server.shutdown().await;
}

#[tokio::test]
async fn a_nacked_version_is_not_resent_and_is_recorded() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a"], &[], "").await;
    let r1 = eds.recv().await;
    eds.ack(&r1).await;
    set_clusters(&server, &[("a", 9100)]);
    let bad = eds.recv().await;
    eds.nack(&bad, "port 9100 refused").await;
    server
        .observer
        .wait_for("the NACK", |events| {
            events.iter().any(|e| matches!(e, Event::Nack { message, .. } if message == "port 9100 refused"))
        })
        .await;
    assert_eq!(server.observer.nacks(ENDPOINT), [(bad.system_version_info.clone(), "port 9100 refused".into())]);
    // A re-subscription of something else must not bring the NACKed version back.
    eds.request(ENDPOINT, &["z"], &[], &bad.nonce).await;
    let r3 = eds.recv().await;
    assert!(r3.resources.is_empty(), "the NACKed version was resent: {:?}", sent(&r3));
    assert_eq!(removed(&r3), ["z"]);
    eds.ack(&r3).await;
    eds.expect_quiet().await;
    // The next version is sent.
    set_clusters(&server, &[("a", 9200)]);
    let fixed = eds.recv().await;
    assert_eq!(sent(&fixed), ["a"]);
    let cla_sent = ClusterLoadAssignment::decode(fixed.resources[0].resource.as_ref().expect("any").value.as_slice())
        .expect("cla");
    assert_eq!(cla_sent, cla("a", 9200));
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ads_pushes_cds_eds_lds_rds_in_order() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1"])).expect("consistent");
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(CLUSTER, &[], &[], "").await;
    ads.request(ENDPOINT, &["c1"], &[], "").await;
    ads.request(LISTENER, &[], &[], "").await;
    ads.request(ROUTE, &["l1-route"], &[], "").await;
    let mut firsts = Vec::new();
    for _ in 0..4 {
        firsts.push(ads.recv().await);
    }
    for r in &firsts {
        ads.ack(r).await;
    }
    ads.expect_quiet().await;
    // Everything changes at once: the pushes come as CDS, EDS, LDS, RDS.
    let mut rs = vec![Resource::new(&eds_cluster_with_timeout("c1", 9)), Resource::new(&cla("c1", 9500))];
    rs.push(Resource::new(&listener("l1", "l1-route", 10500)));
    rs.push(Resource::new(&route_config("l1-route", "changed.example", "c1")));
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let mut types = Vec::new();
    for _ in 0..4 {
        let r = ads.recv().await;
        assert_eq!(r.resources.len(), 1, "{}", r.type_url);
        types.push(r.type_url.clone());
        ads.ack(&r).await;
    }
    assert_eq!(types, [CLUSTER, ENDPOINT, LISTENER, ROUTE]);
    ads.expect_quiet().await;
    drop(ads);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_entries_are_shared_between_streams() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000)]);
    let mut one = DeltaStream::open(&server, "n1", Kind::Cds).await;
    let mut two = DeltaStream::open(&server, "n1", Kind::Cds).await;
    one.request(CLUSTER, &[], &[], "").await;
    two.request(CLUSTER, &[], &[], "").await;
    let (r1, r2) = (one.recv().await, two.recv().await);
    assert_eq!(r1.resources, r2.resources, "the same encoded entry");
    assert_eq!(r1.system_version_info, r2.system_version_info);
    drop((one, two));
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ads_resends_the_endpoints_of_an_updated_cluster() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(CLUSTER, &[], &[], "").await;
    ads.request(ENDPOINT, &["a", "b"], &[], "").await;
    for _ in 0..2 {
        let r = ads.recv().await;
        ads.ack(&r).await;
    }
    ads.expect_quiet().await;
    // Cluster a changes, its endpoints do not: Envoy warms a until it gets them, so they follow.
    let mut changed = eds_cluster("a");
    changed.alt_stat_name = "a2".into();
    let rs = vec![
        Resource::new(&changed),
        Resource::new(&cla("a", 9000)),
        Resource::new(&eds_cluster("b")),
        Resource::new(&cla("b", 9001)),
    ];
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let cds = ads.recv().await;
    assert_eq!((cds.type_url.as_str(), sent(&cds)), (CLUSTER, strings(&["a"])));
    let eds = ads.recv().await;
    assert_eq!((eds.type_url.as_str(), sent(&eds)), (ENDPOINT, strings(&["a"])), "only the updated cluster's");
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.expect_quiet().await;
    drop(ads);
    server.shutdown().await;
}
