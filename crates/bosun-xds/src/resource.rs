//! Resources: a named, versioned, already-encoded xDS resource, and the Envoy type URLs.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, ScopedRouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::runtime::v3::Runtime;
use prost::Message;

use crate::codec::{len_field_size, put_len_field};
use crate::snapshot::TypeResources;

/// Type URLs of the Envoy v3 resource types.
pub mod type_url {
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    /// `envoy.config.listener.v3.Listener` (LDS).
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// `envoy.config.route.v3.ScopedRouteConfiguration` (SRDS).
    pub const SCOPED_ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration";
    /// `envoy.config.route.v3.VirtualHost` (VHDS).
    pub const VIRTUAL_HOST: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    /// `envoy.service.runtime.v3.Runtime` (RTDS).
    pub const RUNTIME: &str = "type.googleapis.com/envoy.service.runtime.v3.Runtime";
    /// `envoy.config.core.v3.TypedExtensionConfig` (ECDS).
    pub const EXTENSION_CONFIG: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
    /// `envoy.service.discovery.v3.Resource`: the wrapper that carries a resource with its name,
    /// version and TTL (in a State-of-the-World response, for clients that unwrap it).
    pub const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";
}

/// The longest TTL a `google.protobuf.Duration` can carry (10,000 years, in seconds).
const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

/// The order in which types that change together are pushed: make before break (clusters,
/// then their endpoints, then listeners, then their routes, then the rest).
pub(crate) fn push_priority(type_url: &str) -> u8 {
    match type_url {
        type_url::CLUSTER => 0,
        type_url::ENDPOINT => 1,
        type_url::LISTENER => 2,
        type_url::ROUTE => 3,
        _ => 4,
    }
}

/// A protobuf message that is an xDS resource: it has a type URL and a name.
pub trait XdsResource: Message {
    /// The resource's type URL.
    const TYPE_URL: &'static str;
    /// The resource's name, as clients subscribe to it.
    fn resource_name(&self) -> &str;
}

macro_rules! xds_resource {
    ($ty:ty, $url:expr, $field:ident) => {
        impl XdsResource for $ty {
            const TYPE_URL: &'static str = $url;
            fn resource_name(&self) -> &str {
                &self.$field
            }
        }
    };
}

xds_resource!(Cluster, type_url::CLUSTER, name);
xds_resource!(ClusterLoadAssignment, type_url::ENDPOINT, cluster_name);
xds_resource!(Listener, type_url::LISTENER, name);
xds_resource!(RouteConfiguration, type_url::ROUTE, name);
xds_resource!(ScopedRouteConfiguration, type_url::SCOPED_ROUTE, name);
xds_resource!(VirtualHost, type_url::VIRTUAL_HOST, name);
xds_resource!(Secret, type_url::SECRET, name);
xds_resource!(Runtime, type_url::RUNTIME, name);
xds_resource!(TypedExtensionConfig, type_url::EXTENSION_CONFIG, name);

/// One xDS resource: its type, name, content version, optional TTL and bytes, encoded once.
///
/// Cloning is a reference-count increment. The version is a hash of the encoded content (and of
/// the TTL, when there is one), so the same content gives the same version in every process and
/// after every restart, and a change of TTL is a change that is pushed.
///
/// A resource with a TTL ([`Resource::with_ttl`]) is sent to clients that support TTLs inside an
/// `envoy.service.discovery.v3.Resource` carrying the TTL; such a client drops the resource when
/// the TTL passes without the server sending it again or sending a heartbeat for it. Every
/// variant (plain, wrapped, heartbeat) is encoded on first use and shared by every stream.
#[derive(Clone)]
pub struct Resource(Arc<Inner>);

struct Inner {
    type_url: Arc<str>,
    name: Arc<str>,
    version: Box<str>,
    /// Hash of the encoded message alone.
    content_hash: u64,
    ttl: Option<Duration>,
    /// Hash of name and version, for order-free digests of a set of resources.
    name_version_digest: u64,
    value: Bytes,
    /// `DiscoveryResponse.resources` entry: field 2, a `google.protobuf.Any`.
    sotw_entry: Bytes,
    /// `DeltaDiscoveryResponse.resources` entry: field 2, an `envoy.service.discovery.v3.Resource`
    /// (name, version, `Any`). Built by the first delta stream that sends this version.
    delta_entry: OnceLock<Bytes>,
    /// With a TTL: the encodings for clients that support TTLs, built on first use.
    ttl_entries: TtlEntries,
}

/// The encodings of a resource with a TTL for clients that support TTLs.
#[derive(Default)]
struct TtlEntries {
    /// `DiscoveryResponse.resources` entry: an `Any` of type [`type_url::RESOURCE_WRAPPER`]
    /// holding name, version, the resource and its TTL.
    sotw: OnceLock<Bytes>,
    /// `DeltaDiscoveryResponse.resources` entry with the TTL.
    delta: OnceLock<Bytes>,
    /// `DeltaDiscoveryResponse.resources` entry of a heartbeat: name, version and TTL, no body.
    delta_heartbeat: OnceLock<Bytes>,
}

impl Resource {
    /// A resource of `type_url` named `name` whose message encodes to `value`; its version is a
    /// hash of `value`.
    pub fn from_encoded(type_url: impl Into<Arc<str>>, name: impl Into<Arc<str>>, value: Bytes) -> Self {
        let content = xxhash_rust::xxh3::xxh3_64(&value);
        Self::with_content_hash(type_url, name, value, content)
    }

    /// A resource whose version is `content_hash` rather than a hash of `value`: for encoders
    /// whose bytes are not deterministic (map fields encoded in hash order), the caller hashes a
    /// canonical form of the content instead, so the same content keeps the same version.
    pub fn with_content_hash(
        type_url: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        value: Bytes,
        content_hash: u64,
    ) -> Self {
        Self::build(type_url.into(), name.into(), value, content_hash, None)
    }

    fn build(type_url: Arc<str>, name: Arc<str>, value: Bytes, content_hash: u64, ttl: Option<Duration>) -> Self {
        let version_hash = match ttl {
            None => content_hash,
            Some(ttl) => xxhash_rust::xxh3::xxh3_64_with_seed(&ttl.as_nanos().to_le_bytes(), content_hash),
        };
        let version = format!("{version_hash:016x}").into_boxed_str();
        let name_version_digest = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), version_hash);
        let any_len = len_field_size(1, type_url.len()) + len_field_size(2, value.len());
        let mut entry = BytesMut::with_capacity(len_field_size(2, any_len));
        prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut entry);
        prost::encoding::encode_varint(any_len as u64, &mut entry);
        put_len_field(&mut entry, 1, type_url.as_bytes());
        put_len_field(&mut entry, 2, &value);
        Self(Arc::new(Inner {
            type_url,
            name,
            version,
            content_hash,
            ttl,
            name_version_digest,
            value,
            sotw_entry: entry.freeze(),
            delta_entry: OnceLock::new(),
            ttl_entries: TtlEntries::default(),
        }))
    }

    /// This resource with a time to live of `ttl` (`None`: without one). Clients that support
    /// TTLs drop the resource when `ttl` passes without the server sending it again or sending
    /// a heartbeat for it (see [`crate::XdsServerBuilder::heartbeat_interval`]). The version
    /// changes with the TTL, so a new TTL is pushed like new content.
    pub fn with_ttl(self, ttl: Option<Duration>) -> Self {
        let inner = &self.0;
        // A `google.protobuf.Duration` holds at most 10,000 years.
        let ttl = ttl.map(|t| t.min(Duration::from_secs(MAX_DURATION_SECONDS)));
        if inner.ttl == ttl {
            return self;
        }
        Self::build(inner.type_url.clone(), inner.name.clone(), inner.value.clone(), inner.content_hash, ttl)
    }

    /// Encodes a typed Envoy resource.
    pub fn new<M: XdsResource>(message: &M) -> Self {
        Self::from_encoded(M::TYPE_URL, message.resource_name(), Bytes::from(message.encode_to_vec()))
    }

    /// The type URL.
    pub fn type_url(&self) -> &str {
        &self.0.type_url
    }

    /// The name clients subscribe to.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.0.name
    }

    /// The content version (a hash of the encoded message).
    pub fn version(&self) -> &str {
        &self.0.version
    }

    /// The time to live, if the resource has one.
    pub fn ttl(&self) -> Option<Duration> {
        self.0.ttl
    }

    /// The encoded message (without the `Any` wrapper).
    pub fn value(&self) -> &Bytes {
        &self.0.value
    }

    /// Decodes the message as `M`.
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.0.value.clone())
    }

    pub(crate) fn name_version_digest(&self) -> u64 {
        self.0.name_version_digest
    }

    pub(crate) fn sotw_entry(&self) -> &Bytes {
        &self.0.sotw_entry
    }

    /// The `DiscoveryResponse.resources` entry for a client that supports TTLs (`ttl_client`):
    /// wrapped with its TTL if the resource has one, else the plain entry.
    pub(crate) fn sotw_entry_for(&self, ttl_client: bool) -> &Bytes {
        match self.0.ttl {
            Some(ttl) if ttl_client => self.0.ttl_entries.sotw.get_or_init(|| {
                let wrapper = self.wrapper(ttl, true);
                let any_len = len_field_size(1, type_url::RESOURCE_WRAPPER.len()) + len_field_size(2, wrapper.len());
                let mut entry = BytesMut::with_capacity(len_field_size(2, any_len));
                prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut entry);
                prost::encoding::encode_varint(any_len as u64, &mut entry);
                put_len_field(&mut entry, 1, type_url::RESOURCE_WRAPPER.as_bytes());
                put_len_field(&mut entry, 2, &wrapper);
                entry.freeze()
            }),
            _ => &self.0.sotw_entry,
        }
    }

    /// The `DeltaDiscoveryResponse.resources` entry of this resource version, encoded on first
    /// use and shared by every stream afterwards: with its TTL for a client that supports TTLs
    /// (`ttl_client`).
    pub(crate) fn delta_entry_for(&self, ttl_client: bool) -> &Bytes {
        match self.0.ttl {
            Some(ttl) if ttl_client => self.0.ttl_entries.delta.get_or_init(|| field_2(&self.wrapper(ttl, true))),
            _ => self.delta_entry(),
        }
    }

    /// The `DeltaDiscoveryResponse.resources` entry of a heartbeat for this resource version:
    /// name, version and TTL without the resource (`None` if it has no TTL). A client that
    /// holds this version only renews the TTL.
    pub(crate) fn delta_heartbeat_entry(&self) -> Option<&Bytes> {
        let ttl = self.0.ttl?;
        Some(self.0.ttl_entries.delta_heartbeat.get_or_init(|| field_2(&self.wrapper(ttl, false))))
    }

    /// An encoded `envoy.service.discovery.v3.Resource`: version (1), the resource as an `Any`
    /// (2, if `with_body`), name (3) and TTL (6).
    fn wrapper(&self, ttl: Duration, with_body: bool) -> Vec<u8> {
        let inner = &self.0;
        let ttl = envoy_types::pb::google::protobuf::Duration {
            seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(ttl.subsec_nanos()).unwrap_or(0),
        }
        .encode_to_vec();
        let body_len = if with_body { inner.sotw_entry.len() } else { 0 };
        let mut buf = BytesMut::with_capacity(
            len_field_size(1, inner.version.len())
                + body_len
                + len_field_size(3, inner.name.len())
                + len_field_size(6, ttl.len()),
        );
        put_len_field(&mut buf, 1, inner.version.as_bytes());
        if with_body {
            // The SotW entry is exactly field 2 holding the `Any`.
            buf.extend_from_slice(&inner.sotw_entry);
        }
        put_len_field(&mut buf, 3, inner.name.as_bytes());
        put_len_field(&mut buf, 6, &ttl);
        buf.to_vec()
    }

    /// The `DeltaDiscoveryResponse.resources` entry of this resource version without its TTL,
    /// encoded on first use and shared by every stream afterwards.
    pub(crate) fn delta_entry(&self) -> &Bytes {
        self.0.delta_entry.get_or_init(|| {
            let inner = &self.0;
            // envoy.service.discovery.v3.Resource: version (1), resource (2, the `Any` that is
            // exactly the SotW entry: same field number), name (3).
            let body_len =
                len_field_size(1, inner.version.len()) + inner.sotw_entry.len() + len_field_size(3, inner.name.len());
            let mut entry = BytesMut::with_capacity(len_field_size(2, body_len));
            prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut entry);
            prost::encoding::encode_varint(body_len as u64, &mut entry);
            put_len_field(&mut entry, 1, inner.version.as_bytes());
            entry.extend_from_slice(&inner.sotw_entry);
            put_len_field(&mut entry, 3, inner.name.as_bytes());
            entry.freeze()
        })
    }

    /// The digest [`Self::name_version_digest`] would have for a resource named `name` whose
    /// version string is `version`; `None` if `version` is not a version this library made
    /// (such a version never equals a resource's).
    pub(crate) fn digest_of_version(name: &str, version: &str) -> Option<u64> {
        if version.len() != 16 {
            return None;
        }
        let content = u64::from_str_radix(version, 16).ok()?;
        Some(xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), content))
    }
}

/// `bytes` as field 2 (length-delimited): a `resources` entry of a discovery response.
fn field_2(bytes: &[u8]) -> Bytes {
    let mut entry = BytesMut::with_capacity(len_field_size(2, bytes.len()));
    put_len_field(&mut entry, 2, bytes);
    entry.freeze()
}

/// The resources of a set that carry a TTL, and the bodies a client that supports TTLs receives
/// when it subscribes to the whole set: built on first use, once per set, for every stream.
#[derive(Debug, Default)]
pub(crate) struct TtlView {
    /// The resources with a TTL, ordered by name.
    resources: Vec<Resource>,
    sotw_body: OnceLock<Bytes>,
    delta_body: OnceLock<Bytes>,
}

impl TtlView {
    /// The view of `resources`.
    pub(crate) fn new<'a>(resources: impl Iterator<Item = &'a Resource>) -> Self {
        Self { resources: resources.filter(|r| r.ttl().is_some()).cloned().collect(), ..Self::default() }
    }

    /// The resources with a TTL: what a heartbeat looks at.
    pub(crate) fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Every resource's SotW entry of `set`, as `ttl_client` receives it: the set's shared body,
    /// or (for a client that honours TTLs, when some resource has one) the body with those
    /// resources wrapped, built once per set. A client that does not honour TTLs costs nothing
    /// more than before.
    pub(crate) fn sotw_body(set: &TypeResources, ttl_client: bool) -> &Bytes {
        match ttl_view_if(set, ttl_client) {
            Some(view) => view.sotw_body.get_or_init(|| concat(set.iter().map(|r| r.sotw_entry_for(true)))),
            None => set.all_entries(),
        }
    }

    /// Every resource's delta entry of `set`, as `ttl_client` receives it (as [`Self::sotw_body`]).
    pub(crate) fn delta_body(set: &TypeResources, ttl_client: bool) -> &Bytes {
        match ttl_view_if(set, ttl_client) {
            Some(view) => view.delta_body.get_or_init(|| concat(set.iter().map(|r| r.delta_entry_for(true)))),
            None => set.all_delta_entries(),
        }
    }
}

/// The TTL view of `set`, if `ttl_client` and some resource of the set has a TTL.
fn ttl_view_if(set: &TypeResources, ttl_client: bool) -> Option<&TtlView> {
    if !ttl_client {
        return None;
    }
    Some(set.ttl_view()).filter(|view| !view.resources.is_empty())
}

fn concat<'a>(entries: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let entries: Vec<&Bytes> = entries.collect();
    let mut body = BytesMut::with_capacity(entries.iter().map(|e| e.len()).sum());
    for entry in entries {
        body.extend_from_slice(entry);
    }
    body.freeze()
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("type_url", &self.type_url())
            .field("name", &self.name())
            .field("version", &self.version())
            .field("ttl", &self.0.ttl)
            .field("bytes", &self.0.value.len())
            .finish()
    }
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.type_url() == other.type_url() && self.name() == other.name() && self.version() == other.version()
    }
}

impl Eq for Resource {}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    #[test]
    fn sotw_entry_is_an_encoded_any() {
        let cluster = Cluster { name: "c1".into(), ..Default::default() };
        let r = Resource::new(&cluster);
        // A DiscoveryResponse made of just this entry decodes back to the cluster.
        let resp = envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse::decode(r.sotw_entry().clone())
            .expect("decodes");
        assert_eq!(resp.resources.len(), 1);
        let any: &Any = &resp.resources[0];
        assert_eq!(any.type_url, type_url::CLUSTER);
        assert_eq!(Cluster::decode(any.value.as_slice()).expect("cluster"), cluster);
    }

    #[test]
    fn delta_entry_is_an_encoded_discovery_resource() {
        use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
        let cluster = Cluster { name: "c1".into(), alt_stat_name: "stats".into(), ..Default::default() };
        let r = Resource::new(&cluster);
        let resp = DeltaDiscoveryResponse::decode(r.delta_entry().clone()).expect("decodes");
        assert_eq!(resp.resources.len(), 1);
        let entry = &resp.resources[0];
        assert_eq!(entry.name, "c1");
        assert_eq!(entry.version, r.version());
        let any = entry.resource.as_ref().expect("resource");
        assert_eq!(any.type_url, type_url::CLUSTER);
        assert_eq!(Cluster::decode(any.value.as_slice()).expect("cluster"), cluster);
        assert_eq!(Resource::digest_of_version("c1", r.version()), Some(r.name_version_digest()));
        assert_eq!(Resource::digest_of_version("c1", "not-ours"), None);
    }

    #[test]
    fn ttl_encodings_carry_the_ttl_and_are_shared() {
        use envoy_types::pb::envoy::service::discovery::v3::{
            DeltaDiscoveryResponse, DiscoveryResponse, Resource as Wrapper,
        };
        let cluster = Cluster { name: "c1".into(), ..Default::default() };
        let plain = Resource::new(&cluster);
        let r = plain.clone().with_ttl(Some(Duration::from_millis(1500)));
        let ttl = Some(envoy_types::pb::google::protobuf::Duration { seconds: 1, nanos: 500_000_000 });
        assert_ne!(r.version(), plain.version(), "the TTL is part of the version");
        assert_eq!(r.clone().with_ttl(None).version(), plain.version());
        assert_eq!(Resource::digest_of_version("c1", r.version()), Some(r.name_version_digest()));

        // SotW: plain for other clients, wrapped for TTL clients; the same bytes every time.
        assert_eq!(r.sotw_entry_for(false), r.sotw_entry());
        assert_eq!(plain.sotw_entry_for(true), plain.sotw_entry(), "no TTL: never wrapped");
        assert_eq!(r.sotw_entry_for(true).as_ptr(), r.sotw_entry_for(true).as_ptr());
        let resp = DiscoveryResponse::decode(r.sotw_entry_for(true).clone()).expect("decodes");
        assert_eq!(resp.resources[0].type_url, type_url::RESOURCE_WRAPPER);
        let wrapper = Wrapper::decode(resp.resources[0].value.as_slice()).expect("wrapper");
        assert_eq!((wrapper.name.as_str(), wrapper.version.as_str(), wrapper.ttl), ("c1", r.version(), ttl));
        let any = wrapper.resource.expect("body");
        assert_eq!(Cluster::decode(any.value.as_slice()).expect("cluster"), cluster);

        // Delta: the TTL field for TTL clients; a heartbeat has no body.
        let entry = |b: &Bytes| DeltaDiscoveryResponse::decode(b.clone()).expect("decodes").resources.remove(0);
        assert_eq!(entry(r.delta_entry_for(false)).ttl, None);
        let with_ttl = entry(r.delta_entry_for(true));
        assert_eq!((with_ttl.ttl, with_ttl.version.as_str()), (ttl, r.version()));
        assert!(with_ttl.resource.is_some());
        let heartbeat = entry(r.delta_heartbeat_entry().expect("has a TTL"));
        assert_eq!((heartbeat.name.as_str(), heartbeat.version.as_str(), heartbeat.ttl), ("c1", r.version(), ttl));
        assert!(heartbeat.resource.is_none());
        assert!(plain.delta_heartbeat_entry().is_none());
    }

    #[test]
    fn ttl_view_builds_bodies_only_when_needed() {
        let a = Resource::new(&Cluster { name: "a".into(), ..Default::default() });
        let b =
            Resource::new(&Cluster { name: "b".into(), ..Default::default() }).with_ttl(Some(Duration::from_secs(5)));
        let plain_set = TypeResources::new(type_url::CLUSTER, [a.clone()]);
        assert!(plain_set.ttl_view().resources().is_empty());
        assert_eq!(TtlView::sotw_body(&plain_set, true), plain_set.all_entries());
        let set = TypeResources::new(type_url::CLUSTER, [a.clone(), b.clone()]);
        assert_eq!(set.ttl_view().resources(), std::slice::from_ref(&b));
        assert_eq!(TtlView::sotw_body(&set, false), set.all_entries());
        let mut expected = BytesMut::new();
        expected.extend_from_slice(a.sotw_entry());
        expected.extend_from_slice(b.sotw_entry_for(true));
        assert_eq!(TtlView::sotw_body(&set, true), &expected.freeze());
        let mut expected = BytesMut::new();
        expected.extend_from_slice(a.delta_entry());
        expected.extend_from_slice(b.delta_entry_for(true));
        assert_eq!(TtlView::delta_body(&set, true), &expected.freeze());
    }

    #[test]
    fn version_follows_content() {
        let a = Resource::new(&Cluster { name: "c1".into(), ..Default::default() });
        let b = Resource::new(&Cluster { name: "c1".into(), ..Default::default() });
        let c = Resource::new(&Cluster { name: "c1".into(), alt_stat_name: "x".into(), ..Default::default() });
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }
}
