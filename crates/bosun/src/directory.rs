//! `--resources DIR`: a directory of Envoy resources as one writer into the store among others.
//!
//! The directory owns the keys it writes, marked with the label `bosun.io/managed-by=directory`:
//! each sync writes what changed, deletes what left the directory, and leaves every other key
//! alone. A directory that fails to load or to pass the consistency check writes nothing; the
//! store keeps what it had, and `/status` says why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bosun_store::{Expect, Key, Op, Prefix, Selector, Store, StoreError, StoreExt, Value};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::documents::{DEFAULT_NAMESPACE, EnvoyKind};
use crate::resources::{self, LoadedResources};

/// The label that marks the keys the directory owns.
pub const MANAGED_BY: &str = "bosun.io/managed-by";
const MANAGER: &str = "directory";
/// How long the directory must be quiet before a sync (editors write files in several steps).
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A full rescan this often, in case a file-system event was lost.
const RESCAN: Duration = Duration::from_secs(30);
/// Ops per transaction: within the store's limits with room to spare.
const OPS_PER_TXN: usize = 100;
const BYTES_PER_TXN: usize = bosun_store::validate::MAX_TXN_BYTES / 2;

/// What `/status` shows about the directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectoryStatus {
    pub path: PathBuf,
    /// Successful syncs so far.
    pub syncs: u64,
    /// Keys written or deleted by the last sync that changed anything.
    pub last_changes: usize,
    /// Why the last sync failed, if it did (the store keeps what the directory wrote before).
    pub last_error: Option<String>,
}

/// Syncs a directory into the store.
pub struct DirectoryWriter {
    dir: PathBuf,
    store: Arc<dyn Store>,
    status: Mutex<DirectoryStatus>,
}

impl DirectoryWriter {
    pub fn new(dir: PathBuf, store: Arc<dyn Store>) -> Self {
        let status = DirectoryStatus { path: dir.clone(), ..Default::default() };
        Self { dir, store, status: Mutex::new(status) }
    }

    pub fn status(&self) -> DirectoryStatus {
        self.status.lock().clone()
    }

    /// Loads the directory and writes it into the store; logs and records any failure.
    pub async fn sync(&self) -> bool {
        let result = self.try_sync().await;
        let mut status = self.status.lock();
        match result {
            Ok(changes) => {
                status.syncs += 1;
                status.last_error = None;
                if changes > 0 {
                    status.last_changes = changes;
                    tracing::info!(dir = %self.dir.display(), changes, "resources directory synced into the store");
                }
                true
            }
            Err(error) => {
                for line in error.lines() {
                    tracing::error!(dir = %self.dir.display(), "resources directory rejected, the store keeps what it had: {line}");
                }
                status.last_error = Some(error);
                false
            }
        }
    }

    async fn try_sync(&self) -> Result<usize, String> {
        let path = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || resources::load_dir(&path))
            .await
            .map_err(|e| format!("loader failed: {e}"))?
            .map_err(|e| e.to_string())?;
        crate::source::check(&loaded)?;
        let desired = desired(&loaded)?;
        // A concurrent writer (another replica's directory, an API write) may win a key between
        // the list and the write; then list and diff again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write(&desired).await {
                Err(StoreError::Conflict { .. }) if attempt < 3 => continue,
                result => return result.map_err(|e| format!("writing into the store: {e}")),
            }
        }
    }

    /// Writes the difference between the store's directory keys and `desired`.
    async fn write(&self, desired: &BTreeMap<Key, Value>) -> Result<usize, StoreError> {
        let selector = Selector::parse(&format!("{MANAGED_BY}={MANAGER}"))?;
        let mut existing = BTreeMap::new();
        for kind in EnvoyKind::known() {
            let page = self.store.list_all(&Prefix::kind(&kind.name)?, &selector).await?;
            existing.extend(page.items.into_iter().map(|kv| (kv.key.clone(), kv)));
        }
        let mut ops = Vec::new();
        for (key, value) in desired {
            let expect = match existing.get(key) {
                Some(kv) if kv.value.data == value.data && kv.value.labels == value.labels => continue,
                Some(kv) => Expect::ModRevision(kv.mod_revision),
                None => Expect::Any,
            };
            ops.push(Op::Put { key: key.clone(), value: value.clone(), expect });
        }
        for (key, kv) in &existing {
            if !desired.contains_key(key) {
                ops.push(Op::Delete { key: key.clone(), expect: Expect::ModRevision(kv.mod_revision) });
            }
        }
        let changes = ops.len();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let size = op.key().as_str().len() + if let Op::Put { value, .. } = &op { value.data.len() } else { 0 };
            if !chunk.is_empty() && (chunk.len() == OPS_PER_TXN || bytes + size > BYTES_PER_TXN) {
                self.store.txn(std::mem::take(&mut chunk)).await?;
                bytes = 0;
            }
            bytes += size;
            chunk.push(op);
        }
        if !chunk.is_empty() {
            self.store.txn(chunk).await?;
        }
        Ok(changes)
    }
}

/// The keys and values the directory's resources make.
fn desired(loaded: &LoadedResources) -> Result<BTreeMap<Key, Value>, String> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let scopes =
        std::iter::once((DEFAULT_NAMESPACE, &loaded.common)).chain(loaded.groups.iter().map(|(g, r)| (g.as_str(), r)));
    for (namespace, resources) in scopes {
        for resource in resources {
            let made = EnvoyKind::resolve(resource.type_url())
                .and_then(|kind| Key::new(&kind.name, namespace, resource.name()).map_err(|e| e.to_string()))
                .and_then(|key| {
                    let spec = resources::canonical_json(resource)?;
                    let data = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
                    Ok((key, Value::new(data).label(MANAGED_BY, MANAGER)))
                });
            match made {
                Ok((key, value)) => {
                    out.insert(key, value);
                }
                Err(e) => errors.push(format!("{namespace}/{}: {e}", resource.name())),
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors.join("\n")) }
}

/// Syncs the directory again whenever it changes (and every [`RESCAN`]), until `shutdown` fires.
pub async fn watch(
    writer: Arc<DirectoryWriter>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already means "sync pending".
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&writer.dir, notify::RecursiveMode::Recursive)?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            event = rx.recv() => {
                if event.is_none() {
                    return Ok(());
                }
                // Let the burst of events of one save settle, then sync once.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(RESCAN) => {}
        }
        writer.sync().await;
    }
}
