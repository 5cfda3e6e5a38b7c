//! Envoy's proto3 JSON mapping → protobuf bytes, through the descriptors of every Envoy proto.

use bosun_xds::Resource;
use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions, Value};

pub use bosun_translate::envoy_json::descriptor;

const TYPE_PREFIX: &str = "type.googleapis.com/";

/// Transcodes one resource: `value` is a JSON object with an `@type` field.
pub fn transcode(mut value: serde_json::Value) -> Result<Resource, String> {
    let object = value.as_object_mut().ok_or("a resource must be a mapping")?;
    let type_url = match object.remove("@type") {
        Some(serde_json::Value::String(t)) => t,
        Some(_) => return Err("@type: must be a string".into()),
        None => return Err(
            "@type: missing (every resource names its type, e.g. type.googleapis.com/envoy.config.cluster.v3.Cluster)"
                .into(),
        ),
    };
    let descriptor = descriptor(&type_url).map_err(|e| format!("@type: {e}"))?;
    transcode_as(&descriptor, value).map(|t| t.resource)
}

/// A resource transcoded from JSON, with the canonical JSON of its content.
pub struct Transcoded {
    pub resource: Resource,
    /// The message in the proto3 JSON mapping with proto field names (`connect_timeout`), keys
    /// sorted, without `@type`.
    pub canonical: serde_json::Value,
}

/// Transcodes `value` (a JSON object without `@type`) as a message of `descriptor`.
pub fn transcode_as(descriptor: &MessageDescriptor, value: serde_json::Value) -> Result<Transcoded, String> {
    let message = DynamicMessage::deserialize(descriptor.clone(), value).map_err(|e| e.to_string())?;
    let name = resource_name(descriptor, &message)?;
    // Map fields encode in hash order, so the bytes are not canonical; the version is a hash of
    // the message's canonical JSON (sorted keys), which is.
    let options = SerializeOptions::new().use_proto_field_name(true);
    let canonical =
        message.serialize_with_options(serde_json::value::Serializer, &options).map_err(|e| e.to_string())?;
    let hash = bosun_translate::envoy_json::content_hash(&canonical);
    let canonical_url = format!("{TYPE_PREFIX}{}", descriptor.full_name());
    let resource = Resource::with_content_hash(canonical_url, name, Bytes::from(message.encode_to_vec()), hash);
    Ok(Transcoded { resource, canonical })
}

/// The field that holds an xDS resource's name: `cluster_name` for endpoints, `name` otherwise.
pub fn name_field(descriptor: &MessageDescriptor) -> &'static str {
    if descriptor.full_name() == "envoy.config.endpoint.v3.ClusterLoadAssignment" { "cluster_name" } else { "name" }
}

/// The name clients subscribe to: `cluster_name` for endpoints, `name` otherwise.
fn resource_name(descriptor: &MessageDescriptor, message: &DynamicMessage) -> Result<String, String> {
    let field = name_field(descriptor);
    if descriptor.get_field_by_name(field).is_none() {
        return Err(format!("{} has no {field:?} field: it is not an xDS resource", descriptor.full_name()));
    }
    match message.get_field_by_name(field).as_deref() {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        _ => Err(format!("{field}: missing or empty (a resource needs a name)")),
    }
}

/// The canonical JSON of a resource (as [`Transcoded::canonical`]), from its encoded bytes.
pub fn canonical_json(resource: &Resource) -> Result<serde_json::Value, String> {
    bosun_translate::envoy_json::canonical_json(resource.type_url(), resource.value())
}
