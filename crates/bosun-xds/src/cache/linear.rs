//! [`LinearCache`]: one type, the same resources for every node, changed a resource at a time.

use std::fmt;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Cache, TypeWatch, unserved_sender};
use crate::resource::Resource;
use crate::snapshot::TypeResources;

/// The resources of one type URL, the same for every node, as go-control-plane's
/// `LinearCache`.
///
/// Each change makes a new [`TypeResources`] that shares every untouched resource with the
/// previous one, so changing one resource out of N costs O(log N), not O(N): nothing is
/// re-encoded, re-hashed or re-concatenated. The new set records the names that changed, so
/// Delta streams and SotW streams of partial types (EDS, RDS) look only at those. A change that
/// leaves every resource's content as it was wakes nobody. The version is derived from the
/// content alone, so replicas holding the same resources report the same version.
///
/// A new cache holds an empty set, which it serves at once (a wildcard subscriber of a
/// full-state type receives an empty response).
pub struct LinearCache {
    type_url: Arc<str>,
    /// The current set. Changes hold the lock while making the next set and publishing it, so
    /// they apply one after the other.
    current: Mutex<Arc<TypeResources>>,
    sender: watch::Sender<Option<Arc<TypeResources>>>,
    /// Handed out for watches of other types.
    unserved: watch::Sender<Option<Arc<TypeResources>>>,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinearCacheError {
    /// A resource of another type than the cache's.
    #[error("resource {name:?}: type_url {actual:?} is not this cache's type {expected:?}")]
    WrongType {
        /// The resource's name.
        name: String,
        /// The resource's type URL.
        actual: String,
        /// The cache's type URL.
        expected: String,
    },
}

impl fmt::Debug for LinearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.lock();
        f.debug_struct("LinearCache")
            .field("type_url", &self.type_url)
            .field("resources", &current.len())
            .field("version", &current.version())
            .finish()
    }
}

impl LinearCache {
    /// An empty cache of `type_url`.
    pub fn new(type_url: &str) -> Self {
        let empty = Arc::new(TypeResources::new_persistent(type_url, []));
        Self {
            type_url: type_url.into(),
            current: Mutex::new(empty.clone()),
            sender: watch::channel(Some(empty)).0,
            unserved: unserved_sender(),
        }
    }

    /// The type URL this cache serves.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// Adds `resource`, or replaces the resource of the same name. Returns whether the content
    /// changed (and watchers were woken).
    pub fn update_resource(&self, resource: Resource) -> Result<bool, LinearCacheError> {
        self.update_resources([resource], [])
    }

    /// Removes the resource named `name`. Returns whether there was one.
    pub fn delete_resource(&self, name: &str) -> bool {
        self.apply(|current| current.updated([], [name]))
    }

    /// Adds or replaces `upserts`, then removes `deletes`, as one change: watchers are woken
    /// once, if any content changed. Refused, with nothing changed, if an upsert is of another
    /// type. Returns whether the content changed.
    pub fn update_resources<'a>(
        &self,
        upserts: impl IntoIterator<Item = Resource>,
        deletes: impl IntoIterator<Item = &'a str>,
    ) -> Result<bool, LinearCacheError> {
        let upserts = self.checked(upserts)?;
        Ok(self.apply(|current| current.updated(upserts, deletes)))
    }

    /// Replaces every resource with `resources` (a later duplicate name replaces an earlier
    /// one). This compares the whole set with the current one: O(N). Returns whether the
    /// content changed.
    pub fn set_resources(&self, resources: impl IntoIterator<Item = Resource>) -> Result<bool, LinearCacheError> {
        let resources = self.checked(resources)?;
        Ok(self.apply(|current| TypeResources::replacing(current, resources)))
    }

    /// The resource named `name`.
    pub fn get(&self, name: &str) -> Option<Resource> {
        self.current.lock().get(name).cloned()
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.current.lock().len()
    }

    /// Whether the cache holds no resource.
    pub fn is_empty(&self) -> bool {
        self.current.lock().is_empty()
    }

    /// The version of the current set (`"empty"` when there is no resource).
    pub fn version(&self) -> String {
        self.current.lock().version().to_owned()
    }

    /// The current set, as streams see it.
    pub fn resources(&self) -> Arc<TypeResources> {
        self.current.lock().clone()
    }

    fn checked(&self, resources: impl IntoIterator<Item = Resource>) -> Result<Vec<Resource>, LinearCacheError> {
        let resources: Vec<Resource> = resources.into_iter().collect();
        if let Some(r) = resources.iter().find(|r| r.type_url() != &*self.type_url) {
            return Err(LinearCacheError::WrongType {
                name: r.name().to_owned(),
                actual: r.type_url().to_owned(),
                expected: self.type_url.to_string(),
            });
        }
        Ok(resources)
    }

    /// Makes the next set from the current one with `next` and, if it returns one, publishes it
    /// to every watcher. Returns whether it did.
    fn apply(&self, next: impl FnOnce(&TypeResources) -> Option<TypeResources>) -> bool {
        let mut current = self.current.lock();
        let Some(next) = next(&current) else { return false };
        let next = Arc::new(next);
        *current = next.clone();
        self.sender.send_replace(Some(next));
        true
    }
}

impl Cache for LinearCache {
    /// A watch on the cache's set, the same for every node. For another type URL: a warning,
    /// and a watch that stays empty (the server sends nothing for that type).
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch {
        if type_url == &*self.type_url {
            return self.sender.subscribe();
        }
        tracing::warn!(
            node = %node.id,
            type_url,
            served = %self.type_url,
            "a linear cache was asked for a type it does not serve; nothing will be sent for it"
        );
        self.unserved.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::type_url;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
    use prost::Message;

    /// The endpoints of `name`, whose content depends on `weight`.
    fn cla(name: &str, weight: u32) -> Resource {
        Resource::new(&ClusterLoadAssignment {
            cluster_name: name.into(),
            policy: Some(envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy {
                overprovisioning_factor: Some(envoy_types::pb::google::protobuf::UInt32Value { value: weight }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn node() -> Node {
        Node { id: "n".into(), ..Default::default() }
    }

    fn changed(set: &TypeResources, since: u64) -> Vec<String> {
        set.changed_since(since).expect("changes recorded").iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn versions_are_content_derived_and_order_free() {
        let one_by_one = LinearCache::new(type_url::ENDPOINT);
        for name in ["a", "b", "c"] {
            assert!(one_by_one.update_resource(cla(name, 1)).expect("update"));
        }
        let all_at_once = LinearCache::new(type_url::ENDPOINT);
        all_at_once.set_resources([cla("c", 1), cla("a", 1), cla("b", 1)]).expect("set");
        assert_eq!(one_by_one.version(), all_at_once.version());
        // The same content as a set built whole (as snapshots are) has the same version.
        let built = TypeResources::new(type_url::ENDPOINT, [cla("b", 1), cla("c", 1), cla("a", 1)]);
        assert_eq!(one_by_one.version(), built.version());
        // A change and its undoing come back to the same version; another content differs.
        let before = one_by_one.version();
        one_by_one.update_resource(cla("b", 2)).expect("update");
        assert_ne!(one_by_one.version(), before);
        one_by_one.update_resource(cla("b", 1)).expect("update");
        assert_eq!(one_by_one.version(), before);
        one_by_one.delete_resource("c");
        assert_eq!(one_by_one.version(), TypeResources::new(type_url::ENDPOINT, [cla("a", 1), cla("b", 1)]).version());
        assert_eq!(LinearCache::new(type_url::ENDPOINT).version(), "empty");
    }

    #[test]
    fn an_update_with_the_same_content_wakes_nobody() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        cache.set_resources([cla("a", 1), cla("b", 1)]).expect("set");
        let mut rx = cache.watch(&node(), type_url::ENDPOINT);
        rx.borrow_and_update();
        assert!(!cache.update_resource(cla("a", 1)).expect("update"));
        assert!(!cache.update_resources([cla("a", 1), cla("b", 1)], ["missing"]).expect("update"));
        assert!(!cache.set_resources([cla("b", 1), cla("a", 1)]).expect("set"));
        // Replaced and put back within one batch: no change either.
        assert!(!cache.update_resources([cla("a", 2), cla("a", 1)], []).expect("update"));
        assert!(!cache.delete_resource("missing"));
        assert!(!rx.has_changed().expect("open"), "nothing changed, nobody woken");
        assert!(cache.update_resource(cla("a", 2)).expect("update"));
        assert!(rx.has_changed().expect("open"));
    }

    #[test]
    fn delete_removes_and_records_the_name() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        cache.set_resources([cla("a", 1), cla("b", 1)]).expect("set");
        let before = cache.resources();
        let mut rx = cache.watch(&node(), type_url::ENDPOINT);
        rx.borrow_and_update();
        assert!(cache.delete_resource("a"));
        assert!(rx.has_changed().expect("open"));
        let after = rx.borrow_and_update().clone().expect("a set");
        assert!(after.get("a").is_none() && cache.get("a").is_none());
        assert_eq!(after.len(), 1);
        assert_eq!(changed(&after, before.digest()), ["a"]);
        // The untouched resource is the very same one (nothing re-encoded).
        let bytes = |set: &TypeResources| set.get("b").expect("b").value().as_ptr();
        assert_eq!(bytes(&after), bytes(&before));
    }

    #[test]
    fn a_batch_is_one_change_with_every_name_it_touched() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        cache.set_resources([cla("a", 1), cla("b", 1), cla("c", 1)]).expect("set");
        let before = cache.resources();
        let mut rx = cache.watch(&node(), type_url::ENDPOINT);
        rx.borrow_and_update();
        // "b" unchanged, "c" replaced, "d" added, "a" deleted.
        assert!(cache.update_resources([cla("b", 1), cla("c", 2), cla("d", 1)], ["a"]).expect("update"));
        let after = rx.borrow_and_update().clone().expect("a set");
        assert!(!rx.has_changed().expect("open"), "woken once");
        assert_eq!(changed(&after, before.digest()), ["a", "c", "d"]);
        let names: Vec<&str> = after.iter().map(Resource::name).collect();
        assert_eq!(names, ["b", "c", "d"]);
        assert_eq!(
            after.version(),
            TypeResources::new(type_url::ENDPOINT, [cla("b", 1), cla("c", 2), cla("d", 1)]).version()
        );
    }

    #[test]
    fn changes_are_known_from_the_last_few_sets() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        cache.set_resources((0..100).map(|i| cla(&format!("r{i:03}"), 1))).expect("set");
        let first = cache.resources();
        cache.update_resource(cla("r005", 2)).expect("update");
        let second = cache.resources();
        cache.update_resource(cla("r001", 2)).expect("update");
        cache.delete_resource("r050");
        let last = cache.resources();
        assert_eq!(changed(&last, first.digest()), ["r001", "r005", "r050"]);
        assert_eq!(changed(&last, second.digest()), ["r001", "r050"]);
        assert!(last.changed_since(last.digest()).is_none(), "only relative to earlier sets");
        // Beyond the history, a stream compares everything (correct, just not O(changed)).
        for i in 10..20 {
            cache.update_resource(cla(&format!("r{i:03}"), 3)).expect("update");
        }
        assert!(cache.resources().changed_since(first.digest()).is_none());
    }

    #[test]
    fn bodies_of_an_updated_set_hold_every_resource() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        cache.set_resources([cla("a", 1), cla("b", 1)]).expect("set");
        cache.update_resources([cla("c", 1), cla("a", 2)], ["b"]).expect("update");
        let set = cache.resources();
        let sotw = DiscoveryResponse::decode(set.all_entries().clone()).expect("decodes");
        let names: Vec<String> = sotw
            .resources
            .iter()
            .map(|any| ClusterLoadAssignment::decode(any.value.as_slice()).expect("cla").cluster_name)
            .collect();
        assert_eq!(names, ["a", "c"]);
        let delta = DeltaDiscoveryResponse::decode(set.all_delta_entries().clone()).expect("decodes");
        let versions: Vec<(String, String)> =
            delta.resources.iter().map(|r| (r.name.clone(), r.version.clone())).collect();
        assert_eq!(versions, [("a".into(), cla("a", 2).version().into()), ("c".into(), cla("c", 1).version().into())]);
    }

    #[test]
    fn a_resource_of_another_type_is_refused_and_changes_nothing() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        let cluster = Resource::new(&Cluster { name: "c1".into(), ..Default::default() });
        let err = cache.update_resources([cla("a", 1), cluster.clone()], []).expect_err("wrong type");
        let text = err.to_string();
        assert!(
            text.contains("\"c1\"") && text.contains(type_url::CLUSTER) && text.contains(type_url::ENDPOINT),
            "{text}"
        );
        assert!(cache.is_empty(), "the batch is refused whole");
        assert!(cache.set_resources([cluster]).is_err());
    }

    #[test]
    fn a_watch_of_another_type_stays_empty() {
        let cache = LinearCache::new(type_url::ENDPOINT);
        let rx = cache.watch(&node(), type_url::CLUSTER);
        cache.update_resource(cla("a", 1)).expect("update");
        assert!(rx.borrow().is_none());
        assert!(!rx.has_changed().expect("open"));
        // The type it serves starts as an empty set, served at once.
        let rx = cache.watch(&node(), type_url::ENDPOINT);
        assert_eq!(rx.borrow().as_ref().map(|s| s.len()), Some(1));
    }
}
