//! The State-of-the-World stream: one per ADS or per-type stream, driven by the response body.
//!
//! No task or channel per stream: the state machine runs when the transport polls the response
//! stream, reads requests and cache changes, and yields responses. A response of a type is not
//! followed by another of that type until the client answered it (ACK or NACK), which is the
//! flow control xDS gives.
//!
//! With heartbeats on ([`crate::XdsServerBuilder::heartbeat_interval`]), a stream whose client
//! honours TTLs has one timer; on each tick it sends again, at the same version, the resources
//! with a TTL of every type whose last response was ACKed (the whole subscribed set for
//! full-state types), so the client renews their TTLs.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use futures::{FutureExt, StreamExt};
use tokio_stream::StreamMap;
use tokio_stream::wrappers::WatchStream;
use tonic::{Status, Streaming};

use super::Shared;
use super::subscription::{SentVersions, Subscription};
use crate::codec::{EncodedMessage, len_field_size, put_len_field};
use crate::observer::{SentResources, StreamId};
use crate::resource::{push_priority as priority, type_url};
use crate::snapshot::TypeResources;

type Change = Option<Arc<TypeResources>>;

/// Per-type state of a stream.
struct TypeState {
    type_url: Arc<str>,
    subscription: Subscription,
    /// The resources the cache holds for this node (`None`: no snapshot yet).
    current: Option<Arc<TypeResources>>,
    /// The client sent at least one request of this type.
    requested: bool,
    /// The last response sent, if any.
    sent: Option<Sent>,
    /// Full-state type (CDS, LDS): every response carries the whole subscribed set.
    full_state: bool,
    /// The client receives resources of this type with a TTL wrapped with it, and heartbeats.
    ttl_client: bool,
    /// Partial types (EDS, RDS, ...): the version of each resource last sent, so an update
    /// carries only what changed.
    sent_versions: SentVersions,
    /// A response is out and the client has not answered it yet.
    awaiting_reply: bool,
    /// The client answered the last response with a NACK: it holds another version.
    nacked: bool,
    /// Answer the next request even if nothing changed (a cluster or listener is warming).
    answer_next_request: bool,
    /// Send on the next flush even if nothing changed.
    force: bool,
}

struct Sent {
    nonce: String,
    digest: u64,
}

/// Types that are full-state in SotW: a response carries every subscribed resource, and an
/// empty response is meaningful (everything was removed).
fn full_state(type_url: &str) -> bool {
    matches!(type_url, type_url::CLUSTER | type_url::LISTENER | type_url::SCOPED_ROUTE)
}

pub(crate) struct SotwStream {
    shared: Arc<Shared>,
    id: StreamId,
    requests: Streaming<DiscoveryRequest>,
    /// The type of a per-type stream; `None` for ADS.
    fixed_type: Option<&'static str>,
    node: Option<Node>,
    types: Vec<TypeState>,
    /// Indices into `types`, in sending order.
    order: Vec<usize>,
    changes: StreamMap<usize, WatchStream<Change>>,
    next_nonce: u64,
    outbox: VecDeque<EncodedMessage>,
    done: bool,
    /// Ticks when heartbeats are due (only for a TTL client of a server that sends them).
    heartbeat: Option<tokio::time::Interval>,
}

impl SotwStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: Streaming<DiscoveryRequest>,
        fixed_type: Option<&'static str>,
    ) -> Self {
        let id = shared.next_stream_id();
        Self {
            shared,
            id,
            requests,
            fixed_type,
            node: None,
            types: Vec::new(),
            order: Vec::new(),
            changes: StreamMap::new(),
            next_nonce: 0,
            outbox: VecDeque::new(),
            done: false,
            heartbeat: None,
        }
    }

    /// The next response to send, `None` when the stream is over.
    pub(crate) async fn next_response(&mut self) -> Option<Result<EncodedMessage, Status>> {
        loop {
            if let Some(m) = self.outbox.pop_front() {
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                biased;
                req = self.requests.next() => match req {
                    None => {
                        self.done = true;
                    }
                    Some(Err(status)) => {
                        // A reset by the client, or a request that could not be decoded (not
                        // protobuf, too large): the status goes back, for a client still there.
                        tracing::debug!(stream = self.id, %status, "xDS stream ended: its request could not be read");
                        self.done = true;
                        return Some(Err(status));
                    }
                    Some(Ok(req)) => {
                        if let Err(status) = self.on_request(req) {
                            tracing::debug!(stream = self.id, %status, "xDS stream refused");
                            self.done = true;
                            self.shared.observer.stream_closed(self.id, Some(&status));
                            self.node = None;
                            return Some(Err(status));
                        }
                        self.flush();
                    }
                },
                Some((idx, value)) = self.changes.next(), if !self.changes.is_empty() => {
                    self.types[idx].current = value;
                    // Take every change that is already there, so types changed together are
                    // sent in order (CDS before EDS before LDS before RDS).
                    while let Some(Some((idx, value))) = self.changes.next().now_or_never() {
                        self.types[idx].current = value;
                    }
                    self.flush();
                }
                _ = super::next_heartbeat(&mut self.heartbeat), if self.heartbeat.is_some() => {
                    self.send_heartbeats();
                }
            }
        }
    }

    fn on_request(&mut self, req: DiscoveryRequest) -> Result<(), Status> {
        let first_request = self.node.is_none();
        let type_url = super::check_request(
            &self.shared,
            self.id,
            &mut self.node,
            req.node.as_ref(),
            self.fixed_type,
            &req.type_url,
        )?;
        if first_request {
            let ttl_client = self.node.as_ref().is_some_and(super::wants_sotw_ttl);
            self.heartbeat = super::heartbeat_timer(&self.shared, ttl_client);
        }
        self.shared.observer.request(self.id, type_url, &req.resource_names);
        let idx = match self.types.iter().position(|t| &*t.type_url == type_url) {
            Some(idx) => idx,
            None => {
                super::check_type_count(self.types.len())?;
                let rx = match &self.node {
                    Some(node) => self.shared.cache.watch(node, type_url),
                    None => return Err(Status::internal("stream has no node")),
                };
                self.add_type(type_url, rx)
            }
        };
        let legacy_allowed = self.shared.legacy_wildcard(type_url);
        let node_id = self.node.as_ref().map_or("", |n| n.id.as_str());
        let st = &mut self.types[idx];
        let first = !st.requested;
        st.requested = true;
        let current_nonce = st.sent.as_ref().is_some_and(|s| s.nonce == req.response_nonce);
        if current_nonce {
            // The client answers our last response of this type.
            st.awaiting_reply = false;
            st.nacked = req.error_detail.is_some();
            match &req.error_detail {
                Some(err) => {
                    tracing::warn!(stream = self.id, node = node_id, type_url, version = %req.version_info, error = %err.message, "NACK");
                    self.shared.observer.nack(self.id, type_url, &req.version_info, &err.message);
                }
                None => self.shared.observer.ack(self.id, type_url, &req.version_info),
            }
        } else if !req.response_nonce.is_empty() {
            // A stale nonce: the client has not seen our last response yet. Only its names
            // count; it will answer the newer response.
            tracing::trace!(stream = self.id, type_url, nonce = %req.response_nonce, "stale nonce");
        }
        let changed = st.subscription.update(&req.resource_names, first, legacy_allowed);
        if st.answer_next_request && req.error_detail.is_none() && (current_nonce || req.response_nonce.is_empty()) {
            st.answer_next_request = false;
            st.force = true;
        }
        if changed && st.full_state && !st.awaiting_reply && st.sent.is_some() {
            // A newly subscribed name is sent even if its content did not change since it was
            // last sent (go-control-plane #431). Partial types track it per name; for full-state
            // types the digest change covers it, and `force` a re-subscription to the same set.
            st.force = true;
        }
        Ok(())
    }

    fn add_type(&mut self, type_url: &str, mut rx: crate::cache::TypeWatch) -> usize {
        let current = rx.borrow_and_update().clone();
        let idx = self.types.len();
        self.types.push(TypeState {
            type_url: type_url.into(),
            subscription: Subscription::default(),
            current,
            requested: false,
            sent: None,
            full_state: full_state(type_url),
            ttl_client: self.node.as_ref().is_some_and(|n| super::wants_sotw_ttl_for(n, type_url)),
            sent_versions: SentVersions::default(),
            awaiting_reply: false,
            nacked: false,
            answer_next_request: false,
            force: false,
        });
        self.changes.insert(idx, WatchStream::from_changes(rx));
        let p = priority(type_url);
        let pos = self.order.iter().position(|&i| priority(&self.types[i].type_url) > p).unwrap_or(self.order.len());
        self.order.insert(pos, idx);
        idx
    }

    /// Queues a response for every type that is due, in sending order.
    fn flush(&mut self) {
        for i in 0..self.order.len() {
            let idx = self.order[i];
            let st = &mut self.types[idx];
            let ttl_client = st.ttl_client;
            if !st.requested || st.awaiting_reply {
                continue;
            }
            let Some(current) = st.current.clone() else { continue };
            let selection = if st.full_state {
                let selection = st.subscription.select(&current, ttl_client);
                if !st.force && st.sent.as_ref().is_some_and(|s| s.digest == selection.digest) {
                    continue;
                }
                selection
            } else {
                // Only what changed since it was last sent (all of it when forced); nothing
                // changed, or nothing the client asked for exists yet: nothing to send.
                let selection = st.subscription.select_changed(&current, &mut st.sent_versions, st.force, ttl_client);
                if selection.count == 0 && !st.force {
                    continue;
                }
                selection
            };
            st.force = false;
            // This response answers a warming cluster (listener) too.
            st.answer_next_request = false;
            let nonce = self.queue_response(idx, &current, selection.chunks, selection.count, false);
            let st = &mut self.types[idx];
            let sent = SentResources {
                type_url: &st.type_url,
                version: current.version(),
                resources: &current,
                subscribed: st.subscription.subscribed(),
                subscription_generation: st.subscription.generation(),
            };
            self.shared.observer.resources_sent(self.id, &sent);
            st.sent = Some(Sent { nonce, digest: selection.digest });
            let dependent = match &*st.type_url {
                type_url::CLUSTER => Some(type_url::ENDPOINT),
                type_url::LISTENER => Some(type_url::ROUTE),
                _ => None,
            };
            if let (None, Some(dep)) = (self.fixed_type, dependent) {
                // Envoy re-requests EDS (RDS) for the clusters (listeners) it is warming: answer
                // even if nothing changed, or they warm until the initial fetch timeout.
                if let Some(d) = self.types.iter_mut().find(|t| &*t.type_url == dep) {
                    d.answer_next_request = true;
                }
            }
        }
    }

    /// Queues a heartbeat for every type whose last response the client ACKed and that holds
    /// resources with a TTL: those resources again, wrapped with their TTL, at the version the
    /// client holds (for full-state types, the whole subscribed set, or the client would drop
    /// what the response leaves out). A type with a response outstanding skips this tick.
    fn send_heartbeats(&mut self) {
        for i in 0..self.order.len() {
            let idx = self.order[i];
            let st = &mut self.types[idx];
            if !st.ttl_client || st.awaiting_reply || st.nacked || st.sent.is_none() {
                continue;
            }
            let Some(current) = st.current.clone() else { continue };
            let selection = if st.full_state {
                if !st.subscription.selects_ttl(&current) {
                    continue;
                }
                let selection = st.subscription.select(&current, true);
                if st.sent.as_ref().is_some_and(|s| s.digest != selection.digest) {
                    // Not what the client holds (a change is on its way): no heartbeat.
                    continue;
                }
                selection
            } else {
                st.subscription.select_ttl_sent(&current, &st.sent_versions)
            };
            if selection.count == 0 {
                continue;
            }
            let nonce = self.queue_response(idx, &current, selection.chunks, selection.count, true);
            if let Some(sent) = &mut self.types[idx].sent {
                sent.nonce = nonce;
            }
        }
    }

    /// Queues a response of type `idx` made of `chunks` (`count` resources) at the version of
    /// `current`, reports it to the observer, and returns its nonce.
    fn queue_response(
        &mut self,
        idx: usize,
        current: &TypeResources,
        chunks: Vec<Bytes>,
        count: usize,
        heartbeat: bool,
    ) -> String {
        let st = &mut self.types[idx];
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let head = response_head(current.version(), &st.type_url, &nonce, &self.shared.control_plane_id);
        let message = EncodedMessage::new(head, chunks);
        let sent = super::Outgoing { type_url: &st.type_url, current, nonce: &nonce, count, heartbeat };
        super::report_response(&self.shared, self.id, &sent, &message);
        st.awaiting_reply = true;
        self.outbox.push_back(message);
        nonce
    }
}

impl Drop for SotwStream {
    fn drop(&mut self) {
        if self.node.is_some() {
            self.shared.observer.stream_closed(self.id, None);
        }
    }
}

/// Encodes the per-stream fields of a `DiscoveryResponse`: version_info (1), type_url (4),
/// nonce (5) and control_plane (6).
fn response_head(version: &str, type_url: &str, nonce: &str, control_plane: &str) -> bytes::Bytes {
    let cp_len = if control_plane.is_empty() { 0 } else { len_field_size(1, control_plane.len()) };
    let mut buf = BytesMut::with_capacity(
        len_field_size(1, version.len())
            + len_field_size(4, type_url.len())
            + len_field_size(5, nonce.len())
            + if cp_len > 0 { len_field_size(6, cp_len) } else { 0 },
    );
    put_len_field(&mut buf, 1, version.as_bytes());
    put_len_field(&mut buf, 4, type_url.as_bytes());
    put_len_field(&mut buf, 5, nonce.as_bytes());
    if cp_len > 0 {
        prost::encoding::encode_key(6, prost::encoding::WireType::LengthDelimited, &mut buf);
        prost::encoding::encode_varint(cp_len as u64, &mut buf);
        put_len_field(&mut buf, 1, control_plane.as_bytes());
    }
    buf.freeze()
}
