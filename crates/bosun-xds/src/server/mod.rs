//! The xDS gRPC server: ADS and the per-type discovery services, State-of-the-World and Delta,
//! over one [`Cache`].

mod delta;
mod names;
mod sotw;
mod subscription;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::cache::Cache;
use crate::codec::EncodedMessage;
use crate::observer::{NoopObserver, Observer, StreamId};
use crate::resource::type_url;

#[allow(missing_docs, clippy::all)]
mod generated {
    macro_rules! service {
        ($name:ident, $file:literal) => {
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", $file));
            }
        };
    }
    service!(ads, "envoy.service.discovery.v3.AggregatedDiscoveryService.rs");
    service!(cds, "envoy.service.cluster.v3.ClusterDiscoveryService.rs");
    service!(eds, "envoy.service.endpoint.v3.EndpointDiscoveryService.rs");
    service!(lds, "envoy.service.listener.v3.ListenerDiscoveryService.rs");
    service!(rds, "envoy.service.route.v3.RouteDiscoveryService.rs");
    service!(sds, "envoy.service.secret.v3.SecretDiscoveryService.rs");
    service!(rtds, "envoy.service.runtime.v3.RuntimeDiscoveryService.rs");
    service!(ecds, "envoy.service.extension.v3.ExtensionConfigDiscoveryService.rs");
    service!(vhds, "envoy.service.route.v3.VirtualHostDiscoveryService.rs");
}

use generated::*;

/// The response stream of a discovery RPC.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<EncodedMessage, Status>> + Send + 'static>>;

pub(crate) struct Shared {
    cache: Arc<dyn Cache>,
    observer: Arc<dyn Observer>,
    next_stream: AtomicU64,
    legacy_wildcard: HashSet<String>,
    control_plane_id: String,
    heartbeat_interval: Option<Duration>,
}

/// The most resource types one stream may subscribe to. Each holds a watch in the cache: a
/// bound keeps a client that sends made-up type URLs from growing the server without limit.
const MAX_TYPES_PER_STREAM: usize = 32;

/// What SotW and Delta streams do first with every request: take the node from the first
/// one, and check the type URL against the stream's (`fixed`: a per-type stream's).
pub(crate) fn check_request<'a>(
    shared: &Shared,
    id: StreamId,
    node: &mut Option<Node>,
    request_node: Option<&Node>,
    fixed: Option<&'static str>,
    type_url: &'a str,
) -> Result<&'a str, Status> {
    if node.is_none() {
        let first = request_node
            .ok_or_else(|| Status::invalid_argument("node: the first request of a stream must carry the node"))?;
        tracing::debug!(stream = id, node = %first.id, user_agent = %first.user_agent_name,
            features = ?first.client_features, "xDS stream opened");
        shared.observer.stream_opened(id, first);
        *node = Some(first.clone());
    }
    match fixed {
        Some(fixed) if type_url.is_empty() || type_url == fixed => Ok(fixed),
        Some(fixed) => Err(Status::invalid_argument(format!("type_url: {type_url:?} on a stream for {fixed:?}"))),
        None if type_url.is_empty() => Err(Status::invalid_argument("type_url: ADS requests must carry a type URL")),
        None => Ok(type_url),
    }
}

/// A response a stream is about to write, as observers see it.
pub(crate) struct Outgoing<'a> {
    /// The response's type URL.
    pub type_url: &'a str,
    /// The resources of the type the response was made from (its version is the response's).
    pub current: &'a crate::snapshot::TypeResources,
    /// The response's nonce.
    pub nonce: &'a str,
    /// Resources in the response.
    pub count: usize,
    /// A heartbeat (TTL renewal) rather than a push.
    pub heartbeat: bool,
}

/// Reports `sent`, encoded as `message`, to the observer: as a push, with the time since its
/// resources were set, or as a heartbeat, which has no push latency.
pub(crate) fn report_response(shared: &Shared, id: StreamId, sent: &Outgoing<'_>, message: &EncodedMessage) {
    let event = crate::observer::ResponseEvent {
        type_url: sent.type_url,
        version: sent.current.version(),
        nonce: sent.nonce,
        resources: sent.count,
        bytes: message.encoded_len(),
        latency: if sent.heartbeat {
            std::time::Duration::ZERO
        } else {
            std::time::Instant::now().saturating_duration_since(sent.current.created())
        },
    };
    if sent.heartbeat {
        shared.observer.heartbeat(id, &event);
    } else {
        shared.observer.response(id, &event);
    }
}

/// Refuses one more type on a stream that has [`MAX_TYPES_PER_STREAM`].
pub(crate) fn check_type_count(types: usize) -> Result<(), Status> {
    if types >= MAX_TYPES_PER_STREAM {
        return Err(Status::resource_exhausted(format!(
            "type_url: a stream may subscribe to at most {MAX_TYPES_PER_STREAM} types"
        )));
    }
    Ok(())
}

/// Client feature: the client honours `Resource.ttl` and heartbeats.
const FEATURE_RESOURCE_TTL: &str = "xds.config.supports-resource-ttl";
/// Client feature: the client unwraps `envoy.service.discovery.v3.Resource` in a SotW response.
const FEATURE_RESOURCE_IN_SOTW: &str = "xds.config.resource-in-sotw";

/// Whether `node` honours resource TTLs and heartbeats: it says so in its client features, or
/// it is Envoy 1.17 or later, which implements them without saying so (Envoy 1.40 sends no
/// client features at all).
pub(crate) fn supports_ttl(node: &Node) -> bool {
    has_feature(node, FEATURE_RESOURCE_TTL) || is_envoy_with_ttl(node)
}

/// Whether `node` receives resources with a TTL wrapped, with their TTL, in State-of-the-World
/// responses: it honours TTLs and unwraps `Resource` in SotW (as Envoy 1.17 or later does).
pub(crate) fn wants_sotw_ttl(node: &Node) -> bool {
    is_envoy_with_ttl(node) || (has_feature(node, FEATURE_RESOURCE_TTL) && has_feature(node, FEATURE_RESOURCE_IN_SOTW))
}

/// [`wants_sotw_ttl`] for the resources of `type_url`. Envoy gets route configurations without
/// their TTL: Envoy 1.40 crashes (SIGSEGV) when the TTL of a route configuration it got over
/// SotW expires.
pub(crate) fn wants_sotw_ttl_for(node: &Node, type_url: &str) -> bool {
    wants_sotw_ttl(node) && !(type_url == crate::resource::type_url::ROUTE && is_envoy_with_ttl(node))
}

fn has_feature(node: &Node, feature: &str) -> bool {
    node.client_features.iter().any(|f| f == feature)
}

/// Envoy 1.17 or later: it honours TTLs and heartbeats, and unwraps `Resource` in SotW.
fn is_envoy_with_ttl(node: &Node) -> bool {
    let version = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build.version.as_ref(),
        _ => None,
    };
    node.user_agent_name == "envoy" && version.is_some_and(|v| (v.major_number, v.minor_number) >= (1, 17))
}

/// The heartbeat timer of a stream whose client receives TTLs, if the server sends heartbeats.
/// The first tick is one interval from now; a late tick delays the next ones.
pub(crate) fn heartbeat_timer(shared: &Shared, ttl_client: bool) -> Option<tokio::time::Interval> {
    let period = shared.heartbeat_interval.filter(|_| ttl_client)?;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(timer)
}

/// Waits for the next tick of `timer`; forever if there is none.
pub(crate) async fn next_heartbeat(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Shared {
    fn next_stream_id(&self) -> StreamId {
        self.next_stream.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether an empty first request of `type_url` means wildcard.
    fn legacy_wildcard(&self, type_url: &str) -> bool {
        self.legacy_wildcard.contains(type_url)
    }
}

/// The xDS server: serves every discovery service from one cache.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use bosun_xds::{SnapshotCache, XdsServer};
/// let cache = Arc::new(SnapshotCache::default());
/// let routes = XdsServer::new(cache.clone()).routes();
/// tonic::transport::Server::builder()
///     .add_routes(routes)
///     .serve("127.0.0.1:18000".parse()?)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct XdsServer {
    shared: Arc<Shared>,
    max_decoding_message_size: Option<usize>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer").field("control_plane_id", &self.shared.control_plane_id).finish()
    }
}

/// Builds an [`XdsServer`].
pub struct XdsServerBuilder {
    cache: Arc<dyn Cache>,
    observer: Arc<dyn Observer>,
    legacy_wildcard: HashSet<String>,
    control_plane_id: String,
    max_decoding_message_size: Option<usize>,
    heartbeat_interval: Option<Duration>,
}

impl XdsServerBuilder {
    /// Sends heartbeats every `interval` (default: none; a zero interval turns them off). On
    /// each tick, every stream whose client honours TTLs sends, for each type whose last
    /// response it has answered with an ACK and which holds resources with a TTL, a response
    /// that renews their TTLs: in Delta, `Resource` entries with name, version and TTL and no
    /// body (the client only renews the TTLs); in State of the World, those resources again,
    /// wrapped with their TTL at the same version (all subscribed resources for clusters,
    /// listeners and scoped routes, whose responses are the full set). Envoy's SotW client
    /// neither renews a TTL from a body-less heartbeat nor keeps, for clusters and listeners,
    /// what a response leaves out (with Envoy 1.40, a body-less heartbeat removed the cluster or
    /// listener at once); an unchanged resource sent again changes nothing there.
    /// Virtual hosts (VHDS) get neither TTLs nor heartbeats: Envoy takes a body-less one as a
    /// removal, so a TTL could only expire them while the server runs.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// The largest request message accepted, in bytes (default: tonic's 4 MiB). A larger one
    /// ends its stream with `OUT_OF_RANGE`; other streams are not affected.
    pub fn max_decoding_message_size(mut self, bytes: usize) -> Self {
        self.max_decoding_message_size = Some(bytes);
        self
    }

    /// Sends the server's events to `observer`.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The types for which an empty first request means wildcard (default: clusters and
    /// listeners, as Envoy expects). Proxyless gRPC clients never rely on it.
    pub fn legacy_wildcard_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.legacy_wildcard = types.into_iter().map(Into::into).collect();
        self
    }

    /// The identifier sent in `control_plane.identifier` of every response.
    pub fn control_plane_id(mut self, id: impl Into<String>) -> Self {
        self.control_plane_id = id.into();
        self
    }

    /// The server.
    pub fn build(self) -> XdsServer {
        XdsServer {
            shared: Arc::new(Shared {
                cache: self.cache,
                observer: self.observer,
                next_stream: AtomicU64::new(0),
                legacy_wildcard: self.legacy_wildcard,
                control_plane_id: self.control_plane_id,
                heartbeat_interval: self.heartbeat_interval,
            }),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl XdsServer {
    /// A server with default settings over `cache`.
    pub fn new(cache: impl Cache) -> Self {
        Self::builder(cache).build()
    }

    /// A builder for a server over `cache`.
    pub fn builder(cache: impl Cache) -> XdsServerBuilder {
        XdsServerBuilder {
            cache: Arc::new(cache),
            observer: Arc::new(NoopObserver),
            legacy_wildcard: [type_url::CLUSTER, type_url::LISTENER].into_iter().map(String::from).collect(),
            control_plane_id: String::new(),
            max_decoding_message_size: None,
            heartbeat_interval: None,
        }
    }

    /// Every discovery service of this server, to add to a tonic server.
    pub fn routes(&self) -> tonic::service::Routes {
        // Each generated service takes the limit itself; `limit!` applies it when one is set.
        macro_rules! limit {
            ($service:expr) => {
                match self.max_decoding_message_size {
                    Some(bytes) => $service.max_decoding_message_size(bytes),
                    None => $service,
                }
            };
        }
        tonic::service::Routes::default()
            .add_service(limit!(ads::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer::new(
                self.clone()
            )))
            .add_service(limit!(cds::cluster_discovery_service_server::ClusterDiscoveryServiceServer::new(
                self.clone()
            )))
            .add_service(limit!(eds::endpoint_discovery_service_server::EndpointDiscoveryServiceServer::new(
                self.clone()
            )))
            .add_service(limit!(lds::listener_discovery_service_server::ListenerDiscoveryServiceServer::new(
                self.clone()
            )))
            .add_service(limit!(rds::route_discovery_service_server::RouteDiscoveryServiceServer::new(self.clone())))
            .add_service(limit!(sds::secret_discovery_service_server::SecretDiscoveryServiceServer::new(self.clone())))
            .add_service(limit!(rtds::runtime_discovery_service_server::RuntimeDiscoveryServiceServer::new(
                self.clone()
            )))
            .add_service(limit!(
                ecds::extension_config_discovery_service_server::ExtensionConfigDiscoveryServiceServer::new(
                    self.clone()
                )
            ))
            .add_service(vhds::virtual_host_discovery_service_server::VirtualHostDiscoveryServiceServer::new(
                self.clone(),
            ))
    }

    fn sotw(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
        fixed_type: Option<&'static str>,
    ) -> Response<ResponseStream> {
        let stream = sotw::SotwStream::new(self.shared.clone(), request.into_inner(), fixed_type);
        let responses = futures::stream::unfold(stream, |mut s| async move { s.next_response().await.map(|r| (r, s)) });
        Response::new(Box::pin(responses))
    }

    fn delta(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
        fixed_type: Option<&'static str>,
    ) -> Response<ResponseStream> {
        let stream = delta::DeltaStream::new(self.shared.clone(), request.into_inner(), fixed_type);
        let responses = futures::stream::unfold(stream, |mut s| async move { s.next_response().await.map(|r| (r, s)) });
        Response::new(Box::pin(responses))
    }
}

macro_rules! discovery_service {
    ($module:ident :: $server_mod:ident :: $trait_:ident, $method:ident, $assoc:ident, $delta:ident, $delta_assoc:ident, $type_url:expr) => {
        #[tonic::async_trait]
        impl $module::$server_mod::$trait_ for XdsServer {
            type $assoc = ResponseStream;
            type $delta_assoc = ResponseStream;

            async fn $delta(
                &self,
                request: Request<Streaming<DeltaDiscoveryRequest>>,
            ) -> Result<Response<ResponseStream>, Status> {
                Ok(self.delta(request, $type_url))
            }

            async fn $method(
                &self,
                request: Request<Streaming<DiscoveryRequest>>,
            ) -> Result<Response<ResponseStream>, Status> {
                Ok(self.sotw(request, $type_url))
            }
        }
    };
}

discovery_service!(
    ads::aggregated_discovery_service_server::AggregatedDiscoveryService,
    stream_aggregated_resources,
    StreamAggregatedResourcesStream,
    delta_aggregated_resources,
    DeltaAggregatedResourcesStream,
    None
);
discovery_service!(
    cds::cluster_discovery_service_server::ClusterDiscoveryService,
    stream_clusters,
    StreamClustersStream,
    delta_clusters,
    DeltaClustersStream,
    Some(type_url::CLUSTER)
);
discovery_service!(
    eds::endpoint_discovery_service_server::EndpointDiscoveryService,
    stream_endpoints,
    StreamEndpointsStream,
    delta_endpoints,
    DeltaEndpointsStream,
    Some(type_url::ENDPOINT)
);
discovery_service!(
    lds::listener_discovery_service_server::ListenerDiscoveryService,
    stream_listeners,
    StreamListenersStream,
    delta_listeners,
    DeltaListenersStream,
    Some(type_url::LISTENER)
);
discovery_service!(
    rds::route_discovery_service_server::RouteDiscoveryService,
    stream_routes,
    StreamRoutesStream,
    delta_routes,
    DeltaRoutesStream,
    Some(type_url::ROUTE)
);
discovery_service!(
    sds::secret_discovery_service_server::SecretDiscoveryService,
    stream_secrets,
    StreamSecretsStream,
    delta_secrets,
    DeltaSecretsStream,
    Some(type_url::SECRET)
);
discovery_service!(
    rtds::runtime_discovery_service_server::RuntimeDiscoveryService,
    stream_runtime,
    StreamRuntimeStream,
    delta_runtime,
    DeltaRuntimeStream,
    Some(type_url::RUNTIME)
);
discovery_service!(
    ecds::extension_config_discovery_service_server::ExtensionConfigDiscoveryService,
    stream_extension_configs,
    StreamExtensionConfigsStream,
    delta_extension_configs,
    DeltaExtensionConfigsStream,
    Some(type_url::EXTENSION_CONFIG)
);

#[tonic::async_trait]
impl vhds::virtual_host_discovery_service_server::VirtualHostDiscoveryService for XdsServer {
    type DeltaVirtualHostsStream = ResponseStream;

    async fn delta_virtual_hosts(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        Ok(self.delta(request, Some(type_url::VIRTUAL_HOST)))
    }
}
