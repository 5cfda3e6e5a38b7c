//! Listings of everything stored, for the CLI and the REST API.

use bosun_store::{Prefix, Selector, Store, StoreExt};
use serde::Serialize;

use crate::error::MetadataError;
use crate::keys;

/// One revision of an application's metadata, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataEntry {
    /// The application's namespace.
    pub namespace: String,
    /// The application.
    pub application_name: String,
    /// The revision the application computed.
    pub revision: String,
    /// The raw `MetadataInfo`.
    pub metadata_info: String,
}

/// A service definition, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionEntry {
    /// Its identifier.
    pub identifier: String,
    /// The raw `ServiceDefinition`.
    pub service_definition: String,
}

/// An interface and the applications that serve it, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingEntry {
    /// The namespace.
    pub namespace: String,
    /// The interface.
    pub interface_name: String,
    /// The applications serving it, sorted.
    pub application_names: Vec<String>,
}

/// Every stored metadata entry, in `namespace` or in all of them.
pub async fn list_metadata(store: &dyn Store, namespace: Option<&str>) -> Result<Vec<MetadataEntry>, MetadataError> {
    let page = store.list_all(&kind_prefix(keys::METADATA_KIND, namespace)?, &Selector::default()).await?;
    Ok(page
        .items
        .into_iter()
        .filter_map(|kv| {
            let (namespace, application, revision) = keys::parse_metadata(&kv.key)?;
            Some(MetadataEntry {
                namespace: namespace.to_owned(),
                application_name: application.to_owned(),
                revision: revision.to_owned(),
                metadata_info: String::from_utf8_lossy(&kv.value.data).into_owned(),
            })
        })
        .collect())
}

/// Every stored service definition.
pub async fn list_definitions(store: &dyn Store) -> Result<Vec<DefinitionEntry>, MetadataError> {
    let page = store.list_all(&keys::definition_prefix("")?, &Selector::default()).await?;
    Ok(page
        .items
        .into_iter()
        .map(|kv| DefinitionEntry {
            identifier: kv.key.name().to_owned(),
            service_definition: String::from_utf8_lossy(&kv.value.data).into_owned(),
        })
        .collect())
}

/// Every interface with its applications, in `namespace` or in all of them.
pub async fn list_mappings(store: &dyn Store, namespace: Option<&str>) -> Result<Vec<MappingEntry>, MetadataError> {
    let page = store.list_all(&kind_prefix(keys::MAPPING_KIND, namespace)?, &Selector::default()).await?;
    let mut entries: Vec<MappingEntry> = Vec::new();
    for kv in &page.items {
        let Some((namespace, interface, application)) = keys::parse_mapping(&kv.key) else { continue };
        match entries.last_mut() {
            Some(last) if last.namespace == namespace && last.interface_name == interface => {
                last.application_names.push(application.to_owned());
            }
            _ => entries.push(MappingEntry {
                namespace: namespace.to_owned(),
                interface_name: interface.to_owned(),
                application_names: vec![application.to_owned()],
            }),
        }
    }
    Ok(entries)
}

fn kind_prefix(kind: &str, namespace: Option<&str>) -> Result<Prefix, MetadataError> {
    match namespace {
        Some(namespace) => Prefix::namespace(kind, namespace),
        None => Prefix::kind(kind),
    }
    .map_err(|e| MetadataError::from_key_error("namespace", e))
}
