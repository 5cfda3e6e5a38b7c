//! Opens the store `bosun serve` was told to use (`--store`).

use std::sync::Arc;

use anyhow::Context;
use bosun_store::{LocalStore, Store};
use bosun_store_etcd::{EtcdOptions, EtcdStore};
use bosun_store_postgres::{PostgresOptions, PostgresStore};

use crate::config::StoreConfig;

/// Opens (or connects to) the configured store.
pub async fn open(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Memory => Arc::new(LocalStore::memory().context("in-memory store")?),
        StoreConfig::Embedded { data_dir } => Arc::new(
            LocalStore::open(data_dir).await.with_context(|| format!("embedded store in {}", data_dir.display()))?,
        ),
        StoreConfig::Etcd { endpoints, prefix } => {
            let mut options = EtcdOptions::default();
            if let Some(prefix) = prefix {
                options.prefix = prefix.clone();
            }
            Arc::new(
                EtcdStore::connect(endpoints, options)
                    .await
                    .with_context(|| format!("etcd store at {}", endpoints.join(",")))?,
            )
        }
        StoreConfig::Postgres { url } => Arc::new(
            PostgresStore::connect(url, PostgresOptions::default())
                .await
                .context("PostgreSQL store (--store postgres://...)")?,
        ),
    })
}
