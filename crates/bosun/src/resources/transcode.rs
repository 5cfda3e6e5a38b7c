//! Envoy's proto3 JSON mapping → protobuf bytes, through the descriptors of every Envoy proto.

use std::sync::LazyLock;

use bosun_xds::Resource;
use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

/// The descriptor set of all Envoy protos, shipped by the `envoy-types` crate (see build.rs).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("Envoy descriptors: {e}")));

const TYPE_PREFIX: &str = "type.googleapis.com/";

/// Transcodes one resource: `value` is a JSON object with an `@type` field.
pub fn transcode(mut value: serde_json::Value) -> Result<Resource, String> {
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    let object = value.as_object_mut().ok_or("a resource must be a mapping")?;
    let type_url = match object.remove("@type") {
        Some(serde_json::Value::String(t)) => t,
        Some(_) => return Err("@type: must be a string".into()),
        None => return Err(
            "@type: missing (every resource names its type, e.g. type.googleapis.com/envoy.config.cluster.v3.Cluster)"
                .into(),
        ),
    };
    let full_name = type_url.rsplit('/').next().unwrap_or(&type_url);
    let descriptor = pool.get_message_by_name(full_name).ok_or_else(|| format!("@type: unknown type {type_url:?}"))?;
    let message = DynamicMessage::deserialize(descriptor.clone(), value).map_err(|e| e.to_string())?;
    let name = resource_name(&descriptor, &message)?;
    // Map fields encode in hash order, so the bytes are not canonical; the version is a hash of
    // the message's canonical JSON (sorted keys), which is.
    let canonical =
        serde_json::to_vec(&serde_json::to_value(&message).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let hash = xxhash_rust::xxh3::xxh3_64(&canonical);
    let canonical_url = format!("{TYPE_PREFIX}{}", descriptor.full_name());
    Ok(Resource::with_content_hash(canonical_url, name, Bytes::from(message.encode_to_vec()), hash))
}

/// The name clients subscribe to: `cluster_name` for endpoints, `name` otherwise.
fn resource_name(descriptor: &MessageDescriptor, message: &DynamicMessage) -> Result<String, String> {
    let field = if descriptor.full_name() == "envoy.config.endpoint.v3.ClusterLoadAssignment" {
        "cluster_name"
    } else {
        "name"
    };
    if descriptor.get_field_by_name(field).is_none() {
        return Err(format!("{} has no {field:?} field: it is not an xDS resource", descriptor.full_name()));
    }
    match message.get_field_by_name(field).as_deref() {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        _ => Err(format!("{field}: missing or empty (a resource needs a name)")),
    }
}
