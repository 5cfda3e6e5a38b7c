//! The `SubscribeConfig` service: one task per client stream, the clients' subscriptions, and
//! their ACKs and NACKs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bosun_model::Kind;
use bosun_store::Revision;
use parking_lot::Mutex;
use prost_types::Any;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::transport::open_sergo_universal_transport_service_server as service;
use crate::proto::transport::{self as pb, SubscribeOpType};
use crate::rules::{RuleKey, Rules};
use crate::status::{AckRecord, ClientStatus, NackRecord, OpenSergoStatus, SubscriptionStatus};
use crate::{CODE_INVALID_REQUEST, CODE_OK, CODE_PUSH, FLAG_ACK, FLAG_NACK, convert};

/// Responses queued for one client before its task waits for the client to read them.
const CLIENT_QUEUE: usize = 16;
/// Subscriptions one client may hold.
const MAX_SUBSCRIPTIONS: usize = 1024;
/// The longest namespace or application name accepted.
const MAX_NAME_BYTES: usize = 253;

/// The OpenSergo universal transport server. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct OpenSergoServer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Sent to clients as `control_plane.identifier`.
    identifier: String,
    next_client: AtomicU64,
    next_response: AtomicU64,
    /// The store revision followed so far.
    followed: watch::Sender<Option<Revision>>,
}

#[derive(Default)]
struct State {
    rules: Rules,
    clients: BTreeMap<u64, Client>,
    /// The clients subscribed to each key.
    subscribers: HashMap<RuleKey, BTreeSet<u64>>,
    store_error: Option<String>,
}

struct Client {
    /// Wakes the client's task: keys in `dirty` changed.
    wake: Arc<Notify>,
    dirty: BTreeSet<RuleKey>,
    identifier: Option<String>,
    peer: Option<SocketAddr>,
    connected_at: u64,
    acks: u64,
    nacks: u64,
    unmatched_acks: u64,
    subscriptions: BTreeMap<RuleKey, Subscription>,
}

#[derive(Default)]
struct Subscription {
    /// The version and `response_id` last sent.
    sent: Option<(i64, String)>,
    acked: Option<AckRecord>,
    last_nack: Option<NackRecord>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl OpenSergoServer {
    /// A server that tells clients it is `identifier` (`control_plane.identifier`). It answers
    /// no client until [`OpenSergoServer::follow`] has read the store once.
    pub fn new(identifier: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                identifier: identifier.into(),
                next_client: AtomicU64::new(1),
                next_response: AtomicU64::new(1),
                followed: watch::Sender::new(None),
            }),
        }
    }

    /// The tonic service, to add to a `tonic::transport::Server`.
    pub fn service(&self) -> service::OpenSergoUniversalTransportServiceServer<Self> {
        service::OpenSergoUniversalTransportServiceServer::new(self.clone())
    }

    /// Waits until the store has been read once; until then clients are not answered.
    pub async fn wait_ready(&self) {
        self.shared.wait_ready().await;
    }

    /// The rules followed and every connected client.
    pub fn status(&self) -> OpenSergoStatus {
        let revision = *self.shared.followed.borrow();
        let state = self.shared.state.lock();
        OpenSergoStatus {
            revision,
            rules: state.rules.served(),
            errors: state.rules.errors().iter().map(|(k, e)| (k.to_string(), e.clone())).collect(),
            store_error: state.store_error.clone(),
            clients: state.clients.iter().map(|(id, client)| client.status(*id)).collect(),
        }
    }
}

impl Client {
    fn new(wake: Arc<Notify>, peer: Option<SocketAddr>) -> Self {
        Self {
            wake,
            dirty: BTreeSet::new(),
            identifier: None,
            peer,
            connected_at: unix_now(),
            acks: 0,
            nacks: 0,
            unmatched_acks: 0,
            subscriptions: BTreeMap::new(),
        }
    }

    fn status(&self, id: u64) -> ClientStatus {
        ClientStatus {
            id,
            identifier: self.identifier.clone(),
            peer: self.peer.map(|p| p.to_string()),
            connected_at: self.connected_at,
            acks: self.acks,
            nacks: self.nacks,
            unmatched_acks: self.unmatched_acks,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(key, sub)| SubscriptionStatus {
                    namespace: key.namespace.clone(),
                    app: key.app.clone(),
                    kind: key.kind.wire_name(),
                    sent_version: sub.sent.as_ref().map(|(v, _)| *v),
                    sent_response_id: sub.sent.as_ref().map(|(_, id)| id.clone()),
                    acked: sub.acked.clone(),
                    last_nack: sub.last_nack.clone(),
                })
                .collect(),
        }
    }

    /// Records an ACK or a NACK of the push `response_id` on every subscription it carried.
    fn record_ack(&mut self, response_id: &str, rejection: Option<(i32, &str)>, id: u64) {
        let at = unix_now();
        let mut matched = false;
        for (key, subscription) in &mut self.subscriptions {
            let Some(&(version, _)) = subscription.sent.as_ref().filter(|(_, sent)| sent == response_id) else {
                continue;
            };
            matched = true;
            match rejection {
                Some((code, message)) => {
                    tracing::warn!(client = id, kind = %key.kind, app = %key.app, version, code, "OpenSergo client rejected the rules: {message}");
                    subscription.last_nack = Some(NackRecord { version, code, message: message.to_owned(), at });
                }
                None => {
                    subscription.acked = Some(AckRecord { version, at });
                    if subscription.last_nack.as_ref().is_some_and(|n| n.version <= version) {
                        subscription.last_nack = None;
                    }
                }
            }
        }
        if rejection.is_some() {
            self.nacks += 1;
        } else {
            self.acks += 1;
        }
        if !matched {
            self.unmatched_acks += 1;
            tracing::debug!(client = id, response_id, "an ACK/NACK for no current push");
        }
    }
}

impl Shared {
    async fn wait_ready(&self) {
        let mut rx = self.followed.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Records that the store has been followed up to `revision`.
    pub(crate) fn followed(&self, revision: Revision) {
        self.followed.send_replace(Some(revision));
    }

    /// Records why following the store failed (`None`: it works again).
    pub(crate) fn set_store_error(&self, error: Option<String>) {
        self.state.lock().store_error = error;
    }

    /// Changes the rules with `change` and wakes the clients of the keys it says changed.
    pub(crate) fn change_rules(&self, change: impl FnOnce(&mut Rules) -> Vec<RuleKey>) {
        let mut state = self.state.lock();
        let State { rules, clients, subscribers, .. } = &mut *state;
        for key in change(rules) {
            for id in subscribers.get(&key).into_iter().flatten() {
                if let Some(client) = clients.get_mut(id) {
                    client.dirty.insert(key.clone());
                    client.wake.notify_one();
                }
            }
        }
    }

    fn add_client(&self, peer: Option<SocketAddr>) -> (u64, Arc<Notify>) {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        self.state.lock().clients.insert(id, Client::new(wake.clone(), peer));
        tracing::debug!(client = id, ?peer, "OpenSergo client connected");
        (id, wake)
    }

    fn remove_client(&self, id: u64) {
        let mut state = self.state.lock();
        let Some(client) = state.clients.remove(&id) else { return };
        for key in client.subscriptions.keys() {
            unsubscribe_index(&mut state.subscribers, key, id);
        }
        tracing::debug!(client = id, "OpenSergo client disconnected");
    }

    /// The rules of `key` as a response.
    fn rules_response(
        &self,
        key: &RuleKey,
        version: i64,
        data: Vec<Any>,
        code: i32,
        id: String,
    ) -> pb::SubscribeResponse {
        pb::SubscribeResponse {
            status: Some(pb::Status { code, ..Default::default() }),
            ack: String::new(),
            namespace: key.namespace.clone(),
            app: key.app.clone(),
            kind: key.kind.wire_name(),
            data_with_version: Some(pb::DataWithVersion { data, version }),
            control_plane: Some(self.control_plane()),
            response_id: id,
        }
    }

    /// The answer to a client's request that carries no rules.
    fn answer(&self, request: &pb::SubscribeRequest, code: i32, message: String) -> pb::SubscribeResponse {
        let target = request.target.clone().unwrap_or_default();
        pb::SubscribeResponse {
            status: Some(pb::Status { code, message, ..Default::default() }),
            ack: if code == CODE_OK { FLAG_ACK } else { FLAG_NACK }.to_owned(),
            namespace: target.namespace,
            app: target.app,
            control_plane: Some(self.control_plane()),
            response_id: request.request_id.clone(),
            ..Default::default()
        }
    }

    fn control_plane(&self) -> pb::ControlPlaneDesc {
        pb::ControlPlaneDesc { identifier: self.identifier.clone() }
    }

    /// Handles one request of client `id`; returns the responses to send.
    fn handle(&self, id: u64, request: pb::SubscribeRequest) -> Vec<pb::SubscribeResponse> {
        if !request.response_ack.is_empty() {
            // An ACK or a NACK: `response_ack` NACK, or a status code other than 1.
            let status = request.status.as_ref();
            let code = status.map_or(CODE_OK, |s| s.code);
            let message = status.map_or("", |s| s.message.as_str());
            let rejection = (request.response_ack == FLAG_NACK || code != CODE_OK).then_some((code, message));
            if let Some(client) = self.state.lock().clients.get_mut(&id) {
                client.record_ack(&request.request_id, rejection, id);
            }
            return Vec::new();
        }
        let parsed = match (SubscribeOpType::try_from(request.op_type), request.target.as_ref()) {
            (Err(_), _) => Err(format!("op_type: unknown operation {}", request.op_type)),
            (Ok(_), None) => Err("target: missing".to_owned()),
            (Ok(op), Some(target)) => {
                subscription_keys(target, op == SubscribeOpType::Subscribe).map(|keys| (op, keys))
            }
        };
        let (op, keys) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::debug!(client = id, "OpenSergo subscription refused: {reason}");
                return vec![self.answer(&request, CODE_INVALID_REQUEST, reason)];
            }
        };
        let mut state = self.state.lock();
        let State { rules, clients, subscribers, .. } = &mut *state;
        let Some(client) = clients.get_mut(&id) else { return Vec::new() };
        if client.identifier.is_none() && !request.identifier.is_empty() {
            client.identifier = Some(request.identifier.clone());
        }
        if op == SubscribeOpType::Unsubscribe {
            for key in &keys {
                if client.subscriptions.remove(key).is_some() {
                    unsubscribe_index(subscribers, key, id);
                }
                client.dirty.remove(key);
            }
            return vec![self.answer(&request, CODE_OK, String::new())];
        }
        let new = keys.iter().filter(|k| !client.subscriptions.contains_key(k)).count();
        if client.subscriptions.len() + new > MAX_SUBSCRIPTIONS {
            let reason = format!("target: a client may hold at most {MAX_SUBSCRIPTIONS} subscriptions");
            return vec![self.answer(&request, CODE_INVALID_REQUEST, reason)];
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (version, data) = rules.get(&key);
            let subscription = client.subscriptions.entry(key.clone()).or_default();
            subscription.sent = Some((version, request.request_id.clone()));
            client.dirty.remove(&key);
            subscribers.entry(key.clone()).or_default().insert(id);
            out.push(self.rules_response(&key, version, data, CODE_OK, request.request_id.clone()));
        }
        out
    }

    /// The pushes client `id` is due: the changed rules of its subscriptions, each once.
    fn take_pushes(&self, id: u64) -> Vec<pb::SubscribeResponse> {
        let mut state = self.state.lock();
        let State { rules, clients, .. } = &mut *state;
        let Some(client) = clients.get_mut(&id) else { return Vec::new() };
        let mut out = Vec::new();
        for key in std::mem::take(&mut client.dirty) {
            let Some(subscription) = client.subscriptions.get_mut(&key) else { continue };
            let (version, data) = rules.get(&key);
            if subscription.sent.as_ref().is_some_and(|(sent, _)| *sent >= version) {
                continue;
            }
            let response_id = format!("push-{}", self.next_response.fetch_add(1, Ordering::Relaxed));
            subscription.sent = Some((version, response_id.clone()));
            out.push(self.rules_response(&key, version, data, CODE_PUSH, response_id));
        }
        out
    }
}

fn unsubscribe_index(subscribers: &mut HashMap<RuleKey, BTreeSet<u64>>, key: &RuleKey, id: u64) {
    if let Some(ids) = subscribers.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            subscribers.remove(key);
        }
    }
}

/// The keys a subscription names, or why it is malformed. An UNSUBSCRIBE naming no kind names
/// every kind.
fn subscription_keys(target: &pb::SubscribeRequestTarget, subscribe: bool) -> Result<Vec<RuleKey>, String> {
    let mut errors = Vec::new();
    for (field, value) in [("target.namespace", &target.namespace), ("target.app", &target.app)] {
        if value.is_empty() {
            errors.push(format!("{field}: missing"));
        } else if value.len() > MAX_NAME_BYTES {
            errors.push(format!("{field}: longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    let served = || Kind::ALL.into_iter().filter(|k| convert::served(*k));
    let mut kinds = Vec::new();
    if target.kinds.is_empty() && subscribe {
        errors.push("target.kinds: missing (name at least one kind, as <group>/v1alpha1/<Kind>)".to_owned());
    } else if target.kinds.is_empty() {
        kinds.extend(served());
    }
    for (i, name) in target.kinds.iter().enumerate() {
        match served().find(|k| k.wire_name() == *name) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => {
                let known = served().map(Kind::wire_name).collect::<Vec<_>>().join(", ");
                errors.push(format!("target.kinds[{i}]: unknown kind {name:?} (expected one of {known})"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(kinds
        .into_iter()
        .map(|kind| RuleKey { namespace: target.namespace.clone(), app: target.app.clone(), kind })
        .collect())
}

/// Removes the client when its task ends, however it ends.
struct ClientGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.shared.remove_client(self.id);
    }
}

type Responses = mpsc::Sender<Result<pb::SubscribeResponse, Status>>;

/// Serves one client until it goes away: its requests in order, and pushes when woken.
async fn serve_client(
    shared: Arc<Shared>,
    id: u64,
    wake: Arc<Notify>,
    mut requests: Streaming<pb::SubscribeRequest>,
    tx: Responses,
) {
    let _guard = ClientGuard { shared: shared.clone(), id };
    tokio::select! {
        () = shared.wait_ready() => {}
        () = tx.closed() => return,
    }
    loop {
        let out = tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => shared.handle(id, request),
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(client = id, "OpenSergo stream ended: {}", status.message());
                    return;
                }
            },
            () = wake.notified() => shared.take_pushes(id),
            () = tx.closed() => return,
        };
        for response in out {
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl service::OpenSergoUniversalTransportService for OpenSergoServer {
    type SubscribeConfigStream = ReceiverStream<Result<pb::SubscribeResponse, Status>>;

    async fn subscribe_config(
        &self,
        request: Request<Streaming<pb::SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeConfigStream>, Status> {
        let (id, wake) = self.shared.add_client(request.remote_addr());
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        tokio::spawn(serve_client(self.shared.clone(), id, wake, request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
