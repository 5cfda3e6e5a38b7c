//! [`ClientStatusTracker`]: an [`Observer`] that remembers, per stream and type, what was
//! requested, sent, accepted and rejected.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use parking_lot::Mutex;

use crate::observer::{Observer, ResponseEvent, SentResources, StreamId, Subscribed};
use crate::snapshot::TypeResources;

/// Streams are spread over this many locks so that a push to many streams does not serialize
/// on one.
const SHARDS: usize = 16;

/// What every connected stream was sent and answered. Give it to the server as its observer
/// (or call it from yours) and serve it with [`super::CsdsService`].
#[derive(Default)]
pub struct ClientStatusTracker {
    shards: [Mutex<HashMap<StreamId, ClientStream>>; SHARDS],
}

impl std::fmt::Debug for ClientStatusTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStatusTracker").finish_non_exhaustive()
    }
}

/// One connected stream.
#[derive(Debug, Clone)]
pub struct ClientStream {
    /// The stream's id.
    pub stream: StreamId,
    /// The node of the stream's first request, without its `extensions`, `client_features` and
    /// `listening_addresses` (Envoy lists hundreds of extensions; keeping them per stream would
    /// cost more than the rest of the stream's state).
    pub node: Node,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// Per type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

/// One type on one stream.
#[derive(Debug, Clone, Default)]
pub struct TypeStatus {
    /// The names of the last request, until a response of the type is sent (then `held` says
    /// what the client subscribed to, and this is empty so that names are not kept twice).
    pub requested: Vec<String>,
    /// Version of the last response sent.
    pub sent_version: Option<String>,
    /// Nonce of the last response sent.
    pub sent_nonce: Option<String>,
    /// Resources in the last response sent.
    pub sent_resources: usize,
    /// What the client holds after the last response, if one was sent.
    pub held: Option<Held>,
    /// The last version the node accepted.
    pub acked_version: Option<String>,
    /// The last rejection, until a later version is accepted.
    pub last_nack: Option<Nack>,
}

/// What a client holds of one type: the part of `resources` that `names` selects.
#[derive(Debug, Clone)]
pub struct Held {
    /// The node's resources of the type when the last response was sent.
    pub resources: Arc<TypeResources>,
    /// The subscribed names; `None`: every resource (wildcard).
    pub names: Option<Vec<String>>,
    /// The stream's subscription generation these names were taken at.
    pub subscription_generation: u64,
    /// When the last response was sent.
    pub sent_at: SystemTime,
}

/// A rejected version.
#[derive(Debug, Clone)]
pub struct Nack {
    /// The version the client rejected.
    pub version: String,
    /// The client's error message.
    pub message: String,
    /// When the rejection arrived.
    pub at: SystemTime,
}

/// Where a type stands on one client, the way `istioctl proxy-status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Nothing was sent yet.
    NotSent,
    /// The last response sent was accepted.
    Synced,
    /// A response was sent and not answered yet.
    Stale,
    /// The last response sent was rejected.
    Nacked,
}

impl SyncState {
    /// `NOT_SENT`, `SYNCED`, `STALE` or `NACKED`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::NotSent => "NOT_SENT",
            SyncState::Synced => "SYNCED",
            SyncState::Stale => "STALE",
            SyncState::Nacked => "NACKED",
        }
    }
}

impl TypeStatus {
    /// Where the type stands: compares what was sent with what the client answered.
    pub fn state(&self) -> SyncState {
        let Some(sent) = &self.sent_version else { return SyncState::NotSent };
        if self.last_nack.as_ref().is_some_and(|n| &n.version == sent) {
            SyncState::Nacked
        } else if self.acked_version.as_ref() == Some(sent) {
            SyncState::Synced
        } else {
            SyncState::Stale
        }
    }
}

/// The node without the fields that only describe the binary (see [`ClientStream::node`]).
fn trimmed(node: &Node) -> Node {
    Node {
        id: node.id.clone(),
        cluster: node.cluster.clone(),
        metadata: node.metadata.clone(),
        locality: node.locality.clone(),
        user_agent_name: node.user_agent_name.clone(),
        user_agent_version_type: node.user_agent_version_type.clone(),
        ..Default::default()
    }
}

impl ClientStatusTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, id: StreamId) -> &Mutex<HashMap<StreamId, ClientStream>> {
        &self.shards[(id as usize) % SHARDS]
    }

    fn with_type(&self, id: StreamId, type_url: &str, f: impl FnOnce(&mut TypeStatus)) {
        if let Some(stream) = self.shard(id).lock().get_mut(&id) {
            match stream.types.get_mut(type_url) {
                Some(status) => f(status),
                None => f(stream.types.entry(type_url.to_owned()).or_default()),
            }
        }
    }

    /// Every connected stream, ordered by node id, then stream id.
    pub fn streams(&self) -> Vec<ClientStream> {
        let mut all: Vec<ClientStream> =
            self.shards.iter().flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>()).collect();
        all.sort_by(|a, b| (&a.node.id, a.stream).cmp(&(&b.node.id, b.stream)));
        all
    }

    /// Whether stream `id` is open (opened and not closed).
    pub fn is_open(&self, id: StreamId) -> bool {
        self.shard(id).lock().contains_key(&id)
    }

    /// The number of connected streams.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no stream is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Observer for ClientStatusTracker {
    fn stream_opened(&self, id: StreamId, node: &Node) {
        let stream =
            ClientStream { stream: id, node: trimmed(node), connected_at: SystemTime::now(), types: BTreeMap::new() };
        self.shard(id).lock().insert(id, stream);
    }

    fn stream_closed(&self, id: StreamId, _error: Option<&tonic::Status>) {
        self.shard(id).lock().remove(&id);
    }

    fn request(&self, id: StreamId, type_url: &str, names: &[String]) {
        self.with_type(id, type_url, |t| {
            if t.held.is_none() && t.requested != names {
                t.requested = names.to_vec();
            }
        });
    }

    fn response(&self, id: StreamId, event: &ResponseEvent<'_>) {
        self.with_type(id, event.type_url, |t| {
            t.sent_version = Some(event.version.to_owned());
            t.sent_nonce = Some(event.nonce.to_owned());
            t.sent_resources = event.resources;
        });
    }

    fn resources_sent(&self, id: StreamId, sent: &SentResources<'_>) {
        self.with_type(id, sent.type_url, |t| {
            let generation = sent.subscription_generation;
            let names = match (sent.subscribed, t.held.take()) {
                (Subscribed::All, _) => None,
                // The subscription did not change since the last response (the usual case on a
                // push): the names are the ones held, with neither a copy nor a comparison.
                (_, Some(Held { names: Some(held), subscription_generation, .. }))
                    if subscription_generation == generation =>
                {
                    Some(held)
                }
                (names, _) => {
                    let mut names = names.names();
                    names.sort_unstable();
                    Some(names)
                }
            };
            t.held = Some(Held {
                resources: sent.resources.clone(),
                names,
                subscription_generation: generation,
                sent_at: SystemTime::now(),
            });
            t.requested = Vec::new();
        });
    }

    fn ack(&self, id: StreamId, type_url: &str, version: &str) {
        self.with_type(id, type_url, |t| {
            if t.last_nack.as_ref().is_some_and(|n| n.version != version) {
                t.last_nack = None;
            }
            t.acked_version = Some(version.to_owned());
        });
    }

    fn nack(&self, id: StreamId, type_url: &str, version: &str, message: &str) {
        self.with_type(id, type_url, |t| {
            // The version the client rejected is the one we sent; `version` is the one it keeps.
            let rejected = t.sent_version.clone().unwrap_or_else(|| version.to_owned());
            t.last_nack = Some(Nack { version: rejected, message: message.to_owned(), at: SystemTime::now() });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sent(tracker: &ClientStatusTracker, id: StreamId, version: &str, nonce: &str) {
        let event = ResponseEvent { type_url: "t", version, nonce, resources: 1, bytes: 10, latency: Duration::ZERO };
        tracker.response(id, &event);
    }

    #[test]
    fn states_follow_responses_acks_and_nacks() {
        let tracker = ClientStatusTracker::new();
        let node = Node { id: "n1".into(), ..Default::default() };
        tracker.stream_opened(7, &node);
        tracker.request(7, "t", &[]);
        let state = |tracker: &ClientStatusTracker| tracker.streams()[0].types["t"].state();
        assert_eq!(state(&tracker), SyncState::NotSent);
        sent(&tracker, 7, "v1", "1");
        assert_eq!(state(&tracker), SyncState::Stale);
        tracker.ack(7, "t", "v1");
        assert_eq!(state(&tracker), SyncState::Synced);
        sent(&tracker, 7, "v2", "2");
        tracker.nack(7, "t", "v1", "bad cluster");
        assert_eq!(state(&tracker), SyncState::Nacked);
        let status = &tracker.streams()[0].types["t"];
        assert_eq!(status.acked_version.as_deref(), Some("v1"));
        assert_eq!(status.last_nack.as_ref().map(|n| n.version.as_str()), Some("v2"));
        sent(&tracker, 7, "v3", "3");
        assert_eq!(state(&tracker), SyncState::Stale);
        tracker.ack(7, "t", "v3");
        assert_eq!(state(&tracker), SyncState::Synced);
        assert!(tracker.streams()[0].types["t"].last_nack.is_none());
        tracker.stream_closed(7, None);
        assert!(tracker.is_empty());
    }

    #[test]
    fn held_names_follow_the_subscription() {
        let tracker = ClientStatusTracker::new();
        tracker.stream_opened(3, &Node { id: "n".into(), ..Default::default() });
        let set = Arc::new(TypeResources::new("t", []));
        let held = |tracker: &ClientStatusTracker| tracker.streams()[0].types["t"].held.clone().expect("held").names;
        let send = |names: &std::collections::HashSet<String>, generation: u64| {
            let subscribed = Subscribed::Names(names);
            let sent = SentResources {
                type_url: "t",
                version: "v",
                resources: &set,
                subscribed,
                subscription_generation: generation,
            };
            tracker.resources_sent(3, &sent);
        };
        let ab: std::collections::HashSet<String> = ["b".to_owned(), "a".to_owned()].into();
        send(&ab, 1);
        assert_eq!(held(&tracker), Some(vec!["a".to_owned(), "b".to_owned()]));
        send(&ab, 1);
        assert_eq!(held(&tracker), Some(vec!["a".to_owned(), "b".to_owned()]));
        let ac: std::collections::HashSet<String> = ["a".to_owned(), "c".to_owned()].into();
        send(&ac, 2);
        assert_eq!(held(&tracker), Some(vec!["a".to_owned(), "c".to_owned()]));
        // The same generation means the same names: they are taken as held, not read again.
        send(&ab, 2);
        assert_eq!(held(&tracker), Some(vec!["a".to_owned(), "c".to_owned()]));
        let all = SentResources {
            type_url: "t",
            version: "v",
            resources: &set,
            subscribed: Subscribed::All,
            subscription_generation: 3,
        };
        tracker.resources_sent(3, &all);
        assert_eq!(held(&tracker), None);
    }

    #[test]
    fn keeps_the_node_without_its_extensions() {
        let tracker = ClientStatusTracker::new();
        let node = Node {
            id: "n1".into(),
            cluster: "c".into(),
            extensions: vec![Default::default(); 3],
            client_features: vec!["f".into()],
            ..Default::default()
        };
        tracker.stream_opened(1, &node);
        let kept = &tracker.streams()[0].node;
        assert_eq!((kept.id.as_str(), kept.cluster.as_str()), ("n1", "c"));
        assert!(kept.extensions.is_empty() && kept.client_features.is_empty());
    }
}
