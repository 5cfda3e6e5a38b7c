//! Resources: a named, versioned, already-encoded xDS resource, and the Envoy type URLs.

use std::fmt;
use std::sync::{Arc, OnceLock};

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
}

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

/// One xDS resource: its type, name, content version and bytes, encoded once.
///
/// Cloning is a reference-count increment. The version is a hash of the encoded content, so the
/// same content gives the same version in every process and after every restart.
#[derive(Clone)]
pub struct Resource(Arc<Inner>);

struct Inner {
    type_url: Arc<str>,
    name: Arc<str>,
    version: Box<str>,
    /// Hash of name and version, for order-free digests of a set of resources.
    name_version_digest: u64,
    value: Bytes,
    /// `DiscoveryResponse.resources` entry: field 2, a `google.protobuf.Any`.
    sotw_entry: Bytes,
    /// `DeltaDiscoveryResponse.resources` entry: field 2, an `envoy.service.discovery.v3.Resource`
    /// (name, version, `Any`). Built by the first delta stream that sends this version.
    delta_entry: OnceLock<Bytes>,
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
        let type_url = type_url.into();
        let name = name.into();
        let version = format!("{content_hash:016x}").into_boxed_str();
        let name_version_digest = xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), content_hash);
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
            name_version_digest,
            value,
            sotw_entry: entry.freeze(),
            delta_entry: OnceLock::new(),
        }))
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

    /// The `DeltaDiscoveryResponse.resources` entry of this resource version, encoded on first
    /// use and shared by every stream afterwards.
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

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("type_url", &self.type_url())
            .field("name", &self.name())
            .field("version", &self.version())
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
    fn version_follows_content() {
        let a = Resource::new(&Cluster { name: "c1".into(), ..Default::default() });
        let b = Resource::new(&Cluster { name: "c1".into(), ..Default::default() });
        let c = Resource::new(&Cluster { name: "c1".into(), alt_stat_name: "x".into(), ..Default::default() });
        assert_eq!(a.version(), b.version());
        assert_ne!(a.version(), c.version());
    }
}
