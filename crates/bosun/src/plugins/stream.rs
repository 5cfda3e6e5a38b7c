//! Stream plugins: Bosun feeds each one the store's events for the kinds it subscribes to
//! (the current documents, `SYNCED`, then every change; again from the start after a restart
//! of either side), and serves it `StreamHost` over go-plugin's broker, through which the
//! plugin writes documents back with the same pipeline as `bosun apply` (validation,
//! transform plugins, one transaction).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bosun_plugin::proto::bosun::stream_client::StreamClient;
use bosun_plugin::proto::bosun::stream_event::Type as EventType;
use bosun_plugin::proto::bosun::stream_host_server::{StreamHost, StreamHostServer};
use bosun_plugin::proto::bosun::{
    HostApplyRequest, HostApplyResponse, HostDeleteRequest, HostDeleteResponse, StreamConfigureRequest, StreamEvent,
};
use bosun_store::{Event, KeyValue, Op, Prefix, Selector, Store, StoreExt as _};
use futures::StreamExt as _;
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::api::{self, ApiState};
use crate::documents::DocKind;

/// Events queued for a plugin before the feeder waits for it to catch up.
const QUEUE: usize = 256;
/// The pause before a feed starts again after it ended.
const REFEED_DELAY: Duration = Duration::from_millis(500);

/// What a stream plugin asked for in its `Configure` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Store kinds (canonical names).
    pub kinds: Vec<String>,
    /// Namespaces; empty: all.
    pub namespaces: Vec<String>,
}

impl Subscription {
    fn wants(&self, kv_kind: &str, namespace: &str) -> bool {
        self.kinds.iter().any(|k| k == kv_kind)
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
    }
}

/// The API state stream plugins write through, set once `bosun serve` has built it.
pub type ApiSlot = watch::Receiver<Option<Weak<ApiState>>>;

/// Prepares a new stream plugin process: serves `StreamHost` to it through the broker, sends
/// it its configuration and the broker id, and returns what it subscribes to.
pub async fn configure(
    name: &str,
    config_json: String,
    started: &bosun_plugin::Started,
    mut api: ApiSlot,
) -> Result<Subscription, String> {
    let api = match api.wait_for(Option::is_some).await {
        Ok(slot) => slot.clone().unwrap_or_default(),
        Err(_) => return Err("bosun is shutting down".to_owned()),
    };
    let service_id = started.broker.next_id();
    let host = HostService { api, plugin: name.to_owned() };
    let routes = tonic::service::Routes::new(StreamHostServer::new(host));
    started.broker.accept_and_serve(service_id, routes).await.map_err(|e| format!("broker: {e}"))?;
    let answer = StreamClient::new(started.channel.clone())
        .configure(StreamConfigureRequest { config_json, host_service_id: service_id })
        .await
        .map_err(|e| format!("plugin {name} refused its config: {}", e.message()))?
        .into_inner();
    let mut kinds = Vec::new();
    for (i, k) in answer.kinds.iter().enumerate() {
        let kind = DocKind::resolve(k).map_err(|e| format!("plugin {name} subscribed to kinds[{i}] {k:?}: {e}"))?;
        kinds.push(kind.name().to_owned());
    }
    Ok(Subscription { kinds, namespaces: answer.namespaces })
}

/// Feeds the plugin until its stream or the store's watch ends; the caller starts it again.
pub async fn feed(store: &dyn Store, subscription: &Subscription, channel: Channel) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut client = StreamClient::new(channel);
    let call = client.events(tokio_stream::wrappers::ReceiverStream::new(rx));
    tokio::select! {
        answer = call => {
            answer?;
            anyhow::bail!("the plugin ended its event stream")
        }
        fed = produce(store, subscription, tx) => fed,
    }
}

async fn produce(store: &dyn Store, sub: &Subscription, tx: mpsc::Sender<StreamEvent>) -> anyhow::Result<()> {
    let send = |event: StreamEvent| {
        let tx = tx.clone();
        async move { tx.send(event).await.map_err(|_| anyhow::anyhow!("the plugin's stream closed")) }
    };
    // Each kind is listed at a revision of its own; the watch skips what a kind's list showed.
    let mut listed = BTreeMap::new();
    for kind in &sub.kinds {
        let page = store.list_all(&Prefix::kind(kind)?, &Selector::default()).await?;
        for kv in page.items.iter().filter(|kv| sub.wants(kv.key.kind(), kv.key.namespace())) {
            send(put(kv)).await?;
        }
        listed.insert(kind.clone(), page.revision);
    }
    send(StreamEvent { r#type: EventType::Synced.into(), ..StreamEvent::default() }).await?;
    let from = listed.values().copied().min().unwrap_or(0) + 1;
    let mut watch = store.watch(&Prefix::all(), from).await?;
    while let Some(batch) = watch.next().await {
        for event in batch?.events {
            let key = event.key();
            let seen = listed.get(key.kind()).is_some_and(|listed_at| event.revision() <= *listed_at);
            if seen || !sub.wants(key.kind(), key.namespace()) {
                continue;
            }
            send(match &event {
                Event::Put(kv) => put(kv),
                Event::Delete { key, revision } => StreamEvent {
                    r#type: EventType::Delete.into(),
                    kind: key.kind().to_owned(),
                    namespace: key.namespace().to_owned(),
                    name: key.name().to_owned(),
                    document_json: Vec::new(),
                    revision: *revision,
                },
            })
            .await?;
        }
    }
    anyhow::bail!("the store's watch ended")
}

fn put(kv: &KeyValue) -> StreamEvent {
    let doc: Json = crate::documents::render(kv);
    StreamEvent {
        r#type: EventType::Put.into(),
        kind: kv.key.kind().to_owned(),
        namespace: kv.key.namespace().to_owned(),
        name: kv.key.name().to_owned(),
        document_json: serde_json::to_vec(&doc).unwrap_or_default(),
        revision: kv.mod_revision,
    }
}

/// Runs the feed of one plugin for as long as Bosun runs: after each end (the plugin
/// restarted or reloaded, the store's watch failed) it waits for the running process and
/// starts again from the current documents.
pub async fn keep_feeding(entry: Weak<super::Entry>, store: Arc<dyn Store>) {
    loop {
        let Some(entry) = entry.upgrade() else { return };
        let channel = entry.host.channel(Duration::from_secs(3600)).await;
        let subscription = entry.subscription.lock().clone();
        match (channel, subscription) {
            (Ok(channel), Some(sub)) => {
                drop(entry);
                if let Err(e) = feed(store.as_ref(), &sub, channel).await {
                    tracing::info!(error = %e, "stream plugin feed ended; starting again");
                }
            }
            (Err(e), _) if matches!(entry.host.status().state, bosun_plugin::PluginState::Stopped) => {
                tracing::debug!(error = %e, "stream plugin stopped");
                return;
            }
            _ => drop(entry),
        }
        tokio::time::sleep(REFEED_DELAY).await;
    }
}

/// `StreamHost`, served to one plugin.
struct HostService {
    api: Weak<ApiState>,
    plugin: String,
}

impl HostService {
    fn api(&self) -> Result<Arc<ApiState>, Status> {
        self.api.upgrade().ok_or_else(|| Status::unavailable("bosun is shutting down"))
    }
}

#[tonic::async_trait]
impl StreamHost for HostService {
    async fn apply(&self, req: Request<HostApplyRequest>) -> Result<Response<HostApplyResponse>, Status> {
        let api = self.api()?;
        let mut documents = Vec::new();
        for (i, raw) in req.into_inner().documents_json.iter().enumerate() {
            let doc: Json = serde_json::from_slice(raw)
                .map_err(|e| Status::invalid_argument(format!("documents_json[{i}]: not JSON: {e}")))?;
            documents.push(doc);
        }
        let (revision, results) = api::apply_documents(&api, documents).await.map_err(Status::from)?;
        tracing::debug!(plugin = %self.plugin, documents = results.len(), revision, "stream plugin applied");
        let results = results.into_iter().map(|a| format!("{} {}", a.key, a.action)).collect();
        Ok(Response::new(HostApplyResponse { results, revision }))
    }

    async fn delete(&self, req: Request<HostDeleteRequest>) -> Result<Response<HostDeleteResponse>, Status> {
        let api = self.api()?;
        let req = req.into_inner();
        let kind = DocKind::resolve(&req.kind).map_err(|e| Status::invalid_argument(format!("kind: {e}")))?;
        let key = bosun_store::Key::new(kind.name(), &req.namespace, &req.name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let result = api.store.txn(vec![Op::delete(key)]).await.map_err(|e| Status::unavailable(e.to_string()))?;
        let existed = result.prev.into_iter().next().flatten().is_some();
        Ok(Response::new(HostDeleteResponse { existed }))
    }
}
