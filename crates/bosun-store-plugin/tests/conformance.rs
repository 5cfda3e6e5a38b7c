//! The whole store conformance suite against `PluginStore` and the example plugin process: each
//! test gets a data directory of its own, and every `open` launches a new plugin process on it,
//! as a restart of Bosun does.

use std::sync::Arc;

use async_trait::async_trait;
use bosun_plugin::LaunchConfig;
use bosun_store::Store;
use bosun_store::conformance::Harness;
use bosun_store_plugin::PluginStore;
use tempfile::TempDir;

const PLUGIN: &str = env!("CARGO_BIN_EXE_bosun-embedded-storage-plugin");

struct PluginHarness {
    dir: TempDir,
}

#[async_trait]
impl Harness for PluginHarness {
    async fn open(&self) -> Arc<dyn Store> {
        let config = serde_json::json!({ "path": self.dir.path() }).to_string();
        let store = PluginStore::start(LaunchConfig::new("embedded", PLUGIN), config).await.expect("start the plugin");
        Arc::new(store)
    }

    /// The data is in the directory: a new plugin process on it (a Bosun restart) reads it again.
    fn persistent(&self) -> bool {
        true
    }
}

fn harness() -> PluginHarness {
    PluginHarness { dir: tempfile::tempdir().expect("temp dir") }
}

bosun_store::conformance_suite!(harness());
