//! Helpers for the xDS integration tests: a server on a free port of 127.0.0.1 that is always
//! shut down, a client stream whose every wait is bounded, a recording observer, and builders
//! for Envoy resources (EDS clusters, endpoints, listeners whose HTTP connection manager uses
//! RDS, route configurations).

#![allow(dead_code)]

pub mod delta;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bosun_xds::{Cache, Observer, ResponseEvent, SnapshotCache, StreamId, XdsServer, XdsServerBuilder, type_url};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, AggregatedConfigSource, ConfigSource, Node, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpConnectionManager, Rds};
use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// How long a test waits for a response that must come.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits to conclude that no response comes.
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Server

/// An xDS server on a free port of 127.0.0.1, over a [`SnapshotCache`] grouping by node id.
pub struct TestServer {
    pub addr: SocketAddr,
    pub cache: Arc<SnapshotCache>,
    pub observer: Arc<Recorder>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestServer {
    /// Starts a server with the default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|builder| builder).await
    }

    /// Starts a server with the settings `configure` makes (the cache and observer are set).
    pub async fn start_with(configure: impl FnOnce(XdsServerBuilder) -> XdsServerBuilder) -> TestServer {
        let cache = Arc::new(SnapshotCache::default());
        Self::start_over_with(cache.clone(), cache, configure).await
    }

    /// Starts a server that serves from `cache` (a `MuxCache`, say), of which `snapshots` is the
    /// snapshot cache (the test's `cache`).
    pub async fn start_over(snapshots: Arc<SnapshotCache>, cache: impl Cache) -> TestServer {
        Self::start_over_with(snapshots, cache, |builder| builder).await
    }

    async fn start_over_with(
        snapshots: Arc<SnapshotCache>,
        cache: impl Cache,
        configure: impl FnOnce(XdsServerBuilder) -> XdsServerBuilder,
    ) -> TestServer {
        let observer = Arc::new(Recorder::default());
        let routes = configure(XdsServer::builder(cache).observer(observer.clone())).build().routes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tonic::transport::Server::builder().add_routes(routes).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = rx.await;
            },
        ));
        TestServer { addr, cache: snapshots, observer, shutdown: Some(tx), task: Some(task) }
    }

    /// A fresh connection to the server.
    pub async fn channel(&self) -> Channel {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).expect("endpoint");
        tokio::time::timeout(RECV_TIMEOUT, endpoint.connect()).await.expect("connect: timed out").expect("connect")
    }

    /// An ADS stream of node `node_id`.
    pub async fn ads(&self, node_id: &str) -> XdsStream {
        let mut client = AggregatedDiscoveryServiceClient::new(self.channel().await);
        XdsStream::open(node_id, |rx| async move { client.stream_aggregated_resources(rx).await }).await
    }

    /// A CDS (`ClusterDiscoveryService`) stream of node `node_id`.
    pub async fn cds(&self, node_id: &str) -> XdsStream {
        let mut client = ClusterDiscoveryServiceClient::new(self.channel().await);
        XdsStream::open(node_id, |rx| async move { client.stream_clusters(rx).await }).await
    }

    /// An EDS (`EndpointDiscoveryService`) stream of node `node_id`.
    pub async fn eds(&self, node_id: &str) -> XdsStream {
        let mut client = EndpointDiscoveryServiceClient::new(self.channel().await);
        XdsStream::open(node_id, |rx| async move { client.stream_endpoints(rx).await }).await
    }

    /// Stops the server and waits (bounded) for it to finish. Drop client streams first: the
    /// shutdown is graceful and waits for open streams.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(RECV_TIMEOUT, task).await {
                Ok(joined) => joined.expect("server task").expect("server"),
                Err(_) => panic!("server did not shut down within {RECV_TIMEOUT:?}"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that panicked before `shutdown` still stops its server.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client stream

/// One discovery stream seen from the client: requests go through an mpsc channel, every wait
/// for a response is bounded.
pub struct XdsStream {
    pub node: Node,
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    sent_node: bool,
}

impl XdsStream {
    async fn open<F, Fut>(node_id: &str, call: F) -> XdsStream
    where
        F: FnOnce(ReceiverStream<DiscoveryRequest>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Streaming<DiscoveryResponse>>, Status>>,
    {
        let (tx, rx) = mpsc::channel(64);
        let responses = tokio::time::timeout(RECV_TIMEOUT, call(ReceiverStream::new(rx)))
            .await
            .expect("opening the stream timed out")
            .expect("opening the stream")
            .into_inner();
        let node = Node { id: node_id.into(), cluster: "test-cluster".into(), ..Default::default() };
        XdsStream { node, tx, responses, sent_node: false }
    }

    /// Sends `req`; the first request of the stream gets the node, as Envoy does.
    pub async fn send(&mut self, mut req: DiscoveryRequest) {
        if !self.sent_node && req.node.is_none() {
            req.node = Some(self.node.clone());
        }
        self.sent_node = true;
        self.send_raw(req).await;
    }

    /// Sends `req` exactly as given.
    pub async fn send_raw(&mut self, req: DiscoveryRequest) {
        tokio::time::timeout(RECV_TIMEOUT, self.tx.send(req))
            .await
            .expect("sending a request timed out")
            .expect("the request stream is closed");
    }

    /// A request of `type_url` for `names` carrying `version` and `nonce`.
    pub async fn request(&mut self, type_url: &str, names: &[&str], version: &str, nonce: &str) {
        self.send(request(type_url, names, version, nonce)).await;
    }

    /// ACKs `resp`, subscribing to `names`.
    pub async fn ack(&mut self, resp: &DiscoveryResponse, names: &[&str]) {
        self.send(request(&resp.type_url, names, &resp.version_info, &resp.nonce)).await;
    }

    /// NACKs `resp` with `message`; `last_good` is the version the client keeps.
    pub async fn nack(&mut self, resp: &DiscoveryResponse, names: &[&str], last_good: &str, message: &str) {
        let mut req = request(&resp.type_url, names, last_good, &resp.nonce);
        req.error_detail =
            Some(RpcStatus { code: Code::InvalidArgument as i32, message: message.into(), details: vec![] });
        self.send(req).await;
    }

    /// The next response; panics if none comes within [`RECV_TIMEOUT`] or the stream ends.
    pub async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(RECV_TIMEOUT, self.responses.message()).await {
            Err(_) => panic!("no response within {RECV_TIMEOUT:?}"),
            Ok(Err(status)) => panic!("stream failed: {status:?}"),
            Ok(Ok(None)) => panic!("stream ended"),
            Ok(Ok(Some(resp))) => resp,
        }
    }

    /// The next response, if one comes within `within`.
    pub async fn try_recv(&mut self, within: Duration) -> Option<DiscoveryResponse> {
        match tokio::time::timeout(within, self.responses.message()).await {
            Err(_) => None,
            Ok(Err(status)) => panic!("stream failed: {status:?}"),
            Ok(Ok(None)) => panic!("stream ended"),
            Ok(Ok(Some(resp))) => Some(resp),
        }
    }

    /// Asserts that no response arrives within `within`.
    pub async fn expect_no_response(&mut self, within: Duration) {
        if let Some(resp) = self.try_recv(within).await {
            panic!(
                "expected no response, got {} version {:?} nonce {:?} with {:?}",
                resp.type_url,
                resp.version_info,
                resp.nonce,
                names(&resp)
            );
        }
    }

    /// The status the stream ends with; panics on a response, a clean end or a timeout.
    pub async fn recv_status(&mut self) -> Status {
        match tokio::time::timeout(RECV_TIMEOUT, self.responses.message()).await {
            Err(_) => panic!("the stream did not end within {RECV_TIMEOUT:?}"),
            Ok(Err(status)) => status,
            Ok(Ok(None)) => panic!("stream ended without an error"),
            Ok(Ok(Some(resp))) => panic!("expected an error, got a response: {}", resp.type_url),
        }
    }
}

/// A discovery request.
pub fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// The names of the resources in `resp`, in response order, decoded from the `Any` values.
/// Panics if an `Any`'s type URL differs from the response's.
pub fn names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, resp.type_url, "resource type URL differs from the response's");
            decode_name(any)
        })
        .collect()
}

/// The names in `resp`, sorted.
pub fn sorted_names(resp: &DiscoveryResponse) -> Vec<String> {
    let mut n = names(resp);
    n.sort();
    n
}

fn decode_name(any: &Any) -> String {
    let bytes = any.value.as_slice();
    match any.type_url.as_str() {
        type_url::CLUSTER => Cluster::decode(bytes).expect("Cluster").name,
        type_url::ENDPOINT => ClusterLoadAssignment::decode(bytes).expect("ClusterLoadAssignment").cluster_name,
        type_url::LISTENER => Listener::decode(bytes).expect("Listener").name,
        type_url::ROUTE => RouteConfiguration::decode(bytes).expect("RouteConfiguration").name,
        other => panic!("unexpected type URL {other}"),
    }
}

/// Decodes the resource named `name` of `resp` as `M`.
pub fn decode<M: Message + Default>(resp: &DiscoveryResponse, name: &str) -> M {
    let any = resp
        .resources
        .iter()
        .find(|a| decode_name(a) == name)
        .unwrap_or_else(|| panic!("{name:?} not in the response: {:?}", names(resp)));
    M::decode(any.value.as_slice()).expect("decodes")
}

/// Strings for comparisons with `names`.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Observer

/// One event of the server, as the recording observer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Opened { stream: StreamId, node: String },
    Closed { stream: StreamId, error: Option<Code> },
    Request { stream: StreamId, type_url: String, names: Vec<String> },
    Response { stream: StreamId, type_url: String, version: String, nonce: String, resources: usize, bytes: usize },
    Ack { stream: StreamId, type_url: String, version: String },
    Nack { stream: StreamId, type_url: String, version: String, message: String },
}

/// An observer that stores every event.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    /// The ACK events of `type_url` as (version) in order.
    pub fn acks(&self, type_url: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Ack { type_url: t, version, .. } if t == type_url => Some(version),
                _ => None,
            })
            .collect()
    }

    /// The NACK events of `type_url` as (version, message) in order.
    pub fn nacks(&self, type_url: &str) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Nack { type_url: t, version, message, .. } if t == type_url => Some((version, message)),
                _ => None,
            })
            .collect()
    }

    /// The response events of `type_url`.
    pub fn responses(&self, type_url: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e, Event::Response { type_url: t, .. } if t == type_url))
            .collect()
    }

    /// Waits (bounded by [`RECV_TIMEOUT`]) until `pred` holds for the events; panics otherwise.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Event]) -> bool) {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            if pred(&self.events.lock()) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {what}; events: {:#?}", self.events());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn push(&self, e: Event) {
        self.events.lock().push(e);
    }
}

impl Observer for Recorder {
    fn stream_opened(&self, id: StreamId, node: &Node) {
        self.push(Event::Opened { stream: id, node: node.id.clone() });
    }
    fn stream_closed(&self, id: StreamId, error: Option<&Status>) {
        self.push(Event::Closed { stream: id, error: error.map(Status::code) });
    }
    fn request(&self, id: StreamId, type_url: &str, names: &[String]) {
        self.push(Event::Request { stream: id, type_url: type_url.into(), names: names.to_vec() });
    }
    fn response(&self, id: StreamId, e: &ResponseEvent<'_>) {
        self.push(Event::Response {
            stream: id,
            type_url: e.type_url.into(),
            version: e.version.into(),
            nonce: e.nonce.into(),
            resources: e.resources,
            bytes: e.bytes,
        });
    }
    fn ack(&self, id: StreamId, type_url: &str, version: &str) {
        self.push(Event::Ack { stream: id, type_url: type_url.into(), version: version.into() });
    }
    fn nack(&self, id: StreamId, type_url: &str, version: &str, message: &str) {
        self.push(Event::Nack {
            stream: id,
            type_url: type_url.into(),
            version: version.into(),
            message: message.into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Resources

fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn socket_address(port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// An EDS cluster named `name` (its endpoints are the CLA of the same name) with a connect
/// timeout of `timeout_secs` (change it to change the cluster).
pub fn eds_cluster_with_timeout(name: &str, timeout_secs: i64) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration { seconds: timeout_secs, nanos: 0 }),
        ..Default::default()
    }
}

/// An EDS cluster named `name` with a 1 s connect timeout.
pub fn eds_cluster(name: &str) -> Cluster {
    eds_cluster_with_timeout(name, 1)
}

/// The endpoints of cluster `name`: one endpoint on 127.0.0.1:`port`.
pub fn cla(name: &str, port: u32) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket_address(port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener on 127.0.0.1:`port` whose HTTP connection manager takes route configuration
/// `route` over RDS (ADS).
pub fn listener(name: &str, route: &str, port: u32) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route.into(),
        })),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(socket_address(port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(Any {
                    type_url: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".into(),
                    value: hcm.encode_to_vec(),
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A route configuration `name` sending every request for `domain` to `cluster`.
pub fn route_config(name: &str, domain: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: format!("{name}-vh"),
            domains: vec![domain.into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A consistent set of resources: EDS cluster `c` with its endpoints for every `c` in
/// `clusters`, and for every `l` in `listeners` a listener using route configuration `l-route`,
/// which routes to the first cluster.
pub fn resources(clusters: &[&str], listeners: &[&str]) -> Vec<bosun_xds::Resource> {
    use bosun_xds::Resource;
    let mut out = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        out.push(Resource::new(&eds_cluster(c)));
        out.push(Resource::new(&cla(c, 9000 + i as u32)));
    }
    let target = clusters.first().copied().unwrap_or("none");
    for (i, l) in listeners.iter().enumerate() {
        let route = format!("{l}-route");
        out.push(Resource::new(&listener(l, &route, 10000 + i as u32)));
        out.push(Resource::new(&route_config(&route, "*", target)));
    }
    out
}

/// A snapshot of [`resources`].
pub fn snapshot(clusters: &[&str], listeners: &[&str]) -> bosun_xds::Snapshot {
    bosun_xds::Snapshot::new(resources(clusters, listeners))
}
