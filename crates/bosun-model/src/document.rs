//! A document: `apiVersion`, `kind`, `metadata`, `spec`.

use bosun_store::{Key, Labels, Revision, StoreError};
use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::Value as Json;

use crate::fields::{Errors, Obj};
use crate::{FieldError, Invalid, Kind, Spec};

/// The namespace of a document that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The label that binds a rule to an application.
pub const APP_LABEL: &str = "app";

/// A valid document of one of the [`Kind`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Name, namespace, labels.
    pub metadata: Metadata,
    /// The kind's spec (which says the kind).
    pub spec: Spec,
}

/// A document's `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The name, unique per kind and namespace.
    pub name: String,
    /// The namespace (`default` if not given).
    pub namespace: String,
    /// Labels; `app` binds the document to an application.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// `metadata.resourceVersion`, if given: a write applies only over that revision.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_revision")]
    pub resource_version: Option<Revision>,
}

fn serialize_revision<S: serde::Serializer>(r: &Option<Revision>, serializer: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => serializer.collect_str(r),
        None => serializer.serialize_none(),
    }
}

impl Metadata {
    /// The application the document is bound to (`labels.app`).
    pub fn app(&self) -> Option<&str> {
        self.labels.get(APP_LABEL).map(String::as_str)
    }
}

impl Document {
    /// Reads and checks a document; every problem found is returned, each with its field path.
    /// Unknown fields are errors. References to other documents are not checked here (see
    /// [`crate::references`]).
    pub fn parse(value: Json) -> Result<Self, Invalid> {
        let mut errors = Errors::new();
        let document = Self::read(value, &mut errors);
        match document {
            Some(document) if errors.is_empty() => Ok(document),
            _ => Err(Invalid { errors }),
        }
    }

    fn read(value: Json, errors: &mut Errors) -> Option<Self> {
        if !value.is_object() {
            errors.push(FieldError::new("document", "must be a mapping"));
            return None;
        }
        let mut doc = Obj::new("", value, errors)?;
        let api_version = doc.string("apiVersion", false, errors);
        let kind = doc.string("kind", true, errors).and_then(|name| {
            let kind = Kind::resolve(&name);
            if kind.is_none() {
                let known = Kind::ALL.map(Kind::name).join(", ");
                errors.push(FieldError::new("kind", format!("unknown kind {name:?} (expected one of {known})")));
            }
            kind
        });
        if let (Some(kind), Some(api_version)) = (kind, &api_version)
            && *api_version != kind.api_version()
        {
            errors.push(FieldError::new("apiVersion", format!("must be {:?} for {kind}", kind.api_version())));
        }
        let metadata = doc.object("metadata", true, errors, |obj, errors| Metadata::read(obj, kind, errors)).flatten();
        let spec = doc.take("spec", true, errors);
        // What Bosun made of the document, shown by `bosun get`; accepted back and ignored, so
        // that its output can be applied again.
        doc.take("status", false, errors);
        // Checked even when the spec has other errors, so that this error comes with them.
        let selector_app = spec
            .as_ref()
            .filter(|_| matches!(kind, Some(Kind::FaultToleranceRule | Kind::TrafficLane)))
            .and_then(|s| s.pointer("/selector/app")?.as_str().map(str::to_owned));
        let spec = match (kind, spec) {
            (Some(kind), Some(spec)) => Spec::read(kind, spec, errors),
            // Without a kind, the spec can only be checked for being a mapping.
            (None, Some(spec)) => Obj::new("spec", spec, errors).and(None),
            (_, None) => None,
        };
        doc.finish(errors);
        if let (Some(metadata), Some(app)) = (&metadata, selector_app)
            && let Some(label) = metadata.app()
            && label != app
        {
            errors.push(FieldError::new(
                "spec.selector.app",
                format!("{app:?} differs from metadata.labels.app {label:?}"),
            ));
        }
        Some(Self { metadata: metadata?, spec: spec? })
    }

    /// The document's kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// The application the document is bound to: `metadata.labels.app`, else `spec.selector.app`.
    pub fn app(&self) -> Option<&str> {
        self.metadata.app().or_else(|| self.spec.selector_app())
    }

    /// The store key: `Kind/namespace/name`.
    pub fn key(&self) -> Result<Key, StoreError> {
        Key::new(self.kind().name(), &self.metadata.namespace, &self.metadata.name)
    }

    /// The document as JSON, in the shape it was read from (durations and percentages written
    /// canonically: `"20ms"`, `"60%"`).
    pub fn to_json(&self) -> Json {
        // Every field serializes to JSON (string keys only).
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut doc = serializer.serialize_struct("Document", 4)?;
        doc.serialize_field("apiVersion", &self.kind().api_version())?;
        doc.serialize_field("kind", self.kind().name())?;
        doc.serialize_field("metadata", &self.metadata)?;
        doc.serialize_field("spec", &self.spec)?;
        doc.end()
    }
}

impl Metadata {
    fn read(obj: &mut Obj, kind: Option<Kind>, errors: &mut Errors) -> Option<Self> {
        let name = obj.string("name", true, errors);
        let namespace = obj.string("namespace", false, errors).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let labels = obj.take("labels", false, errors).and_then(|labels| read_labels(labels, errors));
        let resource_version = obj.string("resourceVersion", false, errors).and_then(|s| match s.parse::<Revision>() {
            Ok(r) if r > 0 => Some(r),
            _ => {
                errors.push(FieldError::new(
                    "metadata.resourceVersion",
                    "must be a positive integer, as `bosun get` shows it",
                ));
                None
            }
        });
        // Shown by `bosun get`; accepted back so that its output can be applied again.
        obj.take("generation", false, errors);
        let name = name?;
        // The store's own rules for names and namespaces, so that its errors come with the others.
        if let Err(e) = Key::new(kind.map_or("Kind", Kind::name), &namespace, &name) {
            errors.push(key_error(e));
        }
        Some(Self { name, namespace, labels: labels.unwrap_or_default(), resource_version })
    }
}

fn read_labels(labels: Json, errors: &mut Errors) -> Option<Labels> {
    let Json::Object(labels) = labels else {
        errors.push(FieldError::new("metadata.labels", "must be a mapping of strings"));
        return None;
    };
    let mut out = Labels::new();
    for (key, value) in labels {
        let field = format!("metadata.labels.{key}");
        let Json::String(value) = value else {
            errors.push(FieldError::new(field, "must be a string"));
            continue;
        };
        match bosun_store::validate::label_key(&key).and_then(|()| bosun_store::validate::label_value(&value)) {
            Ok(()) => {
                out.insert(key, value);
            }
            Err(reason) => errors.push(FieldError::new(field, reason)),
        }
    }
    Some(out)
}

/// A store key error, with the document's field names.
fn key_error(e: StoreError) -> FieldError {
    match e {
        StoreError::InvalidArgument { field, reason } => {
            let field = match field.as_str() {
                "key.namespace" => "metadata.namespace",
                "key.name" => "metadata.name",
                other => other,
            };
            FieldError::new(field, reason)
        }
        other => FieldError::new("metadata", other.to_string()),
    }
}

impl<'de> serde::Deserialize<'de> for Document {
    /// Reads a document as [`Document::parse`] does; the error lists every problem.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Json::deserialize(deserializer)?;
        Document::parse(value).map_err(serde::de::Error::custom)
    }
}
