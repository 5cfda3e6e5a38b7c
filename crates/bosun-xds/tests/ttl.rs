//! Resource TTLs and heartbeats over TCP with a tonic client: resources with a TTL are wrapped
//! (SotW) or carry the TTL (Delta) only for clients that honour TTLs; heartbeats renew them
//! while the client holds them, respect the one-outstanding-response flow control, and stop
//! when the resource goes away or the client unsubscribes.

mod common;

use std::time::Duration;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, RESOURCE_WRAPPER, ROUTE};
use bosun_xds::{Resource, Snapshot};
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryResponse, Resource as Wrapper,
};
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const SUPPORTS_TTL: &str = "xds.config.supports-resource-ttl";
const RESOURCE_IN_SOTW: &str = "xds.config.resource-in-sotw";
/// The heartbeat interval of the tests' servers: short, so heartbeats come soon; every wait
/// for one is bounded by [`RECV_TIMEOUT`] (many intervals).
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Long enough to conclude that heartbeats stopped: several intervals.
const NO_HEARTBEAT: Duration = Duration::from_millis(1000);

fn ttl(secs: u64) -> Option<Duration> {
    Some(Duration::from_secs(secs))
}

fn proto_ttl(secs: i64) -> Option<envoy_types::pb::google::protobuf::Duration> {
    Some(envoy_types::pb::google::protobuf::Duration { seconds: secs, nanos: 0 })
}

/// One resource of a SotW response as the client sees it.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    /// Came wrapped in `envoy.service.discovery.v3.Resource`.
    wrapped: bool,
    ttl: Option<envoy_types::pb::google::protobuf::Duration>,
    has_body: bool,
}

fn entries(resp: &DiscoveryResponse) -> Vec<Entry> {
    let mut out: Vec<Entry> = resp
        .resources
        .iter()
        .map(|any| {
            if any.type_url == RESOURCE_WRAPPER {
                let w = Wrapper::decode(any.value.as_slice()).expect("wrapper");
                if let Some(body) = &w.resource {
                    assert_eq!(body.type_url, resp.type_url, "wrapped body of another type");
                }
                Entry { name: w.name, wrapped: true, ttl: w.ttl, has_body: w.resource.is_some() }
            } else {
                assert_eq!(any.type_url, resp.type_url);
                let name = match any.type_url.as_str() {
                    CLUSTER => Cluster::decode(any.value.as_slice()).expect("cluster").name,
                    ENDPOINT => ClusterLoadAssignment::decode(any.value.as_slice()).expect("cla").cluster_name,
                    other => panic!("unexpected type {other}"),
                };
                Entry { name, wrapped: false, ttl: None, has_body: true }
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn plain(name: &str) -> Entry {
    Entry { name: name.into(), wrapped: false, ttl: None, has_body: true }
}

fn wrapped(name: &str, secs: i64) -> Entry {
    Entry { name: name.into(), wrapped: true, ttl: proto_ttl(secs), has_body: true }
}

/// A cluster that is not an EDS cluster (a snapshot of it alone is consistent).
fn cluster(name: &str, ttl_secs: Option<u64>) -> Resource {
    Resource::new(&Cluster { name: name.into(), ..Default::default() }).with_ttl(ttl_secs.and_then(ttl))
}

fn endpoints(name: &str, ttl_secs: Option<u64>) -> Resource {
    Resource::new(&cla(name, 9000)).with_ttl(ttl_secs.and_then(ttl))
}

fn with_features(mut stream: XdsStream, features: &[&str]) -> XdsStream {
    stream.node.client_features = strings(features);
    stream
}

/// A SotW ADS stream of a client that honours TTLs.
async fn ttl_client(server: &TestServer, node: &str) -> XdsStream {
    with_features(server.ads(node).await, &[SUPPORTS_TTL, RESOURCE_IN_SOTW])
}

/// Subscribes `stream` to every cluster and returns the first response, ACKed.
async fn clusters(stream: &mut XdsStream) -> DiscoveryResponse {
    stream.request(CLUSTER, &[], "", "").await;
    let resp = stream.recv().await;
    stream.ack(&resp, &[]).await;
    resp
}

#[tokio::test]
async fn sotw_wraps_resources_with_a_ttl_only_for_clients_that_honour_ttls() {
    let server = TestServer::start().await;
    for node in ["ttl", "plain", "sotw-only", "ttl-only", "envoy", "old-envoy"] {
        let route = Resource::new(&route_config("r", "*", "a")).with_ttl(ttl(30));
        server
            .cache
            .set_snapshot(node, Snapshot::new([cluster("a", Some(30)), cluster("b", None), route]))
            .expect("set");
    }
    let mut ttl = ttl_client(&server, "ttl").await;
    assert_eq!(entries(&clusters(&mut ttl).await), [wrapped("a", 30), plain("b")]);

    let mut plain_client = server.ads("plain").await;
    assert_eq!(entries(&clusters(&mut plain_client).await), [plain("a"), plain("b")]);
    // A client that cannot unwrap `Resource` in SotW, or does not honour TTLs, gets plain ones.
    let mut sotw_only = with_features(server.ads("sotw-only").await, &[RESOURCE_IN_SOTW]);
    assert_eq!(entries(&clusters(&mut sotw_only).await), [plain("a"), plain("b")]);
    let mut ttl_only = with_features(server.ads("ttl-only").await, &[SUPPORTS_TTL]);
    assert_eq!(entries(&clusters(&mut ttl_only).await), [plain("a"), plain("b")]);

    // Envoy honours TTLs and unwraps `Resource` since 1.17, and advertises neither (1.40 sends
    // no client features).
    let envoy_node = |id: &str, minor: u32| Node {
        id: id.into(),
        user_agent_name: "envoy".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(SemanticVersion { major_number: 1, minor_number: minor, patch: 0 }),
            metadata: None,
        })),
        ..Default::default()
    };
    let mut envoy = server.ads("envoy").await;
    envoy.node = envoy_node("envoy", 40);
    assert_eq!(entries(&clusters(&mut envoy).await), [wrapped("a", 30), plain("b")]);
    // Except route configurations: Envoy 1.40 crashes when one it got over SotW expires.
    envoy.request(ROUTE, &["r"], "", "").await;
    let routes = envoy.recv().await;
    assert_eq!(routes.type_url, ROUTE);
    assert_eq!(routes.resources.len(), 1);
    assert_eq!(routes.resources[0].type_url, ROUTE, "a route configuration goes to Envoy plain");
    let mut old_envoy = server.ads("old-envoy").await;
    old_envoy.node = envoy_node("old-envoy", 16);
    assert_eq!(entries(&clusters(&mut old_envoy).await), [plain("a"), plain("b")]);

    drop((ttl, plain_client, sotw_only, ttl_only, envoy, old_envoy));
    server.shutdown().await;
}

#[tokio::test]
async fn sotw_ttl_change_is_pushed() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(30))])).expect("set");
    let mut s = ttl_client(&server, "n").await;
    let first = clusters(&mut s).await;
    assert_eq!(entries(&first), [wrapped("a", 30)]);

    server.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(60))])).expect("set");
    let second = s.recv().await;
    assert_ne!(second.version_info, first.version_info);
    assert_eq!(entries(&second), [wrapped("a", 60)]);
    s.ack(&second, &[]).await;

    // Removing the TTL is a change too: the resource goes out plain.
    server.cache.set_snapshot("n", Snapshot::new([cluster("a", None)])).expect("set");
    assert_eq!(entries(&s.recv().await), [plain("a")]);
    drop(s);
    server.shutdown().await;
}

#[tokio::test]
async fn sotw_heartbeats_of_a_partial_type_carry_only_resources_with_a_ttl_until_unsubscribed() {
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    server.cache.set_snapshot("n", Snapshot::new([endpoints("e1", Some(30)), endpoints("e2", None)])).expect("set");
    let mut s = ttl_client(&server, "n").await;
    s.request(ENDPOINT, &["e1", "e2"], "", "").await;
    let first = s.recv().await;
    assert_eq!(entries(&first), [wrapped("e1", 30), plain("e2")]);

    // No heartbeat while the response is not answered (one outstanding response per type).
    s.expect_no_response(NO_HEARTBEAT).await;
    s.ack(&first, &["e1", "e2"]).await;

    let mut heartbeats = 0;
    for _ in 0..2 {
        let beat = s.recv().await;
        assert_eq!(beat.version_info, first.version_info, "a heartbeat keeps the version");
        assert_ne!(beat.nonce, first.nonce);
        // Envoy's SotW client renews a TTL only from a resource with its body (see
        // `XdsServerBuilder::heartbeat_interval`): the resource again, wrapped with its TTL.
        assert_eq!(entries(&beat), [wrapped("e1", 30)]);
        s.ack(&beat, &["e1", "e2"]).await;
        heartbeats += 1;
    }
    // Heartbeats are responses to the observer, and the client's ACKs of them count.
    let observed = server.observer.responses(ENDPOINT).len();
    assert!(observed > heartbeats, "observer saw {observed} responses");
    let acks = |events: &[Event]| {
        events.iter().filter(|e| matches!(e, Event::Ack { type_url, .. } if type_url == ENDPOINT)).count()
    };
    server.observer.wait_for("the ACKs of the heartbeats", |events| acks(events) > heartbeats).await;

    // Unsubscribing from the resource with a TTL ends its heartbeats.
    s.request(ENDPOINT, &["e2"], &first.version_info, "").await;
    // A heartbeat may have been on its way: answer what arrives until it is quiet.
    while let Some(beat) = s.try_recv(NO_HEARTBEAT).await {
        assert_eq!(entries(&beat), [wrapped("e1", 30)], "only a heartbeat sent before the unsubscription");
        s.ack(&beat, &["e2"]).await;
    }
    s.expect_no_response(NO_HEARTBEAT).await;
    drop(s);
    server.shutdown().await;
}

#[tokio::test]
async fn sotw_heartbeats_of_a_full_state_type_carry_the_whole_set_and_stop_when_the_ttl_is_gone() {
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    let set = |with_a: bool| {
        let mut rs = vec![cluster("b", None)];
        if with_a {
            rs.push(cluster("a", Some(30)));
        }
        Snapshot::new(rs)
    };
    server.cache.set_snapshot("n", set(true)).expect("set");
    let mut s = ttl_client(&server, "n").await;
    let first = clusters(&mut s).await;
    assert_eq!(entries(&first), [wrapped("a", 30), plain("b")]);

    // A SotW cluster response is the full set: a heartbeat that left "b" out would remove it.
    let beat = s.recv().await;
    assert_eq!(beat.version_info, first.version_info);
    assert_eq!(entries(&beat), [wrapped("a", 30), plain("b")]);
    s.ack(&beat, &[]).await;

    // The cluster with a TTL is removed: an update, then no more heartbeats.
    server.cache.set_snapshot("n", set(false)).expect("set");
    let update = loop {
        let resp = s.recv().await;
        s.ack(&resp, &[]).await;
        if resp.version_info != first.version_info {
            break resp;
        }
    };
    assert_eq!(entries(&update), [plain("b")]);
    s.expect_no_response(NO_HEARTBEAT).await;
    drop(s);
    server.shutdown().await;
}

#[tokio::test]
async fn no_heartbeats_for_clients_that_do_not_honour_ttls_or_when_they_are_off() {
    let with_heartbeats = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    with_heartbeats.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(30))])).expect("set");
    let mut plain_client = with_heartbeats.ads("n").await;
    clusters(&mut plain_client).await;
    plain_client.expect_no_response(NO_HEARTBEAT).await;

    let without = TestServer::start().await;
    without.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(30))])).expect("set");
    let mut ttl = ttl_client(&without, "n").await;
    assert_eq!(entries(&clusters(&mut ttl).await), [wrapped("a", 30)]);
    ttl.expect_no_response(NO_HEARTBEAT).await;

    drop((plain_client, ttl));
    with_heartbeats.shutdown().await;
    without.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Delta

/// A Delta ADS stream; every wait is bounded.
struct Delta {
    node: Option<Node>,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn open(server: &TestServer, node_id: &str, features: &[&str]) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let mut client = AggregatedDiscoveryServiceClient::new(server.channel().await);
        let responses = tokio::time::timeout(RECV_TIMEOUT, client.delta_aggregated_resources(ReceiverStream::new(rx)))
            .await
            .expect("open: timed out")
            .expect("open")
            .into_inner();
        let node = Node { id: node_id.into(), client_features: strings(features), ..Default::default() };
        Self { node: Some(node), tx, responses }
    }

    async fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        req.node = self.node.take();
        tokio::time::timeout(RECV_TIMEOUT, self.tx.send(req)).await.expect("send: timed out").expect("send");
    }

    async fn subscribe(&mut self, type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) {
        let req = DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: strings(subscribe),
            resource_names_unsubscribe: strings(unsubscribe),
            ..Default::default()
        };
        self.send(req).await;
    }

    async fn ack(&mut self, resp: &DeltaDiscoveryResponse) {
        let req = DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        };
        self.send(req).await;
    }

    async fn try_recv(&mut self, within: Duration) -> Option<DeltaDiscoveryResponse> {
        match tokio::time::timeout(within, self.responses.message()).await {
            Err(_) => None,
            Ok(resp) => Some(resp.expect("stream failed").expect("stream ended")),
        }
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        self.try_recv(RECV_TIMEOUT).await.unwrap_or_else(|| panic!("no response within {RECV_TIMEOUT:?}"))
    }
}

/// (name, TTL, has a body) of each resource of a delta response, by name.
fn delta_entries(resp: &DeltaDiscoveryResponse) -> Vec<(String, Option<i64>, bool)> {
    let mut out: Vec<_> =
        resp.resources.iter().map(|r| (r.name.clone(), r.ttl.map(|t| t.seconds), r.resource.is_some())).collect();
    out.sort();
    out
}

fn version_of(resp: &DeltaDiscoveryResponse, name: &str) -> String {
    resp.resources.iter().find(|r| r.name == name).map(|r| r.version.clone()).expect("resource in response")
}

#[tokio::test]
async fn delta_ttl_and_body_less_heartbeats_until_unsubscribed() {
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    server.cache.set_snapshot("n", Snapshot::new([endpoints("e1", Some(30)), endpoints("e2", None)])).expect("set");
    let mut d = Delta::open(&server, "n", &[SUPPORTS_TTL]).await;
    d.subscribe(ENDPOINT, &["e1", "e2"], &[]).await;
    let first = d.recv().await;
    assert_eq!(delta_entries(&first), [("e1".into(), Some(30), true), ("e2".into(), None, true)]);
    // No heartbeat while the response is not answered.
    assert!(d.try_recv(NO_HEARTBEAT).await.is_none(), "a response came before the ACK");
    d.ack(&first).await;

    for _ in 0..2 {
        let beat = d.recv().await;
        assert_eq!(beat.system_version_info, first.system_version_info);
        assert!(beat.removed_resources.is_empty());
        // Only the resource with a TTL, at the version the client holds, without a body.
        assert_eq!(delta_entries(&beat), [("e1".into(), Some(30), false)]);
        assert_eq!(version_of(&beat, "e1"), version_of(&first, "e1"));
        d.ack(&beat).await;
    }

    d.subscribe(ENDPOINT, &[], &["e1"]).await;
    while let Some(beat) = d.try_recv(NO_HEARTBEAT).await {
        assert_eq!(delta_entries(&beat), [("e1".into(), Some(30), false)], "only a heartbeat sent before");
        d.ack(&beat).await;
    }
    assert!(d.try_recv(NO_HEARTBEAT).await.is_none(), "heartbeats go on after the unsubscription");
    drop(d);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ttl_change_is_pushed_and_heartbeats_stop_when_the_resource_goes() {
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    server.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(30)), cluster("b", None)])).expect("set");
    let mut d = Delta::open(&server, "n", &[SUPPORTS_TTL]).await;
    d.subscribe(CLUSTER, &["*"], &[]).await;
    let first = d.recv().await;
    assert_eq!(delta_entries(&first), [("a".into(), Some(30), true), ("b".into(), None, true)]);
    d.ack(&first).await;

    server.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(60)), cluster("b", None)])).expect("set");
    let update = loop {
        let resp = d.recv().await;
        d.ack(&resp).await;
        if resp.resources.iter().any(|r| r.resource.is_some()) {
            break resp;
        }
    };
    assert_eq!(delta_entries(&update), [("a".into(), Some(60), true)], "only the TTL changed");
    assert_ne!(version_of(&update, "a"), version_of(&first, "a"));

    server.cache.set_snapshot("n", Snapshot::new([cluster("b", None)])).expect("set");
    let removal = loop {
        let resp = d.recv().await;
        d.ack(&resp).await;
        if !resp.removed_resources.is_empty() {
            break resp;
        }
        assert_eq!(delta_entries(&resp), [("a".into(), Some(60), false)], "a heartbeat of the new TTL");
    };
    assert_eq!(removal.removed_resources, ["a"]);
    assert!(d.try_recv(NO_HEARTBEAT).await.is_none(), "heartbeats go on after the removal");
    drop(d);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_clients_that_do_not_honour_ttls_get_no_ttl_and_no_heartbeats() {
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    server.cache.set_snapshot("n", Snapshot::new([cluster("a", Some(30))])).expect("set");
    let mut d = Delta::open(&server, "n", &[]).await;
    d.subscribe(CLUSTER, &["*"], &[]).await;
    let first = d.recv().await;
    assert_eq!(delta_entries(&first), [("a".into(), None, true)]);
    d.ack(&first).await;
    assert!(d.try_recv(NO_HEARTBEAT).await.is_none());
    drop(d);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_virtual_hosts_go_without_their_ttl() {
    use envoy_types::pb::envoy::config::route::v3::VirtualHost;
    let server = TestServer::start_with(|b| b.heartbeat_interval(HEARTBEAT)).await;
    let vh = Resource::new(&VirtualHost { name: "routes/vh".into(), domains: strings(&["*"]), ..Default::default() })
        .with_ttl(ttl(30));
    server.cache.set_snapshot("n", Snapshot::new([vh])).expect("set");
    let mut d = Delta::open(&server, "n", &[SUPPORTS_TTL]).await;
    d.subscribe(bosun_xds::type_url::VIRTUAL_HOST, &["routes/vh"], &[]).await;
    let first = d.recv().await;
    // No heartbeat can renew a virtual host's TTL (Envoy takes a body-less one as a removal).
    assert_eq!(delta_entries(&first), [("routes/vh".into(), None, true)]);
    d.ack(&first).await;
    assert!(d.try_recv(NO_HEARTBEAT).await.is_none());
    drop(d);
    server.shutdown().await;
}
