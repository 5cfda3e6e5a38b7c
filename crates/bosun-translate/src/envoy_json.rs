//! Envoy's messages as canonical proto3 JSON, and as xDS resources whose version does not depend
//! on the order map fields happen to encode in.

use std::sync::LazyLock;

use bosun_xds::Resource;
use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

/// The descriptor set of all Envoy protos, shipped by the `envoy-types` crate (see build.rs).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("Envoy descriptors: {e}")));

/// Every Envoy message's descriptor (decoded once).
pub fn pool() -> Result<&'static DescriptorPool, String> {
    POOL.as_ref().map_err(Clone::clone)
}

/// The descriptor of an Envoy message, by full name or type URL.
pub fn descriptor(type_name: &str) -> Result<MessageDescriptor, String> {
    let full_name = type_name.rsplit('/').next().unwrap_or(type_name);
    pool()?.get_message_by_name(full_name).ok_or_else(|| format!("unknown type {type_name:?}"))
}

/// The proto3 JSON of an encoded message of `type_url`, with proto field names
/// (`connect_timeout`) and, inside, `Any`s written out with their `@type`.
pub fn canonical_json(type_url: &str, encoded: &[u8]) -> Result<serde_json::Value, String> {
    let message = DynamicMessage::decode(descriptor(type_url)?, encoded).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    message.serialize_with_options(serde_json::value::Serializer, &options).map_err(|e| e.to_string())
}

/// A hash of the canonical JSON of a message: the same content gives the same hash whatever
/// order its map fields were encoded in.
pub fn content_hash(canonical: &serde_json::Value) -> u64 {
    // serde_json's maps are sorted, so the text is canonical.
    xxhash_rust::xxh3::xxh3_64(canonical.to_string().as_bytes())
}

/// An xDS resource of a message, versioned by [`content_hash`].
pub(crate) fn resource<M: Message>(type_url: &str, name: &str, message: &M) -> Result<Resource, String> {
    let encoded = Bytes::from(message.encode_to_vec());
    let hash = content_hash(&canonical_json(type_url, &encoded)?);
    Ok(Resource::with_content_hash(type_url.to_owned(), name.to_owned(), encoded, hash))
}
