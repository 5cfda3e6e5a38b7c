//! Documents: Envoy resources as the API, the CLI and the store see them.
//!
//! A document is either Kubernetes-shaped —
//!
//! ```yaml
//! kind: Cluster                    # or clusters, cds, envoy.config.cluster.v3.Cluster
//! metadata: { name: web, namespace: default, labels: { app: web } }
//! spec: { type: EDS, connect_timeout: 1s, eds_cluster_config: { eds_config: { ads: {} } } }
//! ```
//!
//! — or a raw Envoy resource with `@type` (namespace `default`, no labels) — or a governance
//! document of one of `bosun_model`'s kinds (OpenSergo's `RateLimitStrategy`, `TrafficRouter`, ...),
//! validated by `bosun_model`. In the store, the key is `kind/namespace/name` and the value the
//! canonical JSON of the spec (for Envoy kinds with proto field names), with the labels. Namespace `default` is served
//! to every node; another namespace to the nodes whose `node.cluster` is that name, on top of the
//! default one (as the resources directory's sub-directories are).
//!
//! The label [`XDS_TTL_LABEL`] (`bosun.io/xds-ttl: 30s`) gives an Envoy document's resource a
//! time to live: clients that honour TTLs drop it when that long passes without Bosun sending it
//! or a heartbeat for it (`--xds-heartbeat-interval`), e.g. once Bosun is gone.

mod kinds;

use bosun_store::{Key, KeyValue, Labels, Revision, StoreError, Value};
use bosun_xds::Resource;
use serde_json::{Map, Value as Json};

pub use bosun_model::FieldError;
pub use kinds::{DocKind, EnvoyKind};

use crate::resources;

/// The namespace served to every node.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The `apiVersion` of Bosun's documents.
pub const API_VERSION: &str = "bosun.io/v1alpha1";
/// The label that gives an Envoy document's resource a time to live: a duration such as `30s`,
/// `1m30s`, `500ms` or `2h` (units `ms`, `s`, `m`, `h`).
pub const XDS_TTL_LABEL: &str = "bosun.io/xds-ttl";
/// The longest TTL accepted: a year.
const MAX_XDS_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// A validated document, ready to store.
#[derive(Debug, Clone)]
pub struct Document {
    pub key: Key,
    pub labels: Labels,
    /// The canonical JSON of the resource (what the store holds).
    pub spec: Json,
    /// `metadata.resourceVersion`, if given: the write applies only over that revision.
    pub resource_version: Option<Revision>,
    /// The typed document, for a governance kind.
    pub model: Option<bosun_model::Document>,
}

impl Document {
    /// Validates a document of either shape; every problem found is returned.
    pub fn parse(doc: Json) -> Result<Self, Vec<FieldError>> {
        let Json::Object(mut object) = doc else {
            return Err(vec![FieldError::new("document", "must be a mapping")]);
        };
        if object.contains_key("@type") {
            let type_url = object.remove("@type");
            let Some(Json::String(type_url)) = type_url else {
                return Err(vec![FieldError::new("@type", "must be a string")]);
            };
            let kind = EnvoyKind::resolve(&type_url).map_err(|e| vec![FieldError::new("@type", e)])?;
            return Self::build(
                kind,
                None,
                DEFAULT_NAMESPACE.to_owned(),
                Labels::new(),
                Json::Object(object),
                None,
                "",
            );
        }
        let governance = object.get("kind").and_then(Json::as_str).and_then(bosun_model::Kind::resolve);
        if let Some(kind) = governance
            && EnvoyKind::resolve(kind.name()).is_err()
        {
            return Self::governance(Json::Object(object));
        }
        let mut errors = Vec::new();
        for field in object.keys() {
            if !matches!(field.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
                errors
                    .push(FieldError::new(field.clone(), "unknown field (expected apiVersion, kind, metadata, spec)"));
            }
        }
        let kind = match object.remove("kind") {
            Some(Json::String(kind)) => {
                EnvoyKind::resolve(&kind).map_err(|e| errors.push(FieldError::new("kind", e))).ok()
            }
            Some(_) => {
                errors.push(FieldError::new("kind", "must be a string"));
                None
            }
            None => {
                errors.push(FieldError::new("kind", "missing (or give a raw Envoy resource with @type)"));
                None
            }
        };
        if let (Some(kind), Some(api_version)) = (&kind, object.get("apiVersion")) {
            let package = kind.descriptor.package_name();
            if api_version.as_str().is_none_or(|v| v != API_VERSION && v != package) {
                errors.push(FieldError::new("apiVersion", format!("must be {API_VERSION:?} or {package:?}")));
            }
        }
        let meta = Metadata::parse(object.remove("metadata"), &mut errors);
        let spec = match object.remove("spec") {
            Some(spec @ Json::Object(_)) => spec,
            Some(_) => {
                errors.push(FieldError::new("spec", "must be a mapping"));
                Json::Object(Map::new())
            }
            None => {
                errors.push(FieldError::new("spec", "missing"));
                Json::Object(Map::new())
            }
        };
        let Some(kind) = kind else { return Err(errors) };
        match Self::build(kind, meta.name, meta.namespace, meta.labels, spec, meta.resource_version, "spec") {
            Ok(doc) if errors.is_empty() => Ok(doc),
            Ok(_) => Err(errors),
            Err(more) => {
                for e in more {
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
                Err(errors)
            }
        }
    }

    fn build(
        kind: EnvoyKind,
        name: Option<String>,
        namespace: String,
        labels: Labels,
        mut spec: Json,
        resource_version: Option<Revision>,
        spec_field: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let at = |field: &str| if spec_field.is_empty() { field.to_owned() } else { format!("{spec_field}.{field}") };
        let name_field = kind.name_field();
        let spec_name = spec.get(name_field).cloned();
        let name = match (name, spec_name) {
            (Some(meta), Some(Json::String(given))) if meta != given => {
                return Err(vec![FieldError::new(
                    at(name_field),
                    format!("{given:?} differs from metadata.name {meta:?}"),
                )]);
            }
            (Some(meta), _) => meta,
            (None, Some(Json::String(given))) => given,
            (None, _) => return Err(vec![FieldError::new("metadata.name", "missing")]),
        };
        if let Json::Object(map) = &mut spec {
            map.insert(name_field.to_owned(), Json::String(name.clone()));
        }
        let key = Key::new(&kind.name, &namespace, &name).map_err(|e| vec![key_error(e)])?;
        let transcoded = resources::transcode_as(&kind.descriptor, spec).map_err(|e| {
            let field = if spec_field.is_empty() { "resource".to_owned() } else { spec_field.to_owned() };
            vec![FieldError::new(field, e)]
        })?;
        Ok(Self { key, labels, spec: transcoded.canonical, resource_version, model: None })
    }

    /// A governance document, checked by `bosun_model`.
    fn governance(doc: Json) -> Result<Self, Vec<FieldError>> {
        let model = bosun_model::Document::parse(doc).map_err(|invalid| invalid.errors)?;
        let key = model.key().map_err(|e| vec![key_error(e)])?;
        let spec = model.to_json().get("spec").cloned().unwrap_or(Json::Null);
        Ok(Self {
            key,
            labels: model.metadata.labels.clone(),
            spec,
            resource_version: model.metadata.resource_version,
            model: Some(model),
        })
    }

    /// The document in the Kubernetes shape (what transform plugins are given).
    pub fn to_json(&self) -> Json {
        if let Some(model) = &self.model {
            return model.to_json();
        }
        let mut metadata = Map::new();
        metadata.insert("name".into(), self.key.name().into());
        metadata.insert("namespace".into(), self.key.namespace().into());
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), serde_json::to_value(&self.labels).unwrap_or_default());
        }
        if let Some(r) = self.resource_version {
            metadata.insert("resourceVersion".into(), r.to_string().into());
        }
        let mut doc = Map::new();
        doc.insert("apiVersion".into(), API_VERSION.into());
        doc.insert("kind".into(), self.key.kind().into());
        doc.insert("metadata".into(), Json::Object(metadata));
        doc.insert("spec".into(), self.spec.clone());
        Json::Object(doc)
    }

    /// What the store holds for this document.
    pub fn value(&self) -> Value {
        // Serializing a JSON value cannot fail.
        Value {
            data: serde_json::to_vec(&self.spec).unwrap_or_default().into(),
            labels: self.labels.clone(),
            lease: None,
        }
    }
}

/// The resource a stored Envoy document serves, with the TTL of its [`XDS_TTL_LABEL`]; `None`
/// if the key is not an Envoy kind.
pub fn resource_of(kv: &KeyValue) -> Option<Result<Resource, String>> {
    let kind = EnvoyKind::of_store_kind(kv.key.kind())?;
    Some(
        serde_json::from_slice(&kv.value.data)
            .map_err(|e| format!("stored JSON: {e}"))
            .and_then(|spec| resources::transcode_as(&kind.descriptor, spec))
            .and_then(|t| Ok(t.resource.with_ttl(xds_ttl(&kv.value.labels)?)))
            .map_err(|e| format!("{}: {e}", kv.key)),
    )
}

/// The TTL that `labels` give (their [`XDS_TTL_LABEL`]), if any.
fn xds_ttl(labels: &Labels) -> Result<Option<std::time::Duration>, String> {
    let Some(text) = labels.get(XDS_TTL_LABEL) else { return Ok(None) };
    parse_xds_ttl(text).map(Some).map_err(|reason| format!("metadata.labels.{XDS_TTL_LABEL}: {reason}"))
}

/// The TTL `text` (a value of [`XDS_TTL_LABEL`]) gives.
fn parse_xds_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl.is_zero() || ttl > MAX_XDS_TTL {
        return Err(format!("{text:?} must be more than 0 and at most a year"));
    }
    Ok(ttl)
}

/// Parses a duration such as `30s`, `1m30s`, `500ms` or `2h`: whole numbers, each with a unit
/// (`ms`, `s`, `m`, `h`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 30s, 1m30s, 500ms or 2h");
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        let millis = number.checked_mul(millis_per_unit).ok_or_else(invalid)?;
        total = total.checked_add(std::time::Duration::from_millis(millis)).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A stored governance document, typed; `None` if the key is not a governance kind.
pub fn model_of(kv: &KeyValue) -> Option<Result<bosun_model::Document, String>> {
    let DocKind::Governance(_) = DocKind::of_store_kind(kv.key.kind())? else { return None };
    let mut doc = render(kv);
    if let Some(meta) = doc.get_mut("metadata").and_then(Json::as_object_mut) {
        // Stored documents are read as they are, not as writes over a revision.
        meta.remove("resourceVersion");
        meta.remove("generation");
    }
    Some(bosun_model::Document::parse(doc).map_err(|e| format!("{}: stored document: {e}", kv.key)))
}

/// A stored key as the API and `bosun get` show it.
pub fn render(kv: &KeyValue) -> Json {
    let spec = serde_json::from_slice::<Json>(&kv.value.data)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&kv.value.data).into_owned()));
    let mut metadata = Map::new();
    metadata.insert("name".into(), kv.key.name().into());
    metadata.insert("namespace".into(), kv.key.namespace().into());
    if !kv.value.labels.is_empty() {
        metadata.insert("labels".into(), serde_json::to_value(&kv.value.labels).unwrap_or_default());
    }
    metadata.insert("resourceVersion".into(), kv.mod_revision.to_string().into());
    metadata.insert("generation".into(), kv.version.into());
    let mut doc = Map::new();
    let api_version = DocKind::of_store_kind(kv.key.kind()).map_or_else(|| API_VERSION.to_owned(), |k| k.api_version());
    doc.insert("apiVersion".into(), api_version.into());
    doc.insert("kind".into(), kv.key.kind().into());
    doc.insert("metadata".into(), Json::Object(metadata));
    doc.insert("spec".into(), spec);
    Json::Object(doc)
}

/// A store key error, with the document's field names.
pub fn key_error(e: StoreError) -> FieldError {
    match e {
        StoreError::InvalidArgument { field, reason } => {
            let field = match field.as_str() {
                "key.kind" => "kind",
                "key.namespace" => "metadata.namespace",
                "key.name" => "metadata.name",
                other => other,
            };
            FieldError::new(field, reason)
        }
        other => FieldError::new("document", other.to_string()),
    }
}

struct Metadata {
    name: Option<String>,
    namespace: String,
    labels: Labels,
    resource_version: Option<Revision>,
}

impl Metadata {
    fn parse(meta: Option<Json>, errors: &mut Vec<FieldError>) -> Self {
        let mut out =
            Self { name: None, namespace: DEFAULT_NAMESPACE.to_owned(), labels: Labels::new(), resource_version: None };
        let meta = match meta {
            None => return out,
            Some(Json::Object(meta)) => meta,
            Some(_) => {
                errors.push(FieldError::new("metadata", "must be a mapping"));
                return out;
            }
        };
        for (field, value) in meta {
            let at = format!("metadata.{field}");
            match (field.as_str(), value) {
                ("name", Json::String(s)) => out.name = Some(s),
                ("namespace", Json::String(s)) => {
                    // Checked here too, so that its error comes with the others.
                    if let Err(e) = bosun_store::Prefix::namespace("Kind", &s) {
                        errors.push(key_error(e));
                    }
                    out.namespace = s;
                }
                ("labels", Json::Object(labels)) => {
                    for (k, v) in labels {
                        let Json::String(v) = v else {
                            errors.push(FieldError::new(format!("metadata.labels.{k}"), "must be a string"));
                            continue;
                        };
                        let checked =
                            bosun_store::validate::label_key(&k).and_then(|()| bosun_store::validate::label_value(&v));
                        let checked = checked
                            .and_then(|()| if k == XDS_TTL_LABEL { parse_xds_ttl(&v).map(|_| ()) } else { Ok(()) });
                        match checked {
                            Ok(()) => {
                                out.labels.insert(k, v);
                            }
                            Err(reason) => errors.push(FieldError::new(format!("metadata.labels.{k}"), reason)),
                        }
                    }
                }
                ("resourceVersion", Json::String(s)) => match s.parse::<Revision>() {
                    Ok(r) if r > 0 => out.resource_version = Some(r),
                    _ => errors.push(FieldError::new(at, "must be a positive integer, as `bosun get` shows it")),
                },
                // Shown by `bosun get`; accepted back so its output can be applied again.
                ("generation", _) => {}
                ("name" | "namespace" | "resourceVersion", _) => errors.push(FieldError::new(at, "must be a string")),
                ("labels", _) => errors.push(FieldError::new(at, "must be a mapping of strings")),
                _ => errors
                    .push(FieldError::new(at, "unknown field (expected name, namespace, labels, resourceVersion)")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
