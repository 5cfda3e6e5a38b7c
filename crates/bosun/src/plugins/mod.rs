//! The plugins `bosun serve` runs: each supervised by a [`PluginHost`] (restarts with backoff,
//! health checks, hot reload, builds from source), configured with its `config` before use,
//! listed by `/api/v1/plugins`, and called where its kind says: transform plugins in the write
//! pipeline ([`Plugins::transform`]), stream plugins fed the store's events ([`stream`]), and
//! storage plugins as the store itself (`--store plugin:NAME`, see `crate::store`).

pub mod stream;

use std::path::Path;
use std::sync::Arc;

use bosun_store::Store;
use bosun_store_plugin::PluginStore;
use std::time::{Duration, Instant};

use bosun_plugin::{
    Executable, HostOptions, OnStart, PluginError, PluginHost, PluginState, PluginStatus, SourceBuild, TransformClient,
    TransformOutcome,
};
use serde::Serialize;
use serde_json::Value as Json;

use crate::config::{PluginKind, PluginSpec};
use crate::documents::{DocKind, Document, FieldError};

/// One plugin and what Bosun knows of it.
pub struct Entry {
    spec: PluginSpec,
    host: PluginHost,
    /// The store kinds a transform plugin is called for.
    kinds: Vec<String>,
    /// What a stream plugin's running process subscribed to.
    subscription: Arc<parking_lot::Mutex<Option<stream::Subscription>>>,
}

/// The running plugins.
#[derive(Clone, Default)]
pub struct Plugins {
    entries: Arc<Vec<Arc<Entry>>>,
    /// The storage plugin, when Bosun's store is one.
    storage: Option<(PluginSpec, Arc<PluginStore>)>,
}

/// Why a document did not pass the transform plugins.
#[derive(Debug)]
pub enum TransformError {
    /// A plugin refused it, or changed it into an invalid document: like a validation error.
    Rejected(Vec<FieldError>),
    /// A plugin could not be called (not running, crashed, misconfigured).
    Unavailable(String),
}

/// One plugin as `/api/v1/plugins` and `bosun plugins` show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: Option<String>,
    pub kind: PluginKind,
    pub path: String,
    /// starting, running, restarting, failed, stopped.
    pub state: String,
    pub pid: Option<u32>,
    /// The binary running: the build, for a plugin given as source.
    pub binary: Option<String>,
    pub restarts: u32,
    /// How many times a new binary or source replaced the running process.
    pub reloads: u32,
    pub last_error: Option<String>,
    /// Seconds since the last successful health check.
    pub last_health_check_seconds_ago: Option<u64>,
}

impl Plugins {
    /// Starts the transform and stream plugins in the background (storage plugins are
    /// started by the store); each process gets its configuration before any call reaches it.
    /// A kind a transform plugin names must exist. Plugins given as a source directory are
    /// built under `build_dir`. Stream plugins write through the API state `api` will hold.
    pub fn start(
        specs: &[PluginSpec],
        build_dir: &Path,
        store: Arc<dyn Store>,
        api: stream::ApiSlot,
        storage: Option<(PluginSpec, Arc<PluginStore>)>,
    ) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for spec in specs.iter().filter(|s| s.kind != PluginKind::Storage) {
            let kinds = match spec.kind {
                PluginKind::Transform if spec.kinds.is_empty() => {
                    bosun_model::Kind::ALL.iter().map(|k| k.name().to_owned()).collect()
                }
                _ => spec
                    .kinds
                    .iter()
                    .map(|k| DocKind::resolve(k).map(|k| k.name().to_owned()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow::anyhow!("plugin {}: kinds: {e}", spec.name))?,
            };
            let subscription = Arc::new(parking_lot::Mutex::new(None));
            let on_start = match spec.kind {
                PluginKind::Stream => configure_stream(spec, subscription.clone(), api.clone()),
                _ => configure_transform(spec),
            };
            let options = HostOptions { on_start: Some(on_start), ..host_options(spec, build_dir) };
            let host = PluginHost::start_with(spec.launch_config(), options);
            tracing::info!(plugin = %spec.name, kind = spec.kind.as_str(), path = %spec.path.display(), "plugin starting");
            entries.push(Arc::new(Entry { spec: spec.clone(), host, kinds, subscription }));
        }
        for entry in entries.iter().filter(|e| e.spec.kind == PluginKind::Stream) {
            tokio::spawn(stream::keep_feeding(Arc::downgrade(entry), store.clone()));
        }
        Ok(Self { entries: Arc::new(entries), storage })
    }

    /// Every plugin's state.
    pub fn list(&self) -> Vec<PluginInfo> {
        let running = self.entries.iter().map(|e| info(&e.spec, e.host.status()));
        running.chain(self.storage.iter().map(|(spec, store)| info(spec, store.status()))).collect()
    }

    /// Passes `doc` through every transform plugin for its kind, in the order they are
    /// declared; each gets what the previous one returned. A changed document is validated again.
    pub async fn transform(&self, mut doc: Document) -> Result<Document, TransformError> {
        for entry in self.entries.iter().filter(|e| e.spec.kind == PluginKind::Transform) {
            if !entry.kinds.iter().any(|k| k == doc.key.kind()) {
                continue;
            }
            let name = &entry.spec.name;
            let json = serde_json::to_vec(&doc.to_json()).unwrap_or_default();
            let outcome = entry.transform(&doc, &json).await?;
            match outcome {
                TransformOutcome::Unchanged => {}
                TransformOutcome::Rejected(reason) => {
                    return Err(TransformError::Rejected(vec![FieldError::new(
                        "document",
                        format!("rejected by plugin {name}: {reason}"),
                    )]));
                }
                TransformOutcome::Changed(new) => {
                    let resource_version = doc.resource_version;
                    let parsed = serde_json::from_slice::<Json>(&new)
                        .map_err(|e| vec![FieldError::new("document", e.to_string())])
                        .and_then(Document::parse)
                        .map_err(|errors| {
                            let errors = errors
                                .into_iter()
                                .map(|e| {
                                    FieldError::new(e.field, format!("plugin {name} changed it into: {}", e.reason))
                                })
                                .collect();
                            TransformError::Rejected(errors)
                        })?;
                    if parsed.key != doc.key {
                        return Err(TransformError::Rejected(vec![FieldError::new(
                            "metadata",
                            format!("plugin {name} renamed {} to {}", doc.key, parsed.key),
                        )]));
                    }
                    tracing::debug!(plugin = %name, key = %doc.key, "document changed by a transform plugin");
                    doc = parsed;
                    // The plugin does not decide over which revision the write applies.
                    doc.resource_version = resource_version;
                }
            }
        }
        Ok(doc)
    }

    /// Stops every plugin.
    pub async fn shutdown(&self) {
        for entry in self.entries.iter() {
            entry.host.shutdown().await;
        }
    }
}

/// How the host runs the plugin of `spec`: built first when its path is a directory,
/// reloaded when it changes (unless `reload = false`).
pub fn host_options(spec: &PluginSpec, build_dir: &Path) -> HostOptions {
    let executable = if spec.path.is_dir() {
        let name = spec.name.split('@').next().unwrap_or_default();
        Executable::Source(SourceBuild::new(name, spec.path.clone(), build_dir))
    } else {
        Executable::Binary
    };
    HostOptions { executable, reload_interval: spec.reload.then_some(RELOAD_INTERVAL), ..HostOptions::default() }
}

/// Sends a transform plugin's process its configuration.
fn configure_transform(spec: &PluginSpec) -> OnStart {
    let config = spec.config_json();
    let name = spec.name.clone();
    Arc::new(move |started| {
        let config = config.clone();
        let name = name.clone();
        Box::pin(async move {
            TransformClient::new(started.channel)
                .configure(&config)
                .await
                .map_err(|e| format!("plugin {name} refused its config: {e}"))
        })
    })
}

/// Serves a stream plugin's process `StreamHost`, sends it its configuration, and keeps
/// what it subscribes to.
fn configure_stream(
    spec: &PluginSpec,
    subscription: Arc<parking_lot::Mutex<Option<stream::Subscription>>>,
    api: stream::ApiSlot,
) -> OnStart {
    let config = spec.config_json();
    let name = spec.name.clone();
    Arc::new(move |started| {
        let (config, name, api, subscription) = (config.clone(), name.clone(), api.clone(), subscription.clone());
        Box::pin(async move {
            let wanted = stream::configure(&name, config, &started, api).await?;
            tracing::info!(plugin = %name, kinds = ?wanted.kinds, namespaces = ?wanted.namespaces, "stream plugin subscribed");
            *subscription.lock() = Some(wanted);
            Ok(())
        })
    })
}

/// How often plugins are checked for a new binary or source.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl Entry {
    /// A client to the running (and configured) process.
    async fn client(&self) -> Result<TransformClient, TransformError> {
        let wait = Duration::from_secs(self.spec.call_wait_seconds);
        let channel = self
            .host
            .channel(wait)
            .await
            .map_err(|e| TransformError::Unavailable(format!("plugin {}: {e}", self.spec.name)))?;
        Ok(TransformClient::new(channel))
    }

    /// One transform call. A call that finds the process gone (it crashed and the host has
    /// not noticed yet) is made once more on its successor: transforms have no side effects.
    async fn transform(&self, doc: &Document, json: &[u8]) -> Result<TransformOutcome, TransformError> {
        let name = &self.spec.name;
        let pid = self.host.status().pid;
        let mut client = self.client().await?;
        let (kind, namespace, doc_name) = (doc.key.kind(), doc.key.namespace(), doc.key.name());
        match client.transform(kind, namespace, doc_name, json).await {
            Err(PluginError::Call(status))
                if status.code() == tonic::Code::Unavailable && self.spec.call_wait_seconds > 0 =>
            {
                let deadline = Instant::now() + Duration::from_secs(self.spec.call_wait_seconds);
                while self.host.status().pid == pid && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let mut client = self.client().await?;
                client.transform(kind, namespace, doc_name, json).await
            }
            other => other,
        }
        .map_err(|e| TransformError::Unavailable(format!("plugin {name}: {e}")))
    }
}

/// One plugin as listed.
fn info(spec: &PluginSpec, status: PluginStatus) -> PluginInfo {
    let (name, version) = match spec.name.split_once('@') {
        Some((name, version)) => (name.to_owned(), Some(version.to_owned())),
        None => (spec.name.clone(), None),
    };
    let state = match status.state {
        PluginState::Starting => "starting",
        PluginState::Running => "running",
        PluginState::Restarting => "restarting",
        PluginState::Failed => "failed",
        PluginState::Stopped => "stopped",
    };
    PluginInfo {
        name,
        version,
        kind: spec.kind,
        path: spec.path.display().to_string(),
        state: state.to_owned(),
        pid: status.pid,
        binary: status.binary.map(|b| b.display().to_string()),
        restarts: status.restarts,
        reloads: status.reloads,
        last_error: status.last_error,
        last_health_check_seconds_ago: status.last_health_ok.map(|t| Instant::now().duration_since(t).as_secs()),
    }
}
