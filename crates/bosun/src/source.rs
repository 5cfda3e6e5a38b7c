//! The resource source of `bosun serve`: Envoy resources loaded from a directory, turned into
//! one snapshot per node cluster, and reloaded when the directory changes.
//!
//! Nodes are grouped by `node.cluster`. A group with its own sub-directory gets the common
//! resources plus its own; every other group gets the common resources. A reload that fails to
//! parse or to pass the consistency check changes nothing that is served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bosun_xds::cache::{Cache, TypeWatch};
use bosun_xds::{ByNodeCluster, Snapshot, SnapshotCache};
use envoy_types::pb::envoy::config::core::v3::Node;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::resources::{self, LoadedResources};

/// How long the directory must be quiet before a reload (editors write files in several steps).
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A full rescan this often, in case a file-system event was lost.
const RESCAN: Duration = Duration::from_secs(30);

/// The snapshots built from one load of the directory.
struct Snapshots {
    common: Snapshot,
    groups: BTreeMap<String, Snapshot>,
}

impl Snapshots {
    fn build(loaded: &LoadedResources) -> Result<Self, String> {
        let mut common = Snapshot::new(loaded.common.iter().cloned());
        common.check_consistency().map_err(|e| format!("common resources: {e}"))?;
        let mut groups = BTreeMap::new();
        for group in loaded.group_names() {
            let mut snapshot = Snapshot::new(loaded.for_group(group));
            snapshot.check_consistency().map_err(|e| format!("resources of node cluster {group:?}: {e}"))?;
            groups.insert(group.to_owned(), snapshot);
        }
        Ok(Self { common, groups })
    }

    fn for_group(&self, group: &str) -> &Snapshot {
        self.groups.get(group).unwrap_or(&self.common)
    }
}

/// What `/status` shows about the source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The directory, if one is served.
    pub directory: Option<PathBuf>,
    /// Successful loads so far.
    pub loads: u64,
    /// Per node cluster (`"*"`: every other cluster), per type URL, the version served.
    pub versions: BTreeMap<String, BTreeMap<String, String>>,
    /// Why the last load failed, if it did (the previous resources are still served).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// A [`Cache`] over the directory's snapshots.
pub struct DirectorySource {
    cache: SnapshotCache,
    state: Mutex<State>,
    reloads: Family<ResultLabel, Counter>,
}

struct State {
    snapshots: Snapshots,
    status: SourceStatus,
}

impl DirectorySource {
    /// A source that serves an empty snapshot until [`DirectorySource::apply`] is called.
    pub fn new(directory: Option<PathBuf>, registry: &mut Registry) -> Self {
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("bosun_resource_loads", "Loads of the resources directory", reloads.clone());
        Self {
            cache: SnapshotCache::new(ByNodeCluster),
            state: Mutex::new(State {
                snapshots: Snapshots { common: Snapshot::default(), groups: BTreeMap::new() },
                status: SourceStatus { directory, ..Default::default() },
            }),
            reloads,
        }
    }

    /// Builds and checks the snapshots of `loaded` and, if every one is consistent, serves them.
    pub fn apply(&self, loaded: &LoadedResources) -> Result<(), String> {
        let snapshots = Snapshots::build(loaded)?;
        let mut state = self.state.lock();
        // Every group that has a snapshot (its nodes connected before) or a directory.
        let mut groups = self.cache.groups();
        groups.extend(snapshots.groups.keys().cloned());
        groups.sort();
        groups.dedup();
        for group in &groups {
            self.cache.set_snapshot(group, snapshots.for_group(group).clone()).map_err(|e| e.to_string())?;
        }
        let mut versions = BTreeMap::new();
        versions.insert("*".to_owned(), type_versions(&snapshots.common));
        for (group, snapshot) in &snapshots.groups {
            versions.insert(group.clone(), type_versions(snapshot));
        }
        state.snapshots = snapshots;
        state.status.versions = versions;
        state.status.loads += 1;
        state.status.last_error = None;
        Ok(())
    }

    /// Loads the directory and applies it; on failure logs every error and keeps what is served.
    pub async fn reload(self: &Arc<Self>, dir: &Path) -> bool {
        let path = dir.to_owned();
        let loaded = tokio::task::spawn_blocking(move || resources::load_dir(&path)).await;
        let result = match loaded {
            Ok(Ok(loaded)) => self.apply(&loaded),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("loader failed: {e}")),
        };
        match result {
            Ok(()) => {
                self.reloads.get_or_create(&ResultLabel { result: "ok" }).inc();
                let status = self.status();
                tracing::info!(dir = %dir.display(), versions = ?status.versions.get("*"), "resources loaded");
                true
            }
            Err(error) => {
                self.reloads.get_or_create(&ResultLabel { result: "error" }).inc();
                for line in error.lines() {
                    tracing::error!(dir = %dir.display(), "resources rejected, still serving the previous ones: {line}");
                }
                self.state.lock().status.last_error = Some(error);
                false
            }
        }
    }

    /// The source's status.
    pub fn status(&self) -> SourceStatus {
        self.state.lock().status.clone()
    }
}

fn type_versions(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot.type_urls().map(|t| (t.to_owned(), snapshot.version(t).to_owned())).collect()
}

impl Cache for DirectorySource {
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch {
        let group = self.cache.group_of(node);
        if self.cache.snapshot(&group).is_none() {
            // The first node of this cluster: give its group the snapshot it should have.
            let state = self.state.lock();
            if self.cache.snapshot(&group).is_none()
                && let Err(e) = self.cache.set_snapshot(&group, state.snapshots.for_group(&group).clone())
            {
                tracing::error!(group, "snapshot refused: {e}");
            }
        }
        self.cache.watch(node, type_url)
    }
}

/// Watches `dir` and reloads `source` when it changes, until `shutdown` fires.
pub async fn watch_directory(
    source: Arc<DirectorySource>,
    dir: PathBuf,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already means "reload pending".
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::Recursive)?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            event = rx.recv() => {
                if event.is_none() {
                    return Ok(());
                }
                // Let the burst of events of one save settle, then reload once.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(RESCAN) => {}
        }
        source.reload(&dir).await;
    }
}
