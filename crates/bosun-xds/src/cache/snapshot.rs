//! [`SnapshotCache`]: a snapshot of every type per group of nodes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::{ByNodeId, Cache, NodeHash, TypeWatch};
use crate::resource::push_priority;
use crate::snapshot::{Snapshot, SnapshotError, TypeResources};

/// A snapshot per group of nodes. Setting a snapshot wakes only the watches of the types whose
/// version changed.
///
/// With [`SnapshotCache::served_elsewhere`], the consistency check skips the references into
/// types another cache serves: a snapshot whose clusters use EDS endpoints that a
/// [`super::LinearCache`] serves (the two behind a [`super::MuxCache`]) is accepted without
/// those endpoints.
pub struct SnapshotCache {
    hash: Box<dyn NodeHash>,
    groups: RwLock<HashMap<String, Arc<Group>>>,
    /// Types that clients get from another cache: references into them are not checked.
    served_elsewhere: BTreeSet<String>,
}

#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
}

#[derive(Default)]
struct GroupState {
    snapshot: Option<Arc<Snapshot>>,
    watches: HashMap<String, watch::Sender<Option<Arc<TypeResources>>>>,
}

impl GroupState {
    fn current(&self, type_url: &str) -> Option<Arc<TypeResources>> {
        let snapshot = self.snapshot.as_ref()?;
        Some(snapshot.resources(type_url).cloned().unwrap_or_else(|| Arc::new(TypeResources::new(type_url, []))))
    }
}

impl fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("groups", &self.groups.read().len())
            .field("served_elsewhere", &self.served_elsewhere)
            .finish()
    }
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new(ByNodeId)
    }
}

impl SnapshotCache {
    /// A cache that groups nodes with `hash`.
    pub fn new(hash: impl NodeHash) -> Self {
        Self { hash: Box::new(hash), groups: RwLock::new(HashMap::new()), served_elsewhere: BTreeSet::new() }
    }

    /// Declares that clients get `type_urls` from another cache (this one sits behind a
    /// [`super::MuxCache`] that routes those types elsewhere): the consistency check of
    /// [`Self::set_snapshot`] no longer requires that the resources clusters and listeners
    /// reference of those types be in the snapshot (for [`crate::type_url::ENDPOINT`]: the
    /// EDS endpoints of clusters; for [`crate::type_url::ROUTE`]: the RDS route configurations
    /// of listeners). Making sure the other cache holds them is then the caller's job.
    pub fn served_elsewhere<S: Into<String>>(mut self, type_urls: impl IntoIterator<Item = S>) -> Self {
        self.served_elsewhere.extend(type_urls.into_iter().map(Into::into));
        self
    }

    fn group(&self, key: &str) -> Arc<Group> {
        if let Some(g) = self.groups.read().get(key) {
            return g.clone();
        }
        self.groups.write().entry(key.to_owned()).or_default().clone()
    }

    /// Checks `snapshot` for consistency (skipping references into the types
    /// [`Self::served_elsewhere`]) and, if it passes, makes it the snapshot of `group`. Types
    /// whose content is unchanged keep their version and wake nobody.
    pub fn set_snapshot(&self, group: &str, mut snapshot: Snapshot) -> Result<(), SnapshotError> {
        snapshot.check_consistency_except(|t| self.served_elsewhere.contains(t))?;
        let g = self.group(group);
        let mut state = g.state.lock();
        if let Some(prev) = &state.snapshot {
            snapshot.reuse_unchanged(prev);
        }
        state.snapshot = Some(Arc::new(snapshot));
        let GroupState { snapshot, watches } = &mut *state;
        let Some(snapshot) = snapshot.as_ref() else { return Ok(()) };
        // Forget the channels nobody listens to any more.
        watches.retain(|_, tx| tx.receiver_count() > 0);
        // Wake in push order: a stream that runs while this loop is still waking sees the
        // changes of a prefix of that order, so it pushes clusters before endpoints before
        // listeners before routes, whatever the interleaving.
        let mut types: Vec<&String> = watches.keys().collect();
        types.sort_by_key(|t| (push_priority(t), *t));
        for type_url in types {
            let Some(tx) = watches.get(type_url) else { continue };
            let next = snapshot.resources(type_url);
            tx.send_if_modified(|cur| match (cur.as_ref(), next) {
                (Some(cur), Some(next)) if Arc::ptr_eq(cur, next) => false,
                (Some(cur), None) if cur.is_empty() => false,
                _ => {
                    *cur = Some(next.cloned().unwrap_or_else(|| Arc::new(TypeResources::new(type_url, []))));
                    true
                }
            });
        }
        Ok(())
    }

    /// The snapshot of `group`, if one was set.
    pub fn snapshot(&self, group: &str) -> Option<Arc<Snapshot>> {
        self.groups.read().get(group).and_then(|g| g.state.lock().snapshot.clone())
    }

    /// Removes the snapshot of `group`; its streams keep what they have until a new one is set.
    pub fn clear_snapshot(&self, group: &str) {
        let mut groups = self.groups.write();
        let Some(g) = groups.get(group) else { return };
        let mut state = g.state.lock();
        state.snapshot = None;
        state.watches.retain(|_, tx| tx.receiver_count() > 0);
        if state.watches.is_empty() {
            drop(state);
            groups.remove(group);
        }
    }

    /// The group keys that have a snapshot.
    pub fn groups(&self) -> Vec<String> {
        self.groups.read().iter().filter(|(_, g)| g.state.lock().snapshot.is_some()).map(|(k, _)| k.clone()).collect()
    }

    /// The group key of `node`.
    pub fn group_of(&self, node: &Node) -> String {
        self.hash.group(node)
    }
}

impl Cache for SnapshotCache {
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch {
        let g = self.group(&self.hash.group(node));
        let mut state = g.state.lock();
        if let Some(tx) = state.watches.get(type_url) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(state.current(type_url));
        state.watches.insert(type_url.to_owned(), tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ByNodeCluster;
    use crate::resource::{Resource, type_url};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::Listener;

    fn node(id: &str) -> Node {
        Node { id: id.into(), ..Default::default() }
    }

    #[test]
    fn only_changed_types_wake() {
        let cache = SnapshotCache::default();
        let mut cds = cache.watch(&node("n"), type_url::CLUSTER);
        let mut lds = cache.watch(&node("n"), type_url::LISTENER);
        assert!(cds.borrow().is_none());
        let c = Resource::new(&Cluster { name: "c".into(), ..Default::default() });
        let l = Resource::new(&Listener { name: "l".into(), ..Default::default() });
        cache.set_snapshot("n", Snapshot::new([c.clone(), l.clone()])).expect("set");
        assert!(cds.has_changed().expect("open") && lds.has_changed().expect("open"));
        cds.borrow_and_update();
        lds.borrow_and_update();
        let c2 = Resource::new(&Cluster { name: "c2".into(), ..Default::default() });
        cache.set_snapshot("n", Snapshot::new([c2, l])).expect("set");
        assert!(cds.has_changed().expect("open"));
        assert!(!lds.has_changed().expect("open"), "listeners did not change");
        // Removing every listener wakes the listener watch with an empty set.
        cds.borrow_and_update();
        cache.set_snapshot("n", Snapshot::new([c])).expect("set");
        assert!(lds.has_changed().expect("open"));
        assert!(lds.borrow_and_update().as_ref().expect("set").is_empty());
    }

    #[test]
    fn a_new_set_knows_which_names_changed_from_the_one_it_replaced() {
        let cache = SnapshotCache::default();
        let cluster = |name: &str, stat: &str| {
            Resource::new(&Cluster { name: name.into(), alt_stat_name: stat.into(), ..Default::default() })
        };
        cache.set_snapshot("n", Snapshot::new([cluster("a", ""), cluster("b", ""), cluster("c", "")])).expect("set");
        let first = cache.snapshot("n").and_then(|s| s.resources(type_url::CLUSTER).cloned()).expect("clusters");
        cache.set_snapshot("n", Snapshot::new([cluster("a", ""), cluster("b", "2"), cluster("d", "")])).expect("set");
        let second = cache.snapshot("n").and_then(|s| s.resources(type_url::CLUSTER).cloned()).expect("clusters");
        let mut changed: Vec<&str> =
            second.changed_since(first.digest()).expect("replaced first").iter().map(|n| &**n).collect();
        changed.sort();
        assert_eq!(changed, ["b", "c", "d"]);
        assert!(second.changed_since(second.digest()).is_none(), "only relative to the set it replaced");
    }

    #[test]
    fn groups_are_separate() {
        let cache = SnapshotCache::new(ByNodeCluster);
        let a = Node { id: "1".into(), cluster: "a".into(), ..Default::default() };
        let b = Node { id: "2".into(), cluster: "b".into(), ..Default::default() };
        let wa = cache.watch(&a, type_url::CLUSTER);
        let wb = cache.watch(&b, type_url::CLUSTER);
        cache
            .set_snapshot("a", Snapshot::new([Resource::new(&Cluster { name: "c".into(), ..Default::default() })]))
            .expect("set");
        assert!(wa.has_changed().expect("open"));
        assert!(!wb.has_changed().expect("open"));
        assert!(wb.borrow().is_none());
    }
}
