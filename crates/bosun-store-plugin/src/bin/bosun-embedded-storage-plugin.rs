//! An example storage plugin: Bosun's embedded store (redb, one file) served from another
//! process. Configured with `{"path": "DIR"}` (the data directory, created if missing) or
//! `{"memory": true}`.
//!
//! Run by Bosun (or the tests); run by hand it says it is a plugin and exits 1.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bosun_store::{LocalStore, Result, Store, StoreError};
use bosun_store_plugin::OpenStore;
use serde_json::Value;

/// Where the store lives.
#[derive(Debug, PartialEq, Eq)]
enum Config {
    /// In the data directory `DIR/bosun.redb`.
    Path(PathBuf),
    /// In memory, gone when the plugin exits.
    Memory,
}

/// Reads the configuration; errors name the field (`config.path`).
fn parse_config(text: &str) -> Result<Config> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| StoreError::invalid("config", format!("is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(StoreError::invalid("config", r#"must be an object: {"path": "DIR"} or {"memory": true}"#));
    };
    if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "path" | "memory")) {
        return Err(StoreError::invalid(format!("config.{unknown}"), "unknown field; expected path or memory"));
    }
    match (object.get("path"), object.get("memory")) {
        (Some(_), Some(_)) => Err(StoreError::invalid("config", "give path or memory, not both")),
        (Some(Value::String(path)), None) if !path.is_empty() => Ok(Config::Path(PathBuf::from(path))),
        (Some(_), None) => Err(StoreError::invalid("config.path", "must be a non-empty string: the data directory")),
        (None, Some(Value::Bool(true))) => Ok(Config::Memory),
        (None, Some(_)) => Err(StoreError::invalid("config.memory", "must be true (or give path instead)")),
        (None, None) => Err(StoreError::invalid("config", "needs path (the data directory) or memory: true")),
    }
}

/// Opens the embedded store the configuration names.
struct Embedded;

#[async_trait]
impl OpenStore for Embedded {
    async fn open(&self, config_json: &str) -> Result<Arc<dyn Store>> {
        let store: Arc<dyn Store> = match parse_config(config_json)? {
            Config::Path(dir) => Arc::new(LocalStore::open(&dir).await?),
            Config::Memory => Arc::new(LocalStore::memory()?),
        };
        Ok(store)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    bosun_store_plugin::serve_storage(Embedded).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        match parse_config(text) {
            Err(StoreError::InvalidArgument { field, .. }) => field,
            other => panic!("{text}: expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn configs_are_read_and_bad_ones_name_the_field() {
        assert_eq!(parse_config(r#"{"path": "/var/lib/x"}"#).unwrap(), Config::Path("/var/lib/x".into()));
        assert_eq!(parse_config(r#"{"memory": true}"#).unwrap(), Config::Memory);
        assert_eq!(field_of("not json"), "config");
        assert_eq!(field_of("[1]"), "config");
        assert_eq!(field_of("{}"), "config");
        assert_eq!(field_of(r#"{"path": 3}"#), "config.path");
        assert_eq!(field_of(r#"{"path": ""}"#), "config.path");
        assert_eq!(field_of(r#"{"memory": false}"#), "config.memory");
        assert_eq!(field_of(r#"{"path": "/x", "memory": true}"#), "config");
        assert_eq!(field_of(r#"{"path": "/x", "cache": 1}"#), "config.cache");
    }
}
