//! Observing the server: stream lifecycle, requests, responses, ACKs and NACKs.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;

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
    /// The client accepted `version` of `type_url`.
    fn ack(&self, _id: StreamId, _type_url: &str, _version: &str) {}
    /// The client rejected `version` of `type_url` with `message`.
    fn nack(&self, _id: StreamId, _type_url: &str, _version: &str, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {}
