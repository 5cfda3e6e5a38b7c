//! What the xDS server did, kept for `/status`, `/metrics` and CSDS: an [`Observer`] of the server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bosun_xds::csds::{self, ClientStatusTracker};
use bosun_xds::observer::{Observer, ResponseEvent, SentResources, StreamId};
use envoy_types::pb::envoy::config::core::v3::Node;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// The status of every connected stream (kept by the library's CSDS tracker, which `/status`,
/// `bosun status` and CSDS all read), and the server's metrics.
pub struct XdsStatus {
    tracker: Arc<ClientStatusTracker>,
    metrics: Metrics,
}

/// One connected stream, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub stream: StreamId,
    pub node_id: String,
    pub cluster: String,
    pub connected_at: u64,
    /// Per type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

/// One type on one stream.
#[derive(Debug, Clone, Serialize)]
pub struct TypeStatus {
    /// `SYNCED`, `STALE` (sent, not answered yet), `NACKED` or `NOT_SENT`.
    pub state: &'static str,
    /// Version of the last response sent.
    pub sent_version: Option<String>,
    /// Nonce of the last response sent.
    pub sent_nonce: Option<String>,
    /// Resources in the last response sent.
    pub sent_resources: usize,
    /// The last version the node accepted.
    pub acked_version: Option<String>,
    /// The last rejection, until a later version is accepted.
    pub last_nack: Option<Nack>,
}

/// A rejected version.
#[derive(Debug, Clone, Serialize)]
pub struct Nack {
    pub version: String,
    pub message: String,
    pub at: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

struct Metrics {
    streams: Gauge,
    requests: Family<TypeLabel, Counter>,
    responses: Family<TypeLabel, Counter>,
    heartbeats: Family<TypeLabel, Counter>,
    response_bytes: Family<TypeLabel, Counter>,
    acks: Family<TypeLabel, Counter>,
    nacks: Family<TypeLabel, Counter>,
    push_latency: Family<TypeLabel, Histogram>,
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A short metric label for a type URL: the message name without its package.
fn type_label(type_url: &str) -> TypeLabel {
    let name = type_url.rsplit(['/', '.']).next().unwrap_or(type_url);
    TypeLabel { r#type: name.to_owned() }
}

impl XdsStatus {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            streams: Gauge::default(),
            requests: Family::default(),
            responses: Family::default(),
            heartbeats: Family::default(),
            response_bytes: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            push_latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
        };
        let xds = registry.sub_registry_with_prefix("bosun_xds");
        xds.register("streams", "Connected xDS streams", metrics.streams.clone());
        xds.register("requests", "Discovery requests received", metrics.requests.clone());
        xds.register("responses", "Discovery responses sent (pushes)", metrics.responses.clone());
        xds.register("heartbeats", "Heartbeat responses sent (renewing resource TTLs)", metrics.heartbeats.clone());
        xds.register("response_bytes", "Bytes of discovery responses sent", metrics.response_bytes.clone());
        xds.register("acks", "Responses accepted by clients", metrics.acks.clone());
        xds.register("nacks", "Responses rejected by clients", metrics.nacks.clone());
        xds.register(
            "push_latency_seconds",
            "Time from a change of resources to the response that carries it",
            metrics.push_latency.clone(),
        );
        Self { tracker: Arc::new(ClientStatusTracker::new()), metrics }
    }

    /// The per-client state, for CSDS.
    pub fn tracker(&self) -> Arc<ClientStatusTracker> {
        self.tracker.clone()
    }

    /// Every connected stream, ordered by node id.
    pub fn streams(&self) -> Vec<StreamStatus> {
        self.tracker
            .streams()
            .into_iter()
            .map(|s| StreamStatus {
                stream: s.stream,
                node_id: s.node.id,
                cluster: s.node.cluster,
                connected_at: unix_seconds(s.connected_at),
                types: s.types.into_iter().map(|(url, t)| (url, type_status(t))).collect(),
            })
            .collect()
    }
}

fn type_status(t: csds::TypeStatus) -> TypeStatus {
    TypeStatus {
        state: t.state().as_str(),
        sent_version: t.sent_version,
        sent_nonce: t.sent_nonce,
        sent_resources: t.sent_resources,
        acked_version: t.acked_version,
        last_nack: t.last_nack.map(|n| Nack { version: n.version, message: n.message, at: unix_seconds(n.at) }),
    }
}

impl Observer for XdsStatus {
    fn stream_opened(&self, id: StreamId, node: &Node) {
        self.metrics.streams.inc();
        tracing::debug!(stream = id, node = %node.id, cluster = %node.cluster, "xDS stream opened");
        self.tracker.stream_opened(id, node);
    }

    fn stream_closed(&self, id: StreamId, error: Option<&tonic::Status>) {
        // A stream refused before its node was known was never counted as open.
        if self.tracker.is_open(id) {
            self.metrics.streams.dec();
        }
        self.tracker.stream_closed(id, error);
        tracing::debug!(stream = id, error = ?error.map(|e| e.message()), "xDS stream closed");
    }

    fn request(&self, id: StreamId, type_url: &str, names: &[String]) {
        self.metrics.requests.get_or_create(&type_label(type_url)).inc();
        self.tracker.request(id, type_url, names);
    }

    fn response(&self, id: StreamId, event: &ResponseEvent<'_>) {
        let label = type_label(event.type_url);
        self.metrics.responses.get_or_create(&label).inc();
        self.metrics.response_bytes.get_or_create(&label).inc_by(event.bytes as u64);
        self.metrics.push_latency.get_or_create(&label).observe(event.latency.as_secs_f64());
        self.tracker.response(id, event);
    }

    fn heartbeat(&self, id: StreamId, event: &ResponseEvent<'_>) {
        // Not a push: no push latency.
        let label = type_label(event.type_url);
        self.metrics.heartbeats.get_or_create(&label).inc();
        self.metrics.response_bytes.get_or_create(&label).inc_by(event.bytes as u64);
        self.tracker.heartbeat(id, event);
    }

    fn resources_sent(&self, id: StreamId, sent: &SentResources<'_>) {
        self.tracker.resources_sent(id, sent);
    }

    fn ack(&self, id: StreamId, type_url: &str, version: &str) {
        self.metrics.acks.get_or_create(&type_label(type_url)).inc();
        self.tracker.ack(id, type_url, version);
    }

    fn nack(&self, id: StreamId, type_url: &str, version: &str, message: &str) {
        self.metrics.nacks.get_or_create(&type_label(type_url)).inc();
        self.tracker.nack(id, type_url, version, message);
    }
}
