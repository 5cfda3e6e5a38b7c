//! A `MuxCache` over TCP with a tonic client: clusters and listeners from a snapshot, endpoints
//! from a `LinearCache`. One endpoint change out of 1,000 sends that one resource, a deletion
//! is a removal (Delta) or is dropped (SotW), and a name subscribed before it exists arrives
//! when it is added.

mod common;

use std::sync::Arc;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use bosun_xds::{LinearCache, MuxCache, Resource, Snapshot, SnapshotCache};
use common::delta::*;
use common::*;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

const CLUSTERS: usize = 1_000;

fn cluster_names() -> Vec<String> {
    (0..CLUSTERS).map(|i| format!("c{i:04}")).collect()
}

/// A server whose snapshot cache (node `n1`) holds 1,000 EDS clusters and a listener with its
/// route configuration, and whose linear cache holds the endpoints of every cluster.
async fn start() -> (TestServer, Arc<LinearCache>) {
    let linear = Arc::new(LinearCache::new(ENDPOINT));
    let snapshots = Arc::new(SnapshotCache::default().served_elsewhere([ENDPOINT]));
    let mux = MuxCache::new().route(ENDPOINT, linear.clone()).default_cache(snapshots.clone());
    let clusters = cluster_names();
    let mut resources: Vec<Resource> = clusters.iter().map(|c| Resource::new(&eds_cluster(c))).collect();
    resources.push(Resource::new(&listener("l0", "l0-route", 10000)));
    resources.push(Resource::new(&route_config("l0-route", "*", &clusters[0])));
    snapshots.set_snapshot("n1", Snapshot::new(resources)).expect("endpoints are served by the linear cache");
    linear.set_resources(clusters.iter().map(|c| Resource::new(&cla(c, 9000)))).expect("endpoints");
    let server = TestServer::start_over(snapshots, mux).await;
    (server, linear)
}

fn endpoints(name: &str, port: u32) -> Resource {
    Resource::new(&cla(name, port))
}

#[tokio::test]
async fn sotw_ads_gets_snapshot_types_and_only_changed_endpoints() {
    let (server, linear) = start().await;
    let clusters = cluster_names();
    let mut ads = server.ads("n1").await;
    ads.request(CLUSTER, &[], "", "").await;
    let cds = ads.recv().await;
    assert_eq!(cds.resources.len(), CLUSTERS);
    ads.ack(&cds, &[]).await;
    // Every cluster's endpoints, and one that does not exist yet.
    let mut subscribed: Vec<&str> = clusters.iter().map(String::as_str).collect();
    subscribed.push("late");
    ads.request(ENDPOINT, &subscribed, "", "").await;
    let eds = ads.recv().await;
    assert_eq!(eds.type_url, ENDPOINT);
    assert_eq!(sorted_names(&eds), clusters, "every existing subscribed endpoints, nothing for \"late\"");
    assert_eq!(eds.version_info, linear.version());
    ads.ack(&eds, &subscribed).await;
    ads.request(LISTENER, &[], "", "").await;
    let lds = ads.recv().await;
    assert_eq!(names(&lds), ["l0"]);
    ads.ack(&lds, &[]).await;
    ads.request(ROUTE, &["l0-route"], "", "").await;
    let rds = ads.recv().await;
    assert_eq!(names(&rds), ["l0-route"]);
    ads.ack(&rds, &["l0-route"]).await;
    ads.expect_no_response(QUIET).await;

    // One endpoint change out of 1,000: that one resource, and nothing of any other type.
    assert!(linear.update_resource(endpoints("c0500", 9500)).expect("update"));
    let changed = ads.recv().await;
    assert_eq!(changed.type_url, ENDPOINT);
    assert_eq!(names(&changed), ["c0500"]);
    assert_eq!(decode::<ClusterLoadAssignment>(&changed, "c0500"), cla("c0500", 9500));
    assert_eq!(changed.version_info, linear.version());
    ads.ack(&changed, &subscribed).await;
    ads.expect_no_response(QUIET).await;

    // The same content again: nothing.
    assert!(!linear.update_resource(endpoints("c0500", 9500)).expect("update"));
    ads.expect_no_response(QUIET).await;

    // Deleted: SotW EDS has no removal, the server forgets it was sent; put back with the same
    // content as before, it is sent again.
    assert!(linear.delete_resource("c0500"));
    ads.expect_no_response(QUIET).await;
    linear.update_resource(endpoints("c0500", 9500)).expect("update");
    let back = ads.recv().await;
    assert_eq!(names(&back), ["c0500"]);
    ads.ack(&back, &subscribed).await;

    // Subscribed before it existed: arrives when added, alone.
    linear.update_resource(endpoints("late", 7000)).expect("update");
    let late = ads.recv().await;
    assert_eq!(names(&late), ["late"]);
    ads.ack(&late, &subscribed).await;
    ads.expect_no_response(QUIET).await;
    drop(ads);
    server.shutdown().await;
}

#[tokio::test]
async fn sotw_eds_is_sent_only_what_it_subscribed_to() {
    let (server, linear) = start().await;
    let mut eds = server.eds("n1").await;
    let subscribed = ["c0001", "c0002", "c0003"];
    eds.request(ENDPOINT, &subscribed, "", "").await;
    let first = eds.recv().await;
    assert_eq!(sorted_names(&first), subscribed);
    eds.ack(&first, &subscribed).await;
    // A change to endpoints nobody here subscribed to: nothing.
    linear.update_resource(endpoints("c0700", 9700)).expect("update");
    eds.expect_no_response(QUIET).await;
    // A batch touching one subscribed and one other: only the subscribed one.
    linear.update_resources([endpoints("c0002", 9002), endpoints("c0800", 9800)], ["c0900"]).expect("update");
    let changed = eds.recv().await;
    assert_eq!(names(&changed), ["c0002"]);
    eds.ack(&changed, &subscribed).await;
    // Several changes while a response is unanswered: the next one carries exactly those.
    linear.update_resource(endpoints("c0001", 9101)).expect("update");
    let one = eds.recv().await;
    assert_eq!(names(&one), ["c0001"]);
    linear.update_resource(endpoints("c0003", 9103)).expect("update");
    linear.update_resource(endpoints("c0500", 9500)).expect("update");
    linear.update_resource(endpoints("c0002", 9102)).expect("update");
    eds.ack(&one, &subscribed).await;
    let next = eds.recv().await;
    assert_eq!(sorted_names(&next), ["c0002", "c0003"]);
    eds.ack(&next, &subscribed).await;
    eds.expect_no_response(QUIET).await;
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ads_gets_one_changed_endpoint_and_removals() {
    let (server, linear) = start().await;
    let clusters = cluster_names();
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(CLUSTER, &[], &[], "").await;
    let cds = ads.recv().await;
    assert_eq!(sent(&cds).len(), CLUSTERS);
    ads.ack(&cds).await;
    let mut subscribed: Vec<&str> = clusters.iter().map(String::as_str).collect();
    subscribed.push("late");
    ads.request(ENDPOINT, &subscribed, &[], "").await;
    let eds = ads.recv().await;
    assert_eq!(sent(&eds), clusters);
    assert_eq!(removed(&eds), ["late"], "a subscribed name that does not exist is reported removed");
    ads.ack(&eds).await;
    ads.request(LISTENER, &[], &[], "").await;
    let lds = ads.recv().await;
    assert_eq!(sent(&lds), ["l0"]);
    ads.ack(&lds).await;
    ads.expect_quiet().await;

    // One endpoint change out of 1,000: exactly that resource.
    linear.update_resource(endpoints("c0500", 9500)).expect("update");
    let changed = ads.recv().await;
    assert_eq!(changed.type_url, ENDPOINT);
    assert_eq!(sent(&changed), ["c0500"]);
    assert!(changed.removed_resources.is_empty());
    assert_eq!(versions(&changed)["c0500"], endpoints("c0500", 9500).version());
    ads.ack(&changed).await;
    ads.expect_quiet().await;

    // Deleted: a removal of that name only.
    linear.delete_resource("c0500");
    let gone = ads.recv().await;
    assert!(gone.resources.is_empty());
    assert_eq!(removed(&gone), ["c0500"]);
    ads.ack(&gone).await;

    // A batch: one added (subscribed before it existed), one replaced, one removed.
    linear.update_resources([endpoints("late", 7000), endpoints("c0001", 9001)], ["c0002"]).expect("update");
    let batch = ads.recv().await;
    assert_eq!(sent(&batch), ["c0001", "late"]);
    assert_eq!(removed(&batch), ["c0002"]);
    ads.ack(&batch).await;
    ads.expect_quiet().await;
    drop(ads);
    server.shutdown().await;
}
