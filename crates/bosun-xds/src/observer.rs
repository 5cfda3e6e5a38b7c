//! Observing the server: stream lifecycle, requests, responses, ACKs and NACKs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;

use crate::snapshot::TypeResources;

/// Identifies one stream for the lifetime of the server.
pub type StreamId = u64;

/// A response the server wrote to a stream.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEvent<'a> {
    /// The response's type URL.
    pub type_url: &'a str,
    /// `version_info` of the response.
    pub version: &'a str,
    /// The response's nonce.
    pub nonce: &'a str,
    /// Number of resources in the response.
    pub resources: usize,
    /// Encoded size of the response in bytes.
    pub bytes: usize,
    /// Time from the moment the resources were set in the cache to this response.
    pub latency: Duration,
}

/// What a stream is subscribed to for one type.
#[derive(Debug, Clone, Copy)]
pub enum Subscribed<'a> {
    /// Every resource of the type (wildcard).
    All,
    /// These names only.
    Names(&'a HashSet<String>),
    /// These names only, as a Delta stream keeps them.
    SharedNames(&'a HashSet<Arc<str>>),
}

impl Subscribed<'_> {
    /// How many names (0 for the wildcard).
    pub fn len(&self) -> usize {
        match self {
            Self::All => 0,
            Self::Names(n) => n.len(),
            Self::SharedNames(n) => n.len(),
        }
    }

    /// Whether no name is subscribed (always true for the wildcard, which names none).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is subscribed by name.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::All => false,
            Self::Names(n) => n.contains(name),
            Self::SharedNames(n) => n.contains(name),
        }
    }

    /// The names, unordered.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => Vec::new(),
            Self::Names(n) => n.iter().cloned().collect(),
            Self::SharedNames(n) => n.iter().map(|n| n.to_string()).collect(),
        }
    }
}

/// The resources a response was selected from, for observers that report which configuration
/// each client holds (CSDS). `resources` is the node's whole set of the type; the client holds
/// the part of it that `subscribed` selects.
#[derive(Debug, Clone, Copy)]
pub struct SentResources<'a> {
    /// The response's type URL.
    pub type_url: &'a str,
    /// `version_info` of the response.
    pub version: &'a str,
    /// The node's resources of this type when the response was written.
    pub resources: &'a Arc<TypeResources>,
    /// What the stream subscribed to when the response was written.
    pub subscribed: Subscribed<'a>,
    /// Changes whenever what the stream subscribes to for this type changes: two responses of
    /// one stream and type with the same generation have the same `subscribed`, so an observer
    /// need not compare the names.
    pub subscription_generation: u64,
}

/// Receives the server's events. Every method has an empty default, so an observer implements
/// only what it needs. Methods are called on the stream's task: they must not block.
pub trait Observer: Send + Sync + 'static {
    /// A stream opened; `node` is the node of its first request.
    fn stream_opened(&self, _id: StreamId, _node: &Node) {}
    /// A stream closed (`error` holds why, if it ended with an error).
    fn stream_closed(&self, _id: StreamId, _error: Option<&tonic::Status>) {}
    /// A request arrived for `type_url` naming `names`: in State of the World the whole
    /// subscription (empty: wildcard or none), in Delta the names it newly subscribes to.
    fn request(&self, _id: StreamId, _type_url: &str, _names: &[String]) {}
    /// A response was written.
    fn response(&self, _id: StreamId, _event: &ResponseEvent<'_>) {}
    /// A heartbeat was written: a response that renews the TTLs of resources the client holds
    /// (see [`crate::XdsServerBuilder::heartbeat_interval`]). By default it counts as a response.
    fn heartbeat(&self, id: StreamId, event: &ResponseEvent<'_>) {
        self.response(id, event);
    }
    /// A response was written (right after [`Observer::response`]): what it was selected from.
    fn resources_sent(&self, _id: StreamId, _sent: &SentResources<'_>) {}
    /// The client accepted `version` of `type_url`.
    fn ack(&self, _id: StreamId, _type_url: &str, _version: &str) {}
    /// The client rejected `version` of `type_url` with `message`.
    fn nack(&self, _id: StreamId, _type_url: &str, _version: &str, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {}
