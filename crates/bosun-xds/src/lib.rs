//! `bosun-xds`: an xDS control-plane server library, the Rust counterpart of go-control-plane.
//!
//! - [`resource`]: named, versioned resources, encoded once and shared by every stream;
//! - [`snapshot`]: a consistent set of resources of every type, checked before it is served;
//! - [`cache`]: where the server gets resources ([`Cache`]): the per-node-group
//!   [`SnapshotCache`], the one-type [`LinearCache`], and the per-type [`MuxCache`];
//! - [`server`]: ADS and per-type discovery over a cache, State-of-the-World and Delta;
//! - [`observer`]: stream, request, response, ACK and NACK events for status and metrics;
//! - [`csds`]: the Client Status Discovery Service over an observer that tracks every client.

#![warn(missing_docs)]

pub mod cache;
pub mod codec;
pub mod csds;
pub mod observer;
pub mod resource;
pub mod server;
pub mod snapshot;

pub use cache::{ByNodeCluster, ByNodeId, Cache, LinearCache, LinearCacheError, MuxCache, NodeHash, SnapshotCache};
pub use observer::{Observer, ResponseEvent, StreamId};
pub use resource::{Resource, XdsResource, type_url};
pub use server::{XdsServer, XdsServerBuilder};
pub use snapshot::{Snapshot, SnapshotError, TypeResources};
