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
use imbl::OrdMap;
use prost::Message;

use crate::resource::{Resource, TtlView, type_url};

/// The resources of one type, with their combined version, the encoded bodies every wildcard
/// subscriber receives, and what changed from the set this one replaced.
///
/// A set made from another by changing a few resources (as a [`crate::cache::LinearCache`]
/// does) keeps them in a persistent ordered map and shares the untouched ones with the set it
/// came from: making it costs O(changed · log N), not O(N). A set built whole (as a snapshot's)
/// keeps them in a B-tree, which is faster to build and to look up. The version is derived from an order-free sum of per-resource
/// digests, updated by subtracting a replaced resource's digest and adding its replacement's;
/// it depends only on the content, so the same resources give the same version in any process.
/// The concatenated bodies are built on first use.
#[derive(Debug)]
pub struct TypeResources {
    type_url: Arc<str>,
    version: String,
    digest: u64,
    /// Wrapping sum of every resource's name-and-version digest.
    digest_sum: u64,
    resources: Entries,
    /// Every resource's `DiscoveryResponse.resources` entry, concatenated on first use.
    all_entries: OnceLock<Bytes>,
    /// Every resource's `DeltaDiscoveryResponse.resources` entry, concatenated on first use.
    all_delta_entries: OnceLock<Bytes>,
    /// For a set of clusters: each EDS cluster's endpoints name, decoded on first use.
    eds_names: OnceLock<HashMap<Arc<str>, String>>,
    /// The resources with a TTL and the bodies for clients that support TTLs, built on first use.
    ttl_view: OnceLock<TtlView>,
    /// The names that differ from each of the last few sets of this type that this one
    /// (directly or through its predecessors) replaced, newest first: what a stream that had
    /// one of those sets needs to look at.
    changes: Vec<Changes>,
    created: Instant,
}

/// The names (sorted, changed, added or removed) that differ between a set and the earlier
/// set whose digest is `from`.
#[derive(Debug)]
struct Changes {
    from: u64,
    names: Vec<Arc<str>>,
}

/// How many earlier sets a set remembers its changes from: a stream that skipped a few sets
/// (it was waiting for an ACK while several updates came) still looks only at what changed.
const CHANGE_HISTORY: usize = 4;

impl TypeResources {
    /// Builds the set from `resources` (all of `type_url`; a later duplicate name replaces an
    /// earlier one).
    pub fn new(type_url: &str, resources: impl IntoIterator<Item = Resource>) -> Self {
        let map: BTreeMap<Arc<str>, Resource> = resources.into_iter().map(|r| (r.name_arc().clone(), r)).collect();
        let digest_sum = map.values().fold(0u64, |sum, r| sum.wrapping_add(r.name_version_digest()));
        Self::from_parts(type_url.into(), Entries::Built(map), digest_sum, Vec::new())
    }

    /// Like [`Self::new`], but in the persistent map that [`Self::updated`] changes in place of
    /// copying: for sets that will be changed a resource at a time.
    pub(crate) fn new_persistent(type_url: &str, resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut map = OrdMap::new();
        let mut digest_sum = 0u64;
        for r in resources {
            let digest = r.name_version_digest();
            if let Some(old) = map.insert(r.name_arc().clone(), r) {
                digest_sum = digest_sum.wrapping_sub(old.name_version_digest());
            }
            digest_sum = digest_sum.wrapping_add(digest);
        }
        Self::from_parts(type_url.into(), Entries::Persistent(map), digest_sum, Vec::new())
    }

    fn from_parts(type_url: Arc<str>, resources: Entries, digest_sum: u64, changes: Vec<Changes>) -> Self {
        let digest = set_digest(digest_sum, resources.len());
        let version = if resources.len() == 0 { String::from("empty") } else { format!("{digest:016x}") };
        Self {
            type_url,
            version,
            digest,
            digest_sum,
            resources,
            all_entries: OnceLock::new(),
            all_delta_entries: OnceLock::new(),
            eds_names: OnceLock::new(),
            ttl_view: OnceLock::new(),
            changes,
            created: Instant::now(),
        }
    }

    /// The set made from this one by adding or replacing `upserts` and then removing
    /// `deletes`, sharing every untouched resource with this one; `None` if that changes no
    /// resource's content (then nobody needs waking). The new set records which names changed.
    /// Costs O(changed · log N).
    pub(crate) fn updated<'a>(
        &self,
        upserts: impl IntoIterator<Item = Resource>,
        deletes: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let mut resources = self.resources.to_persistent();
        let mut digest_sum = self.digest_sum;
        let mut touched: Vec<Arc<str>> = Vec::new();
        for r in upserts {
            let name = r.name_arc().clone();
            let digest = r.name_version_digest();
            match resources.insert(name.clone(), r) {
                // The same content: keep the resource already there (and its encodings).
                Some(old) if old.name_version_digest() == digest => {
                    resources.insert(name, old);
                }
                Some(old) => {
                    digest_sum = digest_sum.wrapping_sub(old.name_version_digest()).wrapping_add(digest);
                    touched.push(name);
                }
                None => {
                    digest_sum = digest_sum.wrapping_add(digest);
                    touched.push(name);
                }
            }
        }
        for name in deletes {
            if let Some(old) = resources.remove(name) {
                digest_sum = digest_sum.wrapping_sub(old.name_version_digest());
                touched.push(old.name_arc().clone());
            }
        }
        touched.sort_unstable();
        touched.dedup();
        // A name replaced and then deleted (or replaced twice, back to what it was) may end
        // where it started.
        touched.retain(|name| {
            self.resources.get(name).map(Resource::name_version_digest)
                != resources.get(name).map(Resource::name_version_digest)
        });
        if touched.is_empty() {
            return None;
        }
        let changes = self.history_with(touched, resources.len());
        Some(Self::from_parts(self.type_url.clone(), Entries::Persistent(resources), digest_sum, changes))
    }

    /// The change history of a set that replaces this one and differs from it in `names`
    /// (sorted): `names` relative to this set, and their union with each change this set
    /// recorded, while such a union stays smaller than half the new set (beyond that a full
    /// comparison costs as much).
    fn history_with(&self, names: Vec<Arc<str>>, new_len: usize) -> Vec<Changes> {
        let mut history = Vec::with_capacity(CHANGE_HISTORY);
        for earlier in self.changes.iter().take(CHANGE_HISTORY - 1) {
            let merged = merge_sorted(&earlier.names, &names);
            if merged.len() * 2 > new_len.max(64) {
                break;
            }
            history.push(Changes { from: earlier.from, names: merged });
        }
        history.insert(0, Changes { from: self.digest, names });
        history
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
        self.resources.iter().map(|(_, r)| r)
    }

    /// The resources whose name starts with `prefix`, ordered by name.
    pub(crate) fn with_prefix<'a, 'p>(&'a self, prefix: &'p str) -> impl Iterator<Item = &'a Resource> + use<'a, 'p> {
        self.resources.from(prefix).take_while(move |(name, _)| name.starts_with(prefix)).map(|(_, r)| r)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether there are no resources of this type.
    pub fn is_empty(&self) -> bool {
        self.resources.len() == 0
    }

    /// When this set was built (for push-latency measurements).
    pub fn created(&self) -> Instant {
        self.created
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// Every resource's `DiscoveryResponse.resources` entry, concatenated on first use and
    /// shared by every stream afterwards.
    pub(crate) fn all_entries(&self) -> &Bytes {
        self.all_entries.get_or_init(|| self.concat(Resource::sotw_entry))
    }

    /// The resources with a TTL and the bodies for clients that support TTLs (built once).
    pub(crate) fn ttl_view(&self) -> &TtlView {
        self.ttl_view.get_or_init(|| TtlView::new(self.resources.iter().map(|(_, r)| r)))
    }

    /// The names whose resource differs from the set with digest `previous`, if this set is
    /// known to have replaced that one (directly or through a few sets in between).
    pub(crate) fn changed_since(&self, previous: u64) -> Option<&[Arc<str>]> {
        self.changes.iter().find(|c| c.from == previous).map(|c| c.names.as_slice())
    }

    /// The set of `resources`, recorded as replacing `old` (of the same type); `None` if it has
    /// the same content as `old`. O(N).
    pub(crate) fn replacing(old: &TypeResources, resources: impl IntoIterator<Item = Resource>) -> Option<Self> {
        let mut set = Self::new_persistent(&old.type_url, resources);
        if set.digest == old.digest {
            return None;
        }
        set.record_changes_from(old);
        Some(set)
    }

    /// Records that this set replaces `old`, with the names that differ (O(N): for sets built
    /// whole, as snapshots are).
    fn record_changes_from(&mut self, old: &TypeResources) {
        // Both sets are ordered by name: walk them side by side, no lookups.
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut new_entries = self.resources.iter().peekable();
        let mut old_entries = old.resources.iter().peekable();
        loop {
            let order = match (new_entries.peek(), old_entries.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((new_name, _)), Some((old_name, _))) => new_name.cmp(old_name),
            };
            match order {
                std::cmp::Ordering::Less => names.extend(new_entries.next().map(|(name, _)| name.clone())),
                std::cmp::Ordering::Greater => names.extend(old_entries.next().map(|(name, _)| name.clone())),
                std::cmp::Ordering::Equal => {
                    if let (Some((name, r)), Some((_, was))) = (new_entries.next(), old_entries.next())
                        && r.name_version_digest() != was.name_version_digest()
                    {
                        names.push(name.clone());
                    }
                }
            }
        }
        self.changes = old.history_with(names, self.len());
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

    /// Every resource's `entry`, concatenated in name order.
    fn concat(&self, entry: impl Fn(&Resource) -> &Bytes) -> Bytes {
        let mut body = BytesMut::with_capacity(self.iter().map(|r| entry(r).len()).sum());
        for r in self.iter() {
            body.extend_from_slice(entry(r));
        }
        body.freeze()
    }

    /// What a delta client that holds none of these resources receives: every resource's delta
    /// entry, built once for all streams.
    pub(crate) fn all_delta_entries(&self) -> &Bytes {
        self.all_delta_entries.get_or_init(|| self.concat(Resource::delta_entry))
    }
}

/// A set's resources by name: a B-tree for sets built whole (the fastest to build and to look
/// up), a persistent map for sets made by changing another (a change copies O(log N) of it and
/// shares the rest).
#[derive(Debug)]
enum Entries {
    Built(BTreeMap<Arc<str>, Resource>),
    Persistent(OrdMap<Arc<str>, Resource>),
}

impl Entries {
    fn get(&self, name: &str) -> Option<&Resource> {
        match self {
            Entries::Built(map) => map.get(name),
            Entries::Persistent(map) => map.get(name),
        }
    }

    fn len(&self) -> usize {
        match self {
            Entries::Built(map) => map.len(),
            Entries::Persistent(map) => map.len(),
        }
    }

    /// The entries, ordered by name.
    fn iter(&self) -> Box<dyn Iterator<Item = (&Arc<str>, &Resource)> + '_> {
        match self {
            Entries::Built(map) => Box::new(map.iter()),
            Entries::Persistent(map) => Box::new(map.iter()),
        }
    }

    /// The entries from `first` on, ordered by name.
    fn from<'a>(&'a self, first: &str) -> Box<dyn Iterator<Item = (&'a Arc<str>, &'a Resource)> + 'a> {
        let bounds = (std::ops::Bound::Included(first), std::ops::Bound::Unbounded);
        match self {
            Entries::Built(map) => Box::new(map.range::<str, _>(bounds)),
            Entries::Persistent(map) => Box::new(map.range::<_, str>(bounds)),
        }
    }

    /// The entries as a persistent map to change: shared when they are one already, built
    /// (once, O(N)) when the set was built whole.
    fn to_persistent(&self) -> OrdMap<Arc<str>, Resource> {
        match self {
            Entries::Built(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Entries::Persistent(map) => map.clone(),
        }
    }
}

/// The digest of a set from the sum of its resources' digests and their number (0 when empty).
fn set_digest(digest_sum: u64, len: usize) -> u64 {
    if len == 0 { 0 } else { xxhash_rust::xxh3::xxh3_64_with_seed(&digest_sum.to_le_bytes(), len as u64) }
}

/// The union of two sorted, duplicate-free name lists, sorted.
fn merge_sorted(a: &[Arc<str>], b: &[Arc<str>]) -> Vec<Arc<str>> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                merged.push(a[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                merged.push(b[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                merged.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

/// A consistent set of resources for a group of nodes. Cheap to share: every type's resources
/// sit behind an `Arc`, and a type whose content did not change keeps its version.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    types: BTreeMap<String, Arc<TypeResources>>,
    /// The consistency check passed on this content, skipping the references into these types
    /// (clones keep it: the content is shared).
    consistent: Option<SkippedReferences>,
}

/// Which references the consistency check skipped, because another cache serves their type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SkippedReferences {
    endpoints: bool,
    routes: bool,
}

impl SkippedReferences {
    /// Whether a check that skipped `self` covers one that skips `other`.
    fn within(self, other: SkippedReferences) -> bool {
        (!self.endpoints || other.endpoints) && (!self.routes || other.routes)
    }
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
        Self { types, consistent: None }
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
            if old.digest == set.digest {
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
        self.check_consistency_except(|_| false)
    }

    /// [`Self::check_consistency`], except that references into the types for which
    /// `served_elsewhere` is true are not checked: those types come from another cache (a
    /// [`crate::cache::LinearCache`] behind a [`crate::cache::MuxCache`], say), so this
    /// snapshot's resources of them, if any, are not what clients receive.
    pub fn check_consistency_except(&mut self, served_elsewhere: impl Fn(&str) -> bool) -> Result<(), SnapshotError> {
        let skipped = SkippedReferences {
            endpoints: served_elsewhere(type_url::ENDPOINT),
            routes: served_elsewhere(type_url::ROUTE),
        };
        if self.consistent.is_some_and(|checked| checked.within(skipped)) {
            return Ok(());
        }
        let mut missing = Vec::new();
        if let Some(clusters) = self.types.get(type_url::CLUSTER).filter(|_| !skipped.endpoints) {
            for r in clusters.iter() {
                let cluster: Cluster = decode(r)?;
                let Some(service) = eds_service_name(&cluster) else { continue };
                if self.resources(type_url::ENDPOINT).and_then(|t| t.get(service)).is_none() {
                    missing.push(format!("cluster {:?} uses EDS endpoints {service:?}, which are missing", r.name()));
                }
            }
        }
        if let Some(listeners) = self.types.get(type_url::LISTENER).filter(|_| !skipped.routes) {
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
        self.consistent = Some(skipped);
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
    fn a_set_built_whole_can_be_changed_a_resource_at_a_time() {
        let cluster = |name: &str, stat: &str| {
            Resource::new(&Cluster { name: name.into(), alt_stat_name: stat.into(), ..Default::default() })
        };
        let built = TypeResources::new(type_url::CLUSTER, [cluster("a", ""), cluster("b", ""), cluster("c", "")]);
        let changed = built.updated([cluster("b", "2"), cluster("d", "")], ["a"]).expect("changed");
        let expected = TypeResources::new(type_url::CLUSTER, [cluster("b", "2"), cluster("c", ""), cluster("d", "")]);
        assert_eq!(changed.version(), expected.version());
        let names: Vec<&str> = changed.iter().map(Resource::name).collect();
        assert_eq!(names, ["b", "c", "d"]);
        let since: Vec<&str> = changed.changed_since(built.digest()).expect("recorded").iter().map(|n| &**n).collect();
        assert_eq!(since, ["a", "b", "d"]);
        assert!(built.updated([cluster("c", "")], []).is_none(), "the same content is no change");
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
