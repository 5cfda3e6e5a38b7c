//! Caches: where the server gets the resources it pushes.
//!
//! The server knows nothing about where configuration comes from; it asks a [`Cache`] for a
//! watch on one type for one node and pushes whatever the watch holds.
//!
//! - [`SnapshotCache`]: a consistent snapshot of every type per group of nodes;
//! - [`LinearCache`]: one type, the same resources for every node, updated a resource at a
//!   time at a cost that grows with what changed;
//! - [`MuxCache`]: picks a cache per type URL (EDS from a linear cache, the rest from
//!   snapshots, say).

mod linear;
mod mux;
mod snapshot;

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;

use crate::snapshot::TypeResources;

pub use linear::{LinearCache, LinearCacheError};
pub use mux::MuxCache;
pub use snapshot::SnapshotCache;

/// What a stream watches for one type: `None` until the node's group has a snapshot.
pub type TypeWatch = watch::Receiver<Option<Arc<TypeResources>>>;

/// A source of resources for the server.
pub trait Cache: Send + Sync + 'static {
    /// A watch on the resources of `type_url` that `node` should receive. The receiver's value
    /// changes whenever those resources change, and only then.
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch;
}

/// Maps a node to the key of the group whose snapshot it receives.
pub trait NodeHash: Send + Sync + 'static {
    /// The group key of `node`.
    fn group(&self, node: &Node) -> String;
}

/// Groups nodes by `node.id` (one snapshot per node), as go-control-plane's `IDHash`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ByNodeId;

impl NodeHash for ByNodeId {
    fn group(&self, node: &Node) -> String {
        node.id.clone()
    }
}

/// Groups nodes by `node.cluster`: every node of one service cluster shares a snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub struct ByNodeCluster;

impl NodeHash for ByNodeCluster {
    fn group(&self, node: &Node) -> String {
        node.cluster.clone()
    }
}

impl<F: Fn(&Node) -> String + Send + Sync + 'static> NodeHash for F {
    fn group(&self, node: &Node) -> String {
        self(node)
    }
}

impl<C: Cache + ?Sized> Cache for Arc<C> {
    fn watch(&self, node: &Node, type_url: &str) -> TypeWatch {
        (**self).watch(node, type_url)
    }
}

/// The sending side of a watch that never holds anything: a cache hands out receivers of it
/// for a type it does not serve, and the server then sends nothing for that type.
fn unserved_sender() -> watch::Sender<Option<Arc<TypeResources>>> {
    watch::channel(None).0
}
