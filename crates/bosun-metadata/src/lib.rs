//! Bosun's service metadata centre (DESIGN.md §4): what Dubbo applications publish about themselves
//! (their `MetadataInfo` by revision, their service definitions, and which application serves which
//! interface), stored raw in the [`Store`](bosun_store::Store) and pushed to watchers.
//!
//! - Served over gRPC on the xDS port: Pixiu's `dubbo.networking.v1alpha1` services unchanged, and
//!   Bosun's `bosun.metadata.v1` services that add watches, heartbeats and reads ([`grpc`]).
//! - Every entry is attached to a store lease of its application ([`MetadataCentre`]), renewed by
//!   publishing again or by a heartbeat; when it lapses the store deletes the entry and watches see
//!   the deletion. Leases live in the store, so this works on every backend and across restarts.
//! - Interface mappings are also xDS resources of a type of their own ([`ads`]), served over
//!   ADS to every node.
//! - Store keys ([`keys`]) use kinds of their own (`ServiceMetadata`, `ServiceDefinition`,
//!   `ServiceMapping`, `MetadataLease`), which the document and snapshot code ignore.

pub mod ads;
pub mod centre;
mod error;
pub mod grpc;
pub mod keys;
pub mod listing;
mod watch;

pub use centre::{MetadataCentre, MetadataConfig};
pub use error::MetadataError;
pub use listing::{DefinitionEntry, MappingEntry, MetadataEntry};

/// The generated protobuf and gRPC types.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/metadata.rs"));
}
