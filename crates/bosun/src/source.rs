//! The snapshots `bosun serve` serves: the Envoy documents of the store, turned into one snapshot
//! per node cluster, rebuilt from the store's watch.
//!
//! Nodes are grouped by `node.cluster`. A group whose name is a namespace of the store gets the
//! `default` namespace's resources with its own on top; every other group gets the `default` ones.
//! A set of resources that fails the consistency check changes nothing that is served, and
//! `/status` says why.
//!
//! The metadata centre's interface mappings (`bosun_metadata::ads`) are served to every node.
//!
//! Governance documents and Services are translated into Envoy resources per namespace
//! ([`governance`]) and served with the namespace's Envoy documents; a raw Envoy document of the
//! same type and name as a translated resource wins. Each governance document's status is in
//! `/status` (`resources.governance`) and shown by the API with the document.

mod governance;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bosun_store::{Event, Key, Prefix, Revision, Selector, Store, StoreError, StoreExt};
use bosun_xds::Resource;
use bosun_xds::cache::{Cache, TypeWatch};
use bosun_xds::{ByNodeCluster, Snapshot, SnapshotCache};
use envoy_types::pb::envoy::config::core::v3::Node;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use governance::GovernanceStatuses;

use crate::documents::{self, DEFAULT_NAMESPACE, DocKind};
use crate::resources::LoadedResources;
use governance::Governance;

/// Changes that arrive within this long of each other make one rebuild.
const COALESCE: Duration = Duration::from_millis(10);
/// A burst of changes delays the rebuild at most this long.
const COALESCE_MAX: Duration = Duration::from_millis(200);
/// Waits between attempts while the store is unavailable.
const RETRY: Duration = Duration::from_secs(1);

/// The snapshots built from one load of the directory.
struct Snapshots {
    common: Snapshot,
    groups: BTreeMap<String, Snapshot>,
}

/// Checks that every snapshot `loaded` makes is consistent, as serving it would.
pub fn check(loaded: &LoadedResources) -> Result<(), String> {
    Snapshots::build(loaded).map(drop)
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
    /// The store revision the served snapshots were built from.
    pub revision: Revision,
    /// Snapshot builds so far.
    pub loads: u64,
    /// Per node cluster (`"*"`: every other cluster), per type URL, the version served.
    pub versions: BTreeMap<String, BTreeMap<String, String>>,
    /// Why the last build failed, if it did (the previous resources are still served).
    pub last_error: Option<String>,
    /// Each governance document's status, by `Kind/namespace/name`.
    pub governance: BTreeMap<String, bosun_translate::Status>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// A [`Cache`] over the snapshots built from the store.
pub struct SnapshotSource {
    cache: SnapshotCache,
    state: Mutex<State>,
    reloads: Family<ResultLabel, Counter>,
    /// The store revision followed so far (whether or not its snapshots were consistent).
    followed: tokio::sync::watch::Sender<Option<Revision>>,
    statuses: Arc<GovernanceStatuses>,
}

struct State {
    snapshots: Snapshots,
    status: SourceStatus,
}

impl SnapshotSource {
    /// A source that serves an empty snapshot until [`SnapshotSource::apply`] is called.
    pub fn new(registry: &mut Registry) -> Self {
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("bosun_snapshot_builds", "Snapshot builds from the store's resources", reloads.clone());
        Self {
            cache: SnapshotCache::new(ByNodeCluster),
            state: Mutex::new(State {
                snapshots: Snapshots { common: Snapshot::default(), groups: BTreeMap::new() },
                status: SourceStatus::default(),
            }),
            reloads,
            followed: tokio::sync::watch::Sender::new(None),
            statuses: Arc::default(),
        }
    }

    /// The governance documents' statuses, as the last translation left them.
    pub fn statuses(&self) -> Arc<GovernanceStatuses> {
        self.statuses.clone()
    }

    /// Waits until the store's contents have been read once (and served, if consistent): until
    /// then the snapshots are empty, and serving them would empty every node's config.
    pub async fn wait_ready(&self) {
        let mut rx = self.followed.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    fn followed(&self, revision: Revision) {
        self.followed.send_replace(Some(revision));
    }

    /// Builds and checks the snapshots of `loaded` and, if every one is consistent, serves them;
    /// otherwise logs why and keeps serving what it served.
    pub fn apply(&self, loaded: &LoadedResources, revision: Revision) -> Result<(), String> {
        let result = self.try_apply(loaded, revision);
        let label = if result.is_ok() { "ok" } else { "error" };
        self.reloads.get_or_create(&ResultLabel { result: label }).inc();
        if let Err(error) = &result {
            for line in error.lines() {
                tracing::error!(revision, "resources rejected, still serving the previous ones: {line}");
            }
            self.state.lock().status.last_error = Some(error.clone());
        }
        result
    }

    fn try_apply(&self, loaded: &LoadedResources, revision: Revision) -> Result<(), String> {
        let snapshots = Snapshots::build(loaded)?;
        let mut state = self.state.lock();
        // Every group that has a snapshot (its nodes connected before) or a namespace.
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
        state.status.revision = revision;
        state.status.loads += 1;
        state.status.last_error = None;
        tracing::debug!(revision, "snapshots built");
        Ok(())
    }

    /// Records a problem with the store's contents that did not stop the build.
    fn set_error(&self, error: Option<String>) {
        self.state.lock().status.last_error = error;
    }

    /// The source's status.
    pub fn status(&self) -> SourceStatus {
        let mut status = self.state.lock().status.clone();
        status.governance = self.statuses.all();
        status
    }
}

fn type_versions(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot.type_urls().map(|t| (t.to_owned(), snapshot.version(t).to_owned())).collect()
}

impl Cache for SnapshotSource {
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

/// The documents of the store: Envoy documents as resources, by key, and the governance
/// documents to translate.
#[derive(Default)]
struct StoreResources {
    resources: BTreeMap<Key, Resource>,
    /// Keys whose stored document failed to transcode, with why.
    broken: BTreeMap<Key, String>,
    governance: Governance,
    /// The metadata centre's interface mappings, served to every node.
    mappings: bosun_metadata::ads::MappingIndex,
}

impl StoreResources {
    fn put(&mut self, kv: &bosun_store::KeyValue) {
        if self.mappings.put(&kv.key) || self.governance.put(kv) {
            return;
        }
        match documents::resource_of(kv) {
            None => {}
            Some(Ok(resource)) => {
                self.broken.remove(&kv.key);
                self.resources.insert(kv.key.clone(), resource);
            }
            Some(Err(e)) => {
                self.resources.remove(&kv.key);
                self.broken.insert(kv.key.clone(), e);
            }
        }
    }

    fn delete(&mut self, key: &Key) {
        if self.mappings.delete(key) || self.governance.delete(key) {
            return;
        }
        self.resources.remove(key);
        self.broken.remove(key);
    }

    /// Translates what changed, publishes the statuses, and returns the resources of each
    /// namespace: `default` is common; every other namespace is the node cluster of that name.
    /// Within a namespace, a raw Envoy document wins over a translated resource of its name.
    fn loaded(&mut self, statuses: &GovernanceStatuses) -> LoadedResources {
        statuses.replace(self.governance.translate());
        let mut scopes: BTreeMap<&str, BTreeMap<(&str, &str), &Resource>> = BTreeMap::new();
        for (namespace, resources) in self.governance.resources() {
            scopes.entry(namespace).or_default().extend(resources.iter().map(|r| ((r.type_url(), r.name()), r)));
        }
        for (key, resource) in &self.resources {
            scopes.entry(key.namespace()).or_default().insert((resource.type_url(), resource.name()), resource);
        }
        let mut loaded = LoadedResources::default();
        for (namespace, resources) in scopes {
            let resources = resources.into_values().cloned().collect();
            if namespace == DEFAULT_NAMESPACE {
                loaded.common = resources;
            } else {
                loaded.groups.insert(namespace.to_owned(), resources);
            }
        }
        // Common resources reach every node cluster.
        loaded.common.extend(
            self.mappings
                .resources()
                .map(|(name, value)| Resource::from_encoded(bosun_metadata::ads::MAPPING_TYPE_URL, name, value.into())),
        );
        loaded
    }

    fn error(&self) -> Option<String> {
        let errors: Vec<String> = self.broken.values().cloned().chain(self.governance.error()).collect();
        (!errors.is_empty()).then(|| errors.join("\n"))
    }
}

/// Serves the store's Envoy documents through `source` until `shutdown`: lists them, then follows
/// the store's watch, rebuilding the snapshots after each burst of changes. A compacted watch
/// lists again; an unavailable store is retried, and the last snapshots keep being served.
pub async fn follow_store(
    store: Arc<dyn Store>,
    source: Arc<SnapshotSource>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let run = follow_once(&store, &source);
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            error = run => {
                tracing::warn!("following the store: {error}; listing again");
                source.set_error(Some(format!("store: {error}")));
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Lists and then watches until the watch fails; returns why.
async fn follow_once(store: &Arc<dyn Store>, source: &SnapshotSource) -> StoreError {
    let mut current = StoreResources::default();
    let mut revision = match store.revision().await {
        Ok(r) => r,
        Err(e) => return e,
    };
    // Each kind is read at its own revision; the watch starts after the earliest, and skips
    // for each kind what its list already showed.
    let mut listed_at: BTreeMap<String, Revision> = BTreeMap::new();
    let kinds = DocKind::known();
    let kinds = kinds.iter().map(DocKind::name).chain([bosun_metadata::keys::MAPPING_KIND]);
    for kind in kinds {
        let prefix = match Prefix::kind(kind) {
            Ok(p) => p,
            Err(e) => return e,
        };
        match store.list_all(&prefix, &Selector::everything()).await {
            Ok(page) => {
                revision = revision.min(page.revision);
                listed_at.insert(kind.to_owned(), page.revision);
                page.items.iter().for_each(|kv| current.put(kv));
            }
            Err(e) => return e,
        }
    }
    if source.apply(&current.loaded(&source.statuses), revision).is_ok() {
        source.set_error(current.error());
    }
    source.followed(revision);
    let mut watch = match store.watch(&Prefix::all(), revision + 1).await {
        Ok(w) => w,
        Err(e) => return e,
    };
    loop {
        let Some(first) = watch.next().await else {
            return StoreError::Unavailable("the watch ended".into());
        };
        let mut batches = vec![first];
        let deadline = tokio::time::Instant::now() + COALESCE_MAX;
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(COALESCE, watch.next()).await {
                Ok(Some(batch)) => batches.push(batch),
                Ok(None) | Err(_) => break,
            }
            while let Some(Some(batch)) = watch.next().now_or_never() {
                batches.push(batch);
            }
        }
        let mut changed = false;
        for batch in batches {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return e,
            };
            for event in &batch.events {
                revision = revision.max(event.revision());
                let kind = event.key().kind();
                if (DocKind::of_store_kind(kind).is_none() && kind != bosun_metadata::keys::MAPPING_KIND)
                    || listed_at.get(kind).is_some_and(|&listed| event.revision() <= listed)
                {
                    continue;
                }
                changed = true;
                match event {
                    Event::Put(kv) => current.put(kv),
                    Event::Delete { key, .. } => current.delete(key),
                }
            }
        }
        if changed && source.apply(&current.loaded(&source.statuses), revision).is_ok() {
            source.set_error(current.error());
        }
        source.followed(revision);
    }
}

#[cfg(test)]
mod tests {
    use bosun_store::{KeyValue, Labels, Value};
    use serde_json::json;

    use super::*;
    use crate::documents::Document;

    fn stored(doc: serde_json::Value) -> KeyValue {
        let doc = Document::parse(doc).expect("valid document");
        KeyValue { key: doc.key.clone(), value: doc.value(), create_revision: 1, mod_revision: 1, version: 1 }
    }

    fn service() -> serde_json::Value {
        json!({"kind": "Service", "metadata": {"name": "cart", "namespace": "edge"},
               "spec": {"ports": [{"name": "http", "port": 8080}], "endpoints": [{"address": "127.0.0.1"}]}})
    }

    fn named<'a>(resources: &'a [Resource], type_suffix: &str, name: &str) -> Option<&'a Resource> {
        resources.iter().find(|r| r.type_url().ends_with(type_suffix) && r.name() == name)
    }

    #[test]
    fn governance_documents_are_translated_into_their_namespace_and_raw_resources_win() {
        let statuses = GovernanceStatuses::default();
        let mut current = StoreResources::default();
        current.put(&stored(service()));
        let loaded = current.loaded(&statuses);
        assert!(loaded.common.is_empty());
        let edge = &loaded.groups["edge"];
        assert!(named(edge, ".Listener", "bosun_http_8080").is_some());
        let translated = named(edge, ".Cluster", "outbound|8080||cart.edge").expect("translated cluster").clone();
        let key = Key::new("Service", "edge", "cart").expect("key");
        assert!(matches!(statuses.get(&key), Some(bosun_translate::Status::Enforced { .. })));

        // A raw cluster of the same name replaces the translated one.
        let raw =
            stored(json!({"kind": "Cluster", "metadata": {"name": "outbound|8080||cart.edge", "namespace": "edge"},
                                "spec": {"type": "STATIC", "connect_timeout": "5s"}}));
        current.put(&raw);
        let loaded = current.loaded(&statuses);
        let served = named(&loaded.groups["edge"], ".Cluster", "outbound|8080||cart.edge").expect("cluster");
        assert_ne!(served.version(), translated.version());
        assert_eq!(served.version(), documents::resource_of(&raw).expect("envoy kind").expect("resource").version());

        // Deleting the service takes its resources and status away; the raw cluster stays.
        current.delete(&key);
        let loaded = current.loaded(&statuses);
        assert!(named(&loaded.groups["edge"], ".Listener", "bosun_http_8080").is_none());
        assert!(named(&loaded.groups["edge"], ".Cluster", "outbound|8080||cart.edge").is_some());
        assert!(statuses.get(&key).is_none());
    }

    #[test]
    fn an_unreadable_stored_document_is_invalid() {
        let statuses = GovernanceStatuses::default();
        let mut current = StoreResources::default();
        let key = Key::new("RateLimitStrategy", "default", "broken").expect("key");
        let value = Value { data: br#"{"threshold": "lots"}"#.to_vec().into(), labels: Labels::new(), lease: None };
        current.put(&KeyValue { key: key.clone(), value, create_revision: 1, mod_revision: 1, version: 1 });
        current.loaded(&statuses);
        match statuses.get(&key) {
            Some(bosun_translate::Status::Invalid { why }) => assert!(why.contains("spec.threshold"), "{why}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        let shown = statuses.render(&KeyValue {
            key: key.clone(),
            value: Value { data: b"{}".to_vec().into(), labels: Labels::new(), lease: None },
            create_revision: 1,
            mod_revision: 1,
            version: 1,
        });
        assert_eq!(shown["status"]["state"], "Invalid");
    }
}
