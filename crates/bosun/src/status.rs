//! What the xDS server did, kept for `/status` and `/metrics`: an [`Observer`] of the server.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use bosun_xds::observer::{Observer, ResponseEvent, StreamId};
use envoy_types::pb::envoy::config::core::v3::Node;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Streams are spread over this many locks so that a push to many streams does not serialize
/// on one.
const SHARDS: usize = 16;

/// The status of every connected stream, and the server's metrics.
pub struct XdsStatus {
    shards: [Mutex<HashMap<StreamId, StreamStatus>>; SHARDS],
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeStatus {
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
    response_bytes: Family<TypeLabel, Counter>,
    acks: Family<TypeLabel, Counter>,
    nacks: Family<TypeLabel, Counter>,
    push_latency: Family<TypeLabel, Histogram>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
            response_bytes: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            push_latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
        };
        let xds = registry.sub_registry_with_prefix("bosun_xds");
        xds.register("streams", "Connected xDS streams", metrics.streams.clone());
        xds.register("requests", "Discovery requests received", metrics.requests.clone());
        xds.register("responses", "Discovery responses sent (pushes)", metrics.responses.clone());
        xds.register("response_bytes", "Bytes of discovery responses sent", metrics.response_bytes.clone());
        xds.register("acks", "Responses accepted by clients", metrics.acks.clone());
        xds.register("nacks", "Responses rejected by clients", metrics.nacks.clone());
        xds.register(
            "push_latency_seconds",
            "Time from a change of resources to the response that carries it",
            metrics.push_latency.clone(),
        );
        Self { shards: Default::default(), metrics }
    }

    fn shard(&self, id: StreamId) -> &Mutex<HashMap<StreamId, StreamStatus>> {
        &self.shards[(id as usize) % SHARDS]
    }

    fn with_type(&self, id: StreamId, type_url: &str, f: impl FnOnce(&mut TypeStatus)) {
        if let Some(stream) = self.shard(id).lock().get_mut(&id) {
            f(stream.types.entry(type_url.to_owned()).or_default());
        }
    }

    /// Every connected stream, ordered by node id.
    pub fn streams(&self) -> Vec<StreamStatus> {
        let mut all: Vec<StreamStatus> =
            self.shards.iter().flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>()).collect();
        all.sort_by(|a, b| (&a.node_id, a.stream).cmp(&(&b.node_id, b.stream)));
        all
    }
}

impl Observer for XdsStatus {
    fn stream_opened(&self, id: StreamId, node: &Node) {
        self.metrics.streams.inc();
        tracing::debug!(stream = id, node = %node.id, cluster = %node.cluster, "xDS stream opened");
        let status = StreamStatus {
            stream: id,
            node_id: node.id.clone(),
            cluster: node.cluster.clone(),
            connected_at: unix_now(),
            types: BTreeMap::new(),
        };
        self.shard(id).lock().insert(id, status);
    }

    fn stream_closed(&self, id: StreamId, error: Option<&tonic::Status>) {
        if self.shard(id).lock().remove(&id).is_some() {
            self.metrics.streams.dec();
        }
        tracing::debug!(stream = id, error = ?error.map(|e| e.message()), "xDS stream closed");
    }

    fn request(&self, _id: StreamId, type_url: &str, _names: &[String]) {
        self.metrics.requests.get_or_create(&type_label(type_url)).inc();
    }

    fn response(&self, id: StreamId, event: &ResponseEvent<'_>) {
        let label = type_label(event.type_url);
        self.metrics.responses.get_or_create(&label).inc();
        self.metrics.response_bytes.get_or_create(&label).inc_by(event.bytes as u64);
        self.metrics.push_latency.get_or_create(&label).observe(event.latency.as_secs_f64());
        self.with_type(id, event.type_url, |t| {
            t.sent_version = Some(event.version.to_owned());
            t.sent_nonce = Some(event.nonce.to_owned());
            t.sent_resources = event.resources;
        });
    }

    fn ack(&self, id: StreamId, type_url: &str, version: &str) {
        self.metrics.acks.get_or_create(&type_label(type_url)).inc();
        self.with_type(id, type_url, |t| {
            if t.last_nack.as_ref().is_some_and(|n| n.version != version) {
                t.last_nack = None;
            }
            t.acked_version = Some(version.to_owned());
        });
    }

    fn nack(&self, id: StreamId, type_url: &str, version: &str, message: &str) {
        self.metrics.nacks.get_or_create(&type_label(type_url)).inc();
        self.with_type(id, type_url, |t| {
            // The version the client rejected is the one we sent; `version` is the one it keeps.
            let rejected = t.sent_version.clone().unwrap_or_else(|| version.to_owned());
            t.last_nack = Some(Nack { version: rejected, message: message.to_owned(), at: unix_now() });
        });
    }
}
