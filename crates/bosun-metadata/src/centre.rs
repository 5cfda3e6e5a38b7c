//! [`MetadataCentre`]: the operations behind the gRPC services, the CLI and the REST API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bosun_store::{Expect, Key, Lease, LeaseId, Op, Selector, Store, StoreError, StoreExt, Value};
use parking_lot::Mutex;

use crate::error::MetadataError;
use crate::keys::{self, LeaseHolder};

/// How the metadata centre holds entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataConfig {
    /// How long an entry lives without a publish or a heartbeat of its holder.
    pub ttl: Duration,
    /// Largest `metadata_info` or `service_definition`, in bytes.
    pub max_value_bytes: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(90), max_value_bytes: 1 << 20 }
    }
}

/// Stores metadata, definitions and mappings, each attached to its holder's lease.
pub struct MetadataCentre {
    store: Arc<dyn Store>,
    config: MetadataConfig,
    /// The last lease seen per lease key, to renew without reading the store first.
    leases: Mutex<HashMap<Key, LeaseId>>,
}

impl MetadataCentre {
    /// A centre over `store`.
    pub fn new(store: Arc<dyn Store>, config: MetadataConfig) -> Self {
        Self { store, config, leases: Mutex::new(HashMap::new()) }
    }

    /// The store the centre writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Its configuration.
    pub fn config(&self) -> MetadataConfig {
        self.config
    }

    /// Stores an application's metadata for a revision (overwriting) and renews its lease.
    pub async fn publish_metadata(
        &self,
        namespace: &str,
        application: &str,
        revision: &str,
        metadata_info: &str,
    ) -> Result<Lease, MetadataError> {
        let key = keys::metadata(namespace, application, revision)?;
        self.check_value("metadata_info", metadata_info)?;
        let holder = LeaseHolder::Application { namespace: namespace.to_owned(), application: application.to_owned() };
        self.put_held(&holder, vec![(key, metadata_info.to_owned())]).await
    }

    /// The metadata of one revision of an application.
    pub async fn get_metadata(
        &self,
        namespace: &str,
        application: &str,
        revision: &str,
    ) -> Result<String, MetadataError> {
        let key = keys::metadata(namespace, application, revision)?;
        self.get_string(&key).await?.ok_or_else(|| {
            MetadataError::NotFound(format!(
                "no metadata for application {application:?} revision {revision:?} in namespace {namespace:?}"
            ))
        })
    }

    /// Renews the lease of everything `application` published.
    pub async fn heartbeat(&self, namespace: &str, application: &str) -> Result<Lease, MetadataError> {
        let holder = LeaseHolder::Application { namespace: namespace.to_owned(), application: application.to_owned() };
        let lease_key = holder.key()?;
        match self.renew(&lease_key).await? {
            Some(lease) => Ok(lease),
            None => Err(MetadataError::NotFound(format!(
                "application {application:?} in namespace {namespace:?} holds no live lease: publish first"
            ))),
        }
    }

    /// Stores a service definition (overwriting), held by the application's lease when one is
    /// named, else by a lease of its own.
    pub async fn publish_definition(
        &self,
        identifier: &str,
        definition: &str,
        application: Option<(&str, &str)>,
    ) -> Result<Lease, MetadataError> {
        let key = keys::definition(identifier)?;
        self.check_value("service_definition", definition)?;
        let holder = match application {
            Some((namespace, application)) => {
                LeaseHolder::Application { namespace: namespace.to_owned(), application: application.to_owned() }
            }
            None => LeaseHolder::Definition(identifier.to_owned()),
        };
        self.put_held(&holder, vec![(key, definition.to_owned())]).await
    }

    /// A service definition.
    pub async fn get_definition(&self, identifier: &str) -> Result<String, MetadataError> {
        let key = keys::definition(identifier)?;
        self.get_string(&key)
            .await?
            .ok_or_else(|| MetadataError::NotFound(format!("no service definition {identifier:?}")))
    }

    /// Records that `application` serves each of `interfaces`, held by the application's lease.
    pub async fn register_mapping(
        &self,
        namespace: &str,
        application: &str,
        interfaces: &[String],
        interfaces_field: &str,
    ) -> Result<Lease, MetadataError> {
        if interfaces.is_empty() {
            return Err(MetadataError::invalid(interfaces_field, "must name at least one interface"));
        }
        // One transaction writes them all.
        let most = bosun_store::validate::MAX_TXN_OPS;
        if interfaces.len() > most {
            return Err(MetadataError::invalid(
                interfaces_field,
                format!("names {} interfaces; at most {most} per request", interfaces.len()),
            ));
        }
        let entries = interfaces
            .iter()
            .enumerate()
            .map(|(i, interface)| {
                keys::mapping(namespace, interface, application, &format!("{interfaces_field}[{i}]"))
                    .map(|key| (key, String::new()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let holder = LeaseHolder::Application { namespace: namespace.to_owned(), application: application.to_owned() };
        self.put_held(&holder, entries).await
    }

    /// The applications serving `interface`, sorted.
    pub async fn get_mapping(&self, namespace: &str, interface: &str) -> Result<Vec<String>, MetadataError> {
        let prefix = keys::mapping_prefix(namespace, interface)?;
        let page = self.store.list_all(&prefix, &Selector::default()).await?;
        let applications: Vec<String> = page
            .items
            .iter()
            .filter_map(|kv| keys::parse_mapping(&kv.key).map(|(_, _, application)| application.to_owned()))
            .collect();
        if applications.is_empty() {
            return Err(MetadataError::NotFound(format!(
                "no application serves {interface:?} in namespace {namespace:?}"
            )));
        }
        Ok(applications)
    }

    fn check_value(&self, field: &str, value: &str) -> Result<(), MetadataError> {
        keys::required(field, value)?;
        if value.len() > self.config.max_value_bytes {
            return Err(MetadataError::invalid(
                field,
                format!("is {} bytes, over the limit of {} bytes", value.len(), self.config.max_value_bytes),
            ));
        }
        Ok(())
    }

    async fn get_string(&self, key: &Key) -> Result<Option<String>, MetadataError> {
        let Some(kv) = self.store.get(key).await? else { return Ok(None) };
        String::from_utf8(kv.value.data.to_vec())
            .map(Some)
            .map_err(|_| MetadataError::Store(StoreError::Internal(format!("{key} does not hold UTF-8"))))
    }

    /// Writes `entries` attached to the holder's lease, renewed or granted first.
    async fn put_held(&self, holder: &LeaseHolder, entries: Vec<(Key, String)>) -> Result<Lease, MetadataError> {
        let lease_key = holder.key()?;
        // A lease may lapse between the renewal and the write; the store then refuses the write
        // and a new lease is granted.
        for _ in 0..3 {
            let lease = match self.renew(&lease_key).await? {
                Some(lease) => lease,
                None => self.grant(&lease_key).await?,
            };
            let ops = entries
                .iter()
                .map(|(key, data)| Op::put(key.clone(), Value::new(data.clone()).with_lease(lease.id)))
                .collect();
            match self.store.txn(ops).await {
                Ok(_) => return Ok(lease),
                Err(StoreError::LeaseNotFound(_)) => {
                    self.leases.lock().remove(&lease_key);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(MetadataError::Store(StoreError::Unavailable(format!(
            "the lease of {lease_key} kept lapsing while writing"
        ))))
    }

    /// Renews the lease recorded at `lease_key`; `None` when there is no live one.
    async fn renew(&self, lease_key: &Key) -> Result<Option<Lease>, MetadataError> {
        let cached = self.leases.lock().get(lease_key).copied();
        let id = match cached {
            Some(id) => Some(id),
            None => self.store.get(lease_key).await?.and_then(|kv| kv.value.lease),
        };
        let Some(id) = id else { return Ok(None) };
        match self.store.keep_alive(id).await {
            Ok(lease) => {
                self.leases.lock().insert(lease_key.clone(), id);
                Ok(Some(lease))
            }
            Err(StoreError::LeaseNotFound(_)) => {
                self.leases.lock().remove(lease_key);
                // The cached lease may be stale while the store records a newer one (granted by
                // another replica); look once more.
                if cached.is_some() {
                    return Box::pin(self.renew(lease_key)).await;
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Grants a lease and records it at `lease_key`, unless another writer recorded one first,
    /// which is then used.
    async fn grant(&self, lease_key: &Key) -> Result<Lease, MetadataError> {
        let lease = self.store.grant_lease(self.config.ttl).await?;
        let current = self.store.get(lease_key).await?;
        let expect = current.as_ref().map_or(Expect::Absent, |kv| Expect::ModRevision(kv.mod_revision));
        let value = Value::new(lease.id.0.to_string()).with_lease(lease.id);
        match self.store.put_if(lease_key.clone(), value, expect).await {
            Ok(_) => {
                self.leases.lock().insert(lease_key.clone(), lease.id);
                Ok(lease)
            }
            Err(StoreError::Conflict { .. }) => {
                self.store.revoke_lease(lease.id).await?;
                match self.renew(lease_key).await? {
                    Some(theirs) => Ok(theirs),
                    None => Err(MetadataError::Store(StoreError::Unavailable(format!(
                        "the lease recorded at {lease_key} changed while granting one"
                    )))),
                }
            }
            Err(e) => {
                let _ = self.store.revoke_lease(lease.id).await;
                Err(e.into())
            }
        }
    }
}
