//! The plugins `bosun serve` runs: each supervised by a [`PluginHost`] (restarts with backoff,
//! health checks), configured with its `config` before use, listed by `/api/v1/plugins`, and
//! called where its kind says: transform plugins in the write pipeline ([`Plugins::transform`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_plugin::{LaunchConfig, PluginHost, PluginState, RestartPolicy, TransformClient, TransformOutcome};
use serde::Serialize;
use serde_json::Value as Json;

use crate::config::{PluginKind, PluginSpec};
use crate::documents::{DocKind, Document, FieldError};

/// How long a call waits for a plugin that is (re)starting.
const CALL_WAIT: Duration = Duration::from_secs(10);

/// One plugin and what Bosun knows of it.
struct Entry {
    spec: PluginSpec,
    host: PluginHost,
    /// The store kinds a transform plugin is called for.
    kinds: Vec<String>,
    /// The pid of the process last configured (whether it accepted), so that a restarted
    /// process is configured again before its first call.
    configured: tokio::sync::Mutex<Option<u32>>,
    /// The plugin's answer to the last `Configure` that failed.
    config_error: parking_lot::Mutex<Option<String>>,
}

/// The running plugins.
#[derive(Clone, Default)]
pub struct Plugins {
    entries: Arc<Vec<Entry>>,
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
    /// starting, running, restarting, failed, stopped, misconfigured.
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// Seconds since the last successful health check.
    pub last_health_check_seconds_ago: Option<u64>,
}

impl Plugins {
    /// Starts every plugin in the background. A kind a transform plugin names must exist.
    pub fn start(specs: &[PluginSpec]) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for spec in specs {
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
            let launch = LaunchConfig::new(spec.name.clone(), spec.path.clone());
            let host = PluginHost::start(launch, RestartPolicy::default());
            tracing::info!(plugin = %spec.name, kind = spec.kind.as_str(), path = %spec.path.display(), "plugin starting");
            entries.push(Entry {
                spec: spec.clone(),
                host,
                kinds,
                configured: tokio::sync::Mutex::new(None),
                config_error: parking_lot::Mutex::new(None),
            });
        }
        let plugins = Self { entries: Arc::new(entries) };
        for index in 0..plugins.entries.len() {
            if plugins.entries[index].spec.kind == PluginKind::Transform {
                tokio::spawn(keep_configured(Arc::downgrade(&plugins.entries), index));
            }
        }
        Ok(plugins)
    }

    /// Every plugin's state.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.entries.iter().map(Entry::info).collect()
    }

    /// Passes `doc` through every transform plugin for its kind, in the order they are
    /// declared; each gets what the previous one returned. A changed document is validated again.
    pub async fn transform(&self, mut doc: Document) -> Result<Document, TransformError> {
        for entry in self.entries.iter().filter(|e| e.spec.kind == PluginKind::Transform) {
            if !entry.kinds.iter().any(|k| k == doc.key.kind()) {
                continue;
            }
            let name = &entry.spec.name;
            let mut client = entry.client().await?;
            let json = serde_json::to_vec(&doc.to_json()).unwrap_or_default();
            let outcome = client
                .transform(doc.key.kind(), doc.key.namespace(), doc.key.name(), &json)
                .await
                .map_err(|e| TransformError::Unavailable(format!("plugin {name}: {e}")))?;
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

/// Configures the plugin as soon as it runs, and again after each restart, so that a bad
/// configuration shows in its state before any call.
async fn keep_configured(entries: std::sync::Weak<Vec<Entry>>, index: usize) {
    loop {
        {
            let Some(entries) = entries.upgrade() else { return };
            let entry = &entries[index];
            let status = entry.host.status();
            if matches!(status.state, PluginState::Stopped) {
                return;
            }
            let stale = status.state == PluginState::Running && *entry.configured.lock().await != status.pid;
            if stale && let Err(TransformError::Unavailable(e)) = entry.client().await {
                tracing::warn!(plugin = %entry.spec.name, "{e}");
            }
        }
        tokio::time::sleep(CONFIGURE_POLL).await;
    }
}

/// How often a plugin's process is checked for needing its configuration.
const CONFIGURE_POLL: Duration = Duration::from_millis(250);

impl Entry {
    /// A client to the running process, configured.
    async fn client(&self) -> Result<TransformClient, TransformError> {
        let name = &self.spec.name;
        let channel = self
            .host
            .channel(CALL_WAIT)
            .await
            .map_err(|e| TransformError::Unavailable(format!("plugin {name}: {e}")))?;
        let mut client = TransformClient::new(channel);
        let pid = self.host.status().pid;
        let mut configured = self.configured.lock().await;
        if *configured != pid || pid.is_none() {
            *configured = pid;
            let result = client.configure(&self.spec.config_json()).await;
            *self.config_error.lock() = result.err().map(|e| format!("plugin {name} refused its config: {e}"));
        }
        // A plugin that refused its configuration is not used until it runs again.
        match self.config_error.lock().clone() {
            Some(e) => Err(TransformError::Unavailable(e)),
            None => Ok(client),
        }
    }

    fn info(&self) -> PluginInfo {
        let status = self.host.status();
        let (name, version) = match self.spec.name.split_once('@') {
            Some((name, version)) => (name.to_owned(), Some(version.to_owned())),
            None => (self.spec.name.clone(), None),
        };
        let config_error = self.config_error.lock().clone();
        let state = match (status.state, &config_error) {
            (PluginState::Running, Some(_)) => "misconfigured",
            (PluginState::Starting, _) => "starting",
            (PluginState::Running, None) => "running",
            (PluginState::Restarting, _) => "restarting",
            (PluginState::Failed, _) => "failed",
            (PluginState::Stopped, _) => "stopped",
        };
        PluginInfo {
            name,
            version,
            kind: self.spec.kind,
            path: self.spec.path.display().to_string(),
            state: state.to_owned(),
            pid: status.pid,
            restarts: status.restarts,
            last_error: config_error.or(status.last_error),
            last_health_check_seconds_ago: status.last_health_ok.map(|t| Instant::now().duration_since(t).as_secs()),
        }
    }
}
