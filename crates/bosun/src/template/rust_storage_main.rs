//! {{name}}: a Bosun storage plugin (`bosun serve --store plugin:{{name}}`).
//!
//! A storage plugin is a `bosun_store::Store` served over gRPC: `serve_storage` takes an
//! `OpenStore`, which Bosun's `Configure` call (the `config` table of the plugin's `[[plugin]]`
//! entry, as JSON) opens. This one starts from Bosun's embedded store (`{"path": "DIR"}`);
//! put your database's `Store` implementation in its place, and run the conformance suite
//! (`bosun_store::conformance`) against it to know it is right.

use std::sync::Arc;

use bosun_store::{LocalStore, Result, Store, StoreError};
use bosun_store_plugin::OpenStore;
use serde_json::Value;

struct Open;

#[async_trait::async_trait]
impl OpenStore for Open {
    async fn open(&self, config_json: &str) -> Result<Arc<dyn Store>> {
        let config: Value =
            serde_json::from_str(config_json).map_err(|e| StoreError::invalid("config", format!("is not JSON: {e}")))?;
        let Some(path) = config.get("path").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
            return Err(StoreError::invalid("config.path", "must be a non-empty string: the data directory"));
        };
        Ok(Arc::new(LocalStore::open(std::path::Path::new(path)).await?))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    bosun_store_plugin::serve_storage(Open).await
}
