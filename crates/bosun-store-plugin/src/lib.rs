//! Storage plugins: a Bosun [`Store`](bosun_store::Store) backend in another process, so that
//! users bring their own database without recompiling Bosun (DESIGN.md §5, §6).
//!
//! The plugin speaks hashicorp/go-plugin's gRPC protocol (through `bosun-plugin`) and serves the
//! `bosun.plugin.v1.Storage` service (`proto/bosun/plugin/v1/storage.proto`), which mirrors the
//! `Store` trait one call per method.
//!
//! - Host side, [`PluginStore`]: a `Store` over a supervised plugin process. Its errors are the
//!   store's own (a conflict is [`StoreError::Conflict`](bosun_store::StoreError::Conflict), and so
//!   on); a plugin that is down is [`StoreError::Unavailable`](bosun_store::StoreError::Unavailable),
//!   also as the last item of a watch it was serving.
//! - Plugin side, [`serve_store`] and [`serve_storage`]: a storage plugin is a `Store` (or an
//!   [`OpenStore`] that opens one from the plugin's configuration) and one call.
//!
//! The crate's binary `bosun-embedded-storage-plugin` is an example plugin serving the embedded
//! (redb) store.

#![warn(missing_docs)]

mod convert;
mod host;
mod service;
mod status;

pub use host::{PluginStore, PluginStoreOptions};
pub use service::{OpenStore, StorageService, serve_storage, serve_store, storage_server};

/// The largest message either side accepts: a list without a limit can be large.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The generated protobuf and tonic code of `bosun.plugin.v1.Storage`.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("bosun.plugin.v1");
}
