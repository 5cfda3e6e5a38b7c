//! [`MuxCache`]: a cache per type URL.

use std::collections::HashMap;
use std::fmt;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;

use super::{Cache, TypeWatch, unserved_sender};
use crate::snapshot::TypeResources;

/// Picks the cache that serves each type URL, as go-control-plane's `MuxCache`: the endpoints
/// (EDS) from a [`super::LinearCache`] and the rest from a [`super::SnapshotCache`], say.
///
/// A type with no cache of its own goes to the default cache; with no default either, the
/// watch stays empty (a warning is logged and the server sends nothing for that type).
///
/// When the default is a [`super::SnapshotCache`] and a type its snapshots reference (EDS,
/// RDS) is routed elsewhere, tell it so with [`super::SnapshotCache::served_elsewhere`], or
/// its consistency check refuses snapshots that lack those resources.
pub struct MuxCache {
    routes: HashMap<String, Box<dyn Cache>>,
    default: Option<Box<dyn Cache>>,
    /// Handed out for types nobody serves.
    unserved: watch::Sender<Option<std::sync::Arc<TypeResources>>>,
}

impl Default for MuxCache {
    fn default() -> Self {
        Self { routes: HashMap::new(), default: None, unserved: unserved_sender() }
    }
}

impl fmt::Debug for MuxCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routed: Vec<&String> = self.routes.keys().collect();
        routed.sort();
        f.debug_struct("MuxCache").field("routed", &routed).field("default", &self.default.is_some()).finish()
    }
}

impl MuxCache {
    /// A multiplexer that serves nothing until types are routed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `type_url` from `cache` (pass an `Arc` to keep a handle for updates).
    pub fn route(mut self, type_url: impl Into<String>, cache: impl Cache) -> Self {
        self.routes.insert(type_url.into(), Box::new(cache));
        self
    }

    /// Serves every type not routed elsewhere from `cache`.
    pub fn default_cache(mut self, cache: impl Cache) -> Self {
        self.default = Some(Box::new(cache));
        self
    }
}

impl Cache for MuxCache {
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch {
        match self.routes.get(type_url).or(self.default.as_ref()) {
            Some(cache) => cache.watch(node, type_url),
            None => {
                tracing::warn!(node = %node.id, type_url, "no cache serves this type; nothing will be sent for it");
                self.unserved.subscribe()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::{LinearCache, SnapshotCache};
    use crate::resource::{Resource, type_url};
    use crate::snapshot::{Snapshot, SnapshotError};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

    fn eds_cluster(name: &str) -> Resource {
        Resource::new(&Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig::default()),
            ..Default::default()
        })
    }

    fn node() -> Node {
        Node { id: "n".into(), ..Default::default() }
    }

    #[test]
    fn each_type_comes_from_its_cache() {
        let linear = Arc::new(LinearCache::new(type_url::ENDPOINT));
        let snapshots = Arc::new(SnapshotCache::default().served_elsewhere([type_url::ENDPOINT]));
        let mux = MuxCache::new().route(type_url::ENDPOINT, linear.clone()).default_cache(snapshots.clone());
        // Clusters whose endpoints the linear cache serves: accepted without them.
        snapshots.set_snapshot("n", Snapshot::new([eds_cluster("a")])).expect("EDS is served elsewhere");
        linear
            .update_resource(Resource::new(&ClusterLoadAssignment { cluster_name: "a".into(), ..Default::default() }))
            .expect("update");
        let cds = mux.watch(&node(), type_url::CLUSTER);
        let eds = mux.watch(&node(), type_url::ENDPOINT);
        assert_eq!(cds.borrow().as_ref().map(|s| s.type_url().to_owned()).as_deref(), Some(type_url::CLUSTER));
        assert!(cds.borrow().as_ref().is_some_and(|s| s.get("a").is_some()));
        assert!(eds.borrow().as_ref().is_some_and(|s| s.get("a").is_some()));
        assert!(Arc::ptr_eq(eds.borrow().as_ref().expect("set"), &linear.resources()));
    }

    #[test]
    fn without_served_elsewhere_the_snapshot_check_still_refuses() {
        let snapshots = SnapshotCache::default();
        let err = snapshots.set_snapshot("n", Snapshot::new([eds_cluster("a")])).expect_err("missing endpoints");
        assert!(matches!(err, SnapshotError::Inconsistent(_)));
        // Routes are still checked when only endpoints are served elsewhere, and the other way.
        let mut snapshot = Snapshot::new([eds_cluster("a")]);
        snapshot.check_consistency_except(|t| t == type_url::ENDPOINT).expect("endpoints skipped");
        assert!(snapshot.check_consistency().is_err(), "a pass that skipped endpoints does not cover a full check");
    }

    #[test]
    fn a_type_nobody_serves_gets_an_empty_watch() {
        let linear = Arc::new(LinearCache::new(type_url::ENDPOINT));
        let mux = MuxCache::new().route(type_url::ENDPOINT, linear);
        let rx = mux.watch(&node(), type_url::LISTENER);
        assert!(rx.borrow().is_none());
        assert!(!rx.has_changed().expect("open"));
    }
}
