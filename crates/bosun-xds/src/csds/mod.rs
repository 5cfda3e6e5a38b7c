//! The Client Status Discovery Service (CSDS, `envoy.service.status.v3`): which configuration
//! each connected node was sent, accepted or rejected, per resource (DESIGN.md §2 item 12).
//!
//! [`ClientStatusTracker`] observes the server; [`CsdsService`] answers `FetchClientStatus` and
//! `StreamClientStatus` from it:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bosun_xds::csds::{ClientStatusTracker, CsdsService};
//! use bosun_xds::{SnapshotCache, XdsServer};
//! let tracker = Arc::new(ClientStatusTracker::new());
//! let xds = XdsServer::builder(Arc::new(SnapshotCache::default())).observer(tracker.clone()).build();
//! tonic::transport::Server::builder()
//!     .add_routes(xds.routes())
//!     .add_service(CsdsService::new(tracker).into_server())
//!     .serve("127.0.0.1:18000".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

mod tracker;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub use tracker::{ClientStatusTracker, ClientStream, Held, Nack, SyncState, TypeStatus};

/// Serves CSDS from a [`ClientStatusTracker`].
#[derive(Debug, Clone)]
pub struct CsdsService {
    tracker: Arc<ClientStatusTracker>,
}

impl CsdsService {
    /// A service over `tracker`.
    pub fn new(tracker: Arc<ClientStatusTracker>) -> Self {
        Self { tracker }
    }

    /// The tonic service, to add to a server.
    pub fn into_server(self) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(self)
    }

    /// The answer to `request`: one [`ClientConfig`] per node id whose node the request's
    /// matchers select (every node without matchers).
    pub fn client_status(&self, request: &ClientStatusRequest) -> Result<ClientStatusResponse, Status> {
        for (i, matcher) in request.node_matchers.iter().enumerate() {
            check_matcher(matcher)
                .map_err(|reason| Status::invalid_argument(format!("node_matchers[{i}].{reason}")))?;
        }
        let mut nodes: BTreeMap<String, ClientConfig> = BTreeMap::new();
        for stream in self.tracker.streams() {
            if !request.node_matchers.is_empty() && !request.node_matchers.iter().any(|m| node_matches(m, &stream)) {
                continue;
            }
            let config = nodes
                .entry(stream.node.id.clone())
                .or_insert_with(|| ClientConfig { node: Some(stream.node.clone()), ..Default::default() });
            for (type_url, status) in &stream.types {
                resource_configs(type_url, status, request.exclude_resource_contents, &mut config.generic_xds_configs);
            }
        }
        Ok(ClientStatusResponse { config: nodes.into_values().collect() })
    }
}

/// Whether Bosun can evaluate `matcher`; the error names the field and why not.
fn check_matcher(matcher: &NodeMatcher) -> Result<(), String> {
    if !matcher.node_metadatas.is_empty() {
        return Err("node_metadatas: matching on node metadata is not supported; match on node_id".into());
    }
    match matcher.node_id.as_ref().and_then(|m| m.match_pattern.as_ref()) {
        Some(MatchPattern::SafeRegex(_)) => {
            Err("node_id.safe_regex: not supported; use exact, prefix, suffix or contains".into())
        }
        Some(MatchPattern::Custom(_)) => {
            Err("node_id.custom: not supported; use exact, prefix, suffix or contains".into())
        }
        _ => Ok(()),
    }
}

fn node_matches(matcher: &NodeMatcher, stream: &ClientStream) -> bool {
    matcher.node_id.as_ref().is_none_or(|m| string_matches(m, &stream.node.id))
}

fn string_matches(matcher: &StringMatcher, value: &str) -> bool {
    let fold = |s: &str| if matcher.ignore_case { s.to_lowercase() } else { s.to_owned() };
    let value = fold(value);
    match &matcher.match_pattern {
        None => true,
        Some(MatchPattern::Exact(s)) => value == fold(s),
        Some(MatchPattern::Prefix(s)) => value.starts_with(&fold(s)),
        Some(MatchPattern::Suffix(s)) => value.ends_with(&fold(s)),
        Some(MatchPattern::Contains(s)) => value.contains(&fold(s)),
        // Refused by `check_matcher`.
        Some(MatchPattern::SafeRegex(_) | MatchPattern::Custom(_)) => false,
    }
}

fn timestamp(at: SystemTime) -> Timestamp {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

/// One [`GenericXdsConfig`] per resource the client holds or asked for, of one type.
fn resource_configs(type_url: &str, status: &TypeStatus, exclude_contents: bool, out: &mut Vec<GenericXdsConfig>) {
    let state = status.state();
    let (config_status, client_status) = match state {
        SyncState::NotSent => (ConfigStatus::NotSent, ClientResourceStatus::Requested),
        SyncState::Synced => (ConfigStatus::Synced, ClientResourceStatus::Acked),
        SyncState::Stale => (ConfigStatus::Stale, ClientResourceStatus::Requested),
        SyncState::Nacked => (ConfigStatus::Error, ClientResourceStatus::Nacked),
    };
    let error_state = match (&status.last_nack, state) {
        (Some(nack), SyncState::Nacked) => Some(UpdateFailureState {
            failed_configuration: None,
            last_update_attempt: Some(timestamp(nack.at)),
            details: nack.message.clone(),
            version_info: nack.version.clone(),
        }),
        _ => None,
    };
    let version = status.sent_version.clone().unwrap_or_default();
    let base = GenericXdsConfig {
        type_url: type_url.to_owned(),
        version_info: version,
        last_updated: status.held.as_ref().map(|h| timestamp(h.sent_at)),
        config_status: config_status as i32,
        client_status: client_status as i32,
        error_state,
        ..Default::default()
    };
    let not_sent = |name: &str| GenericXdsConfig {
        name: name.to_owned(),
        version_info: String::new(),
        config_status: ConfigStatus::NotSent as i32,
        client_status: ClientResourceStatus::Requested as i32,
        error_state: None,
        last_updated: None,
        ..base.clone()
    };
    let Some(held) = &status.held else {
        out.extend(status.requested.iter().filter(|n| *n != "*").map(|n| not_sent(n)));
        return;
    };
    let held_config = |resource: &crate::Resource| GenericXdsConfig {
        name: resource.name().to_owned(),
        xds_config: (!exclude_contents)
            .then(|| Any { type_url: resource.type_url().to_owned(), value: resource.value().to_vec() }),
        ..base.clone()
    };
    match &held.names {
        None => out.extend(held.resources.iter().map(held_config)),
        Some(names) => out.extend(names.iter().map(|name| match held.resources.get(name) {
            Some(resource) => held_config(resource),
            None => not_sent(name),
        })),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for CsdsService {
    type StreamClientStatusStream = StatusStream;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<StatusStream>, Status> {
        let service = self.clone();
        let answers = request.into_inner().map(move |request| service.client_status(&request?));
        Ok(Response::new(Box::pin(answers)))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        self.client_status(request.get_ref()).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::{Observer, ResponseEvent, SentResources, Subscribed};
    use crate::resource::{Resource, type_url};
    use crate::snapshot::TypeResources;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use std::collections::HashSet;
    use std::time::Duration;

    fn send(tracker: &ClientStatusTracker, id: u64, resources: &Arc<TypeResources>, subscribed: Subscribed<'_>) {
        let (version, nonce) = (resources.version(), "1");
        let event = ResponseEvent {
            type_url: type_url::CLUSTER,
            version,
            nonce,
            resources: 1,
            bytes: 1,
            latency: Duration::ZERO,
        };
        tracker.response(id, &event);
        // A new generation each time: the names are read on every call.
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let subscription_generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent =
            SentResources { type_url: type_url::CLUSTER, version, resources, subscribed, subscription_generation };
        tracker.resources_sent(id, &sent);
    }

    fn clusters(names: &[&str]) -> Arc<TypeResources> {
        let resources = names.iter().map(|n| Resource::new(&Cluster { name: (*n).into(), ..Default::default() }));
        Arc::new(TypeResources::new(type_url::CLUSTER, resources))
    }

    fn exact(id: &str) -> NodeMatcher {
        NodeMatcher {
            node_id: Some(StringMatcher { match_pattern: Some(MatchPattern::Exact(id.into())), ignore_case: false }),
            node_metadatas: vec![],
        }
    }

    #[test]
    fn reports_each_resource_with_its_state_and_filters_nodes() {
        let tracker = Arc::new(ClientStatusTracker::new());
        let service = CsdsService::new(tracker.clone());
        for (id, node) in [(1, "a"), (2, "b")] {
            tracker.stream_opened(id, &Node { id: node.into(), ..Default::default() });
        }
        let set = clusters(&["c1", "c2"]);
        send(&tracker, 1, &set, Subscribed::All);
        tracker.ack(1, type_url::CLUSTER, set.version());
        let names: HashSet<String> = ["c2".to_owned(), "missing".to_owned()].into();
        tracker.request(2, type_url::CLUSTER, &["c2".into(), "missing".into()]);
        send(&tracker, 2, &set, Subscribed::Names(&names));
        tracker.nack(2, type_url::CLUSTER, "", "c2: bad");

        let all = service.client_status(&ClientStatusRequest::default()).expect("answer");
        assert_eq!(all.config.len(), 2);
        let a = &all.config[0].generic_xds_configs;
        assert_eq!(a.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
        assert!(a.iter().all(|c| c.client_status == ClientResourceStatus::Acked as i32
            && c.config_status == ConfigStatus::Synced as i32
            && c.version_info == set.version()));
        let decoded: Cluster =
            prost::Message::decode(a[0].xds_config.as_ref().expect("contents").value.as_slice()).expect("a cluster");
        assert_eq!(decoded.name, "c1");

        let only_b = service
            .client_status(&ClientStatusRequest {
                node_matchers: vec![exact("b")],
                exclude_resource_contents: true,
                ..Default::default()
            })
            .expect("answer");
        assert_eq!(only_b.config.len(), 1);
        let b = &only_b.config[0].generic_xds_configs;
        assert_eq!(b[0].name, "c2");
        assert_eq!(b[0].client_status, ClientResourceStatus::Nacked as i32);
        assert_eq!(b[0].error_state.as_ref().map(|e| e.details.as_str()), Some("c2: bad"));
        assert!(b[0].xds_config.is_none());
        assert_eq!((b[1].name.as_str(), b[1].config_status), ("missing", ConfigStatus::NotSent as i32));

        // Asked for, nothing sent yet: each name is reported as requested and not sent.
        tracker.request(1, type_url::ENDPOINT, &["e1".into()]);
        let a = service.client_status(&exact_request("a")).expect("answer");
        let e1 = a.config[0].generic_xds_configs.iter().find(|c| c.type_url == type_url::ENDPOINT).expect("e1");
        assert_eq!((e1.name.as_str(), e1.config_status), ("e1", ConfigStatus::NotSent as i32));
        assert_eq!(e1.client_status, ClientResourceStatus::Requested as i32);
    }

    fn exact_request(id: &str) -> ClientStatusRequest {
        ClientStatusRequest { node_matchers: vec![exact(id)], ..Default::default() }
    }

    #[test]
    fn string_matchers_and_refused_matchers() {
        let m = |p: MatchPattern, ignore_case| StringMatcher { match_pattern: Some(p), ignore_case };
        assert!(string_matches(&m(MatchPattern::Prefix("EN".into()), true), "envoy-1"));
        assert!(!string_matches(&m(MatchPattern::Prefix("EN".into()), false), "envoy-1"));
        assert!(string_matches(&m(MatchPattern::Suffix("-1".into()), false), "envoy-1"));
        assert!(string_matches(&m(MatchPattern::Contains("voy".into()), false), "envoy-1"));
        let service = CsdsService::new(Arc::new(ClientStatusTracker::new()));
        let regex = NodeMatcher {
            node_id: Some(m(MatchPattern::SafeRegex(Default::default()), false)),
            node_metadatas: vec![],
        };
        let request = ClientStatusRequest { node_matchers: vec![exact("x"), regex], ..Default::default() };
        let err = service.client_status(&request).expect_err("regex is refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("node_matchers[1].node_id.safe_regex"), "{}", err.message());
    }
}
