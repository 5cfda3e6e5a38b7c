//! Snapshots: a consistent set of resources of every type, served to one group of nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use prost::Message;

use crate::resource::{Resource, TtlView, type_url};

/// The resources of one type in a snapshot, with their combined version and the encoded body
/// that every wildcard subscriber receives.
#[derive(Debug)]
pub struct TypeResources {
    type_url: Arc<str>,
    version: String,
    digest: u64,
    resources: BTreeMap<Arc<str>, Resource>,
    /// Every resource's `DiscoveryResponse.resources` entry, concatenated once.
    all_entries: Bytes,
    /// Every resource's `DeltaDiscoveryResponse.resources` entry, concatenated on first use.
    all_delta_entries: OnceLock<Bytes>,
    /// For a set of clusters: each EDS cluster's endpoints name, decoded on first use.
    eds_names: OnceLock<HashMap<Arc<str>, String>>,
    /// The resources with a TTL and the bodies for clients that support TTLs, built on first use.
    ttl_view: OnceLock<TtlView>,
    /// The digest of the set this one replaced in its group, and the names whose resource
    /// differs between the two (changed, added or removed): what a delta stream that had the
    /// previous set needs to look at.
    changes: Option<(u64, Vec<Arc<str>>)>,
    created: Instant,
}

impl TypeResources {
    /// Builds the set from `resources` (all of `type_url`; a later duplicate name replaces an
    /// earlier one).
    pub fn new(type_url: &str, resources: impl IntoIterator<Item = Resource>) -> Self {
        let resources: BTreeMap<Arc<str>, Resource> =
            resources.into_iter().map(|r| (r.name_arc().clone(), r)).collect();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut body = BytesMut::with_capacity(resources.values().map(|r| r.sotw_entry().len()).sum());
        for (name, r) in &resources {
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            hasher.update(r.version().as_bytes());
            hasher.update(&[0]);
            body.extend_from_slice(r.sotw_entry());
        }
        let digest = if resources.is_empty() { 0 } else { hasher.digest() };
        let version = if resources.is_empty() { String::from("empty") } else { format!("{digest:016x}") };
        Self {
            type_url: type_url.into(),
            version,
            digest,
            resources,
            all_entries: body.freeze(),
            all_delta_entries: OnceLock::new(),
            eds_names: OnceLock::new(),
            ttl_view: OnceLock::new(),
            changes: None,
            created: Instant::now(),
        }
    }

    /// The type URL.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// A version derived from the names and contents of all resources of this type.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resource named `name`.
    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.resources.get(name)
    }

    /// All resources, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    /// The resources whose name starts with `prefix`, ordered by name.
    pub(crate) fn with_prefix<'a, 'p>(&'a self, prefix: &'p str) -> impl Iterator<Item = &'a Resource> + use<'a, 'p> {
        self.resources
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(name, _)| name.starts_with(prefix))
            .map(|(_, r)| r)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether there are no resources of this type.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// When this set was built (for push-latency measurements).
    pub fn created(&self) -> Instant {
        self.created
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    pub(crate) fn all_entries(&self) -> &Bytes {
        &self.all_entries
    }

    /// The resources with a TTL and the bodies for clients that support TTLs (built once).
    pub(crate) fn ttl_view(&self) -> &TtlView {
        self.ttl_view.get_or_init(|| TtlView::new(self.resources.values()))
    }

    /// The names whose resource differs from the set with digest `previous`, if this set is
    /// known to have replaced that one.
    pub(crate) fn changed_since(&self, previous: u64) -> Option<&[Arc<str>]> {
        match &self.changes {
            Some((digest, names)) if *digest == previous => Some(names),
            _ => None,
        }
    }

    /// Records that this set replaces `old`, with the names that differ.
    fn record_changes_from(&mut self, old: &TypeResources) {
        let mut names: Vec<Arc<str>> = self
            .resources
            .iter()
            .filter(|(name, r)| old.get(name).map(Resource::name_version_digest) != Some(r.name_version_digest()))
            .map(|(name, _)| name.clone())
            .collect();
        names.extend(old.resources.keys().filter(|name| !self.resources.contains_key(*name)).cloned());
        self.changes = Some((old.digest, names));
    }

    /// For a set of clusters: the name of the endpoints (EDS) the cluster `name` uses, if it is an
    /// EDS cluster. The clusters are decoded once per set, on first use.
    pub(crate) fn eds_service_of(&self, name: &str) -> Option<&str> {
        let names = self.eds_names.get_or_init(|| {
            self.resources
                .iter()
                .filter_map(|(name, r)| {
                    let cluster: Cluster = r.decode().ok()?;
                    eds_service_name(&cluster).map(|service| (name.clone(), service.to_owned()))
                })
                .collect()
        });
        names.get(name).map(String::as_str)
    }

    /// What a delta client that holds none of these resources receives: every resource's delta
    /// entry, built once for all streams.
    pub(crate) fn all_delta_entries(&self) -> &Bytes {
        self.all_delta_entries.get_or_init(|| {
            let mut body = BytesMut::with_capacity(self.resources.values().map(|r| r.delta_entry().len()).sum());
            for r in self.resources.values() {
                body.extend_from_slice(r.delta_entry());
            }
            body.freeze()
        })
    }
}

/// A consistent set of resources for a group of nodes. Cheap to share: every type's resources
/// sit behind an `Arc`, and a type whose content did not change keeps its version.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    types: BTreeMap<String, Arc<TypeResources>>,
    /// `check_consistency` passed on this content (clones keep it: the content is shared).
    consistent: bool,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// A cluster or listener references a resource that is not in the snapshot.
    #[error("inconsistent snapshot: {}", .0.join("; "))]
    Inconsistent(Vec<String>),
    /// A resource could not be decoded for the consistency check.
    #[error("{type_url} {name:?} cannot be decoded: {reason}")]
    Undecodable {
        /// The resource's type URL.
        type_url: String,
        /// The resource's name.
        name: String,
        /// The decoder's message.
        reason: String,
    },
}

impl Snapshot {
    /// A snapshot of `resources` (of any types, grouped by type URL).
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut by_type: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
        for r in resources {
            by_type.entry(r.type_url().to_owned()).or_default().push(r);
        }
        let types = by_type
            .into_iter()
            .map(|(url, rs)| {
                let set = Arc::new(TypeResources::new(&url, rs));
                (url, set)
            })
            .collect();
        Self { types, consistent: false }
    }

    /// The resources of `type_url`, if the snapshot has any.
    pub fn resources(&self, type_url: &str) -> Option<&Arc<TypeResources>> {
        self.types.get(type_url)
    }

    /// The version of `type_url` in this snapshot (`"empty"` for a type with no resources).
    pub fn version(&self, type_url: &str) -> &str {
        self.types.get(type_url).map_or("empty", |t| t.version())
    }

    /// The type URLs that have resources.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Total number of resources of all types.
    pub fn len(&self) -> usize {
        self.types.values().map(|t| t.len()).sum()
    }

    /// Whether the snapshot holds no resource.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Reuses `previous`'s per-type sets where the content is the same, so unchanged types keep
    /// their identity (and their already-built bodies) across snapshot versions.
    pub(crate) fn reuse_unchanged(&mut self, previous: &Snapshot) {
        for (url, set) in self.types.iter_mut() {
            let Some(old) = previous.types.get(url) else { continue };
            if old.version == set.version {
                *set = old.clone();
            } else if let Some(set) = Arc::get_mut(set) {
                set.record_changes_from(old);
            }
        }
    }

    /// Checks that every EDS cluster's endpoints and every RDS route configuration a listener
    /// names are in the snapshot. The error lists every missing reference. The result is
    /// remembered, so a checked snapshot set for many groups is checked once.
    pub fn check_consistency(&mut self) -> Result<(), SnapshotError> {
        if self.consistent {
            return Ok(());
        }
        let mut missing = Vec::new();
        if let Some(clusters) = self.types.get(type_url::CLUSTER) {
            for r in clusters.iter() {
                let cluster: Cluster = decode(r)?;
                let Some(service) = eds_service_name(&cluster) else { continue };
                if self.resources(type_url::ENDPOINT).and_then(|t| t.get(service)).is_none() {
                    missing.push(format!("cluster {:?} uses EDS endpoints {service:?}, which are missing", r.name()));
                }
            }
        }
        if let Some(listeners) = self.types.get(type_url::LISTENER) {
            for r in listeners.iter() {
                let listener: Listener = decode(r)?;
                for route in rds_names(&listener).map_err(|reason| SnapshotError::Undecodable {
                    type_url: type_url::LISTENER.into(),
                    name: r.name().into(),
                    reason,
                })? {
                    if self.resources(type_url::ROUTE).and_then(|t| t.get(&route)).is_none() {
                        missing.push(format!(
                            "listener {:?} uses RDS route configuration {route:?}, which is missing",
                            r.name()
                        ));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(SnapshotError::Inconsistent(missing));
        }
        self.consistent = true;
        Ok(())
    }
}

fn decode<M: Message + Default>(r: &Resource) -> Result<M, SnapshotError> {
    r.decode().map_err(|e| SnapshotError::Undecodable {
        type_url: r.type_url().into(),
        name: r.name().into(),
        reason: e.to_string(),
    })
}

/// The EDS service name a cluster subscribes to, if it is an EDS cluster.
pub fn eds_service_name(cluster: &Cluster) -> Option<&str> {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => {
            let service = cluster.eds_cluster_config.as_ref().map(|c| c.service_name.as_str()).unwrap_or("");
            Some(if service.is_empty() { &cluster.name } else { service })
        }
        _ => None,
    }
}

const HCM_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The RDS route configuration names a listener's HTTP connection managers subscribe to.
pub fn rds_names(listener: &Listener) -> Result<BTreeSet<String>, String> {
    let chains = listener.filter_chains.iter().chain(listener.default_filter_chain.iter());
    let mut hcms: Vec<&[u8]> = Vec::new();
    for f in chains.flat_map(|c| c.filters.iter()) {
        if let Some(bytes) = hcm_bytes(f) {
            hcms.push(bytes);
        }
    }
    if let Some(api) =
        listener.api_listener.as_ref().and_then(|a| a.api_listener.as_ref()).filter(|a| a.type_url == HCM_TYPE_URL)
    {
        hcms.push(&api.value);
    }
    let mut names = BTreeSet::new();
    for bytes in hcms {
        let hcm = HttpConnectionManager::decode(bytes).map_err(|e| format!("HttpConnectionManager: {e}"))?;
        if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
            names.insert(rds.route_config_name);
        }
    }
    Ok(names)
}

fn hcm_bytes(f: &Filter) -> Option<&[u8]> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if any.type_url == HCM_TYPE_URL => Some(&any.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

    fn eds_cluster(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig::default()),
            ..Default::default()
        }
    }

    #[test]
    fn missing_endpoints_are_named() {
        let mut snap = Snapshot::new([Resource::new(&eds_cluster("a")), Resource::new(&eds_cluster("b"))]);
        let err = snap.check_consistency().expect_err("inconsistent");
        let text = err.to_string();
        assert!(text.contains("\"a\"") && text.contains("\"b\""), "{text}");
        let mut ok = Snapshot::new([
            Resource::new(&eds_cluster("a")),
            Resource::new(&ClusterLoadAssignment { cluster_name: "a".into(), ..Default::default() }),
        ]);
        ok.check_consistency().expect("consistent");
    }

    #[test]
    fn type_version_is_content_derived_and_order_free() {
        let a = Resource::new(&eds_cluster("a"));
        let b = Resource::new(&eds_cluster("b"));
        let s1 = Snapshot::new([a.clone(), b.clone()]);
        let s2 = Snapshot::new([b, a]);
        assert_eq!(s1.version(type_url::CLUSTER), s2.version(type_url::CLUSTER));
        assert_eq!(s1.version(type_url::LISTENER), "empty");
    }
}
