//! Opens the store `bosun serve` was told to use (`--store`).

use std::path::Path;
use std::sync::Arc;

use bosun_store_plugin::{PluginStore, PluginStoreOptions};

use anyhow::Context;
use bosun_store::{LocalStore, Store};
use bosun_store_etcd::{EtcdOptions, EtcdStore};
use bosun_store_postgres::{PostgresOptions, PostgresStore};

use crate::config::{PluginSpec, StoreConfig};

/// Opens (or connects to) the configured store. A storage plugin is one of `plugins`, built
/// under `build_dir` when given as source; it is returned too, for `bosun plugins`.
pub async fn open(
    config: &StoreConfig,
    plugins: &[PluginSpec],
    build_dir: &Path,
) -> anyhow::Result<(Arc<dyn Store>, Option<(PluginSpec, Arc<PluginStore>)>)> {
    let store: Arc<dyn Store> = match config {
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
        StoreConfig::Plugin { name } => {
            let (store, plugin) = open_plugin(name, plugins, build_dir).await?;
            return Ok((store, Some(plugin)));
        }
    };
    Ok((store, None))
}

/// Starts the storage plugin `name` and configures it.
async fn open_plugin(
    name: &str,
    plugins: &[PluginSpec],
    build_dir: &Path,
) -> anyhow::Result<(Arc<dyn Store>, (PluginSpec, Arc<PluginStore>))> {
    let spec = plugins
        .iter()
        .find(|p| p.base_name() == name)
        .with_context(|| format!("--store plugin:{name}: no such plugin"))?;
    let launch = spec.launch_config();
    let options = PluginStoreOptions {
        executable: crate::plugins::host_options(spec, build_dir).executable,
        ..PluginStoreOptions::default()
    };
    let store = PluginStore::start_with(launch, spec.config_json(), options)
        .await
        .with_context(|| format!("storage plugin {} ({})", spec.name, spec.path.display()))?;
    let store = Arc::new(store);
    Ok((store.clone(), (spec.clone(), store)))
}
