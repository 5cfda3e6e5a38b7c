//! The store keys of metadata entries, built from request fields (each checked, with the field
//! named on refusal) and parsed back for listings and watches.
//!
//! - `ServiceMetadata/<namespace>/<application>:<revision>`
//! - `ServiceDefinition/global/<identifier>`
//! - `ServiceMapping/<namespace>/<interface>|<application>`: one key per application, so each is
//!   held by its own application's lease
//! - `MetadataLease/<namespace>/<application>`: the id of the application's lease, itself attached
//!   to that lease (`definition:<identifier>` for a definition's own lease)

use bosun_store::{Key, Prefix};

use crate::error::MetadataError;

/// The store kind of application metadata.
pub const METADATA_KIND: &str = "ServiceMetadata";
/// The store kind of service definitions.
pub const DEFINITION_KIND: &str = "ServiceDefinition";
/// The store kind of interface → application mappings.
pub const MAPPING_KIND: &str = "ServiceMapping";
/// The store kind of the keys that remember each application's lease.
pub const LEASE_KIND: &str = "MetadataLease";
/// The namespace of service definitions, whose identifiers carry no namespace.
pub const DEFINITION_NAMESPACE: &str = "global";
/// Every kind this crate writes.
pub const KINDS: [&str; 4] = [METADATA_KIND, DEFINITION_KIND, MAPPING_KIND, LEASE_KIND];

/// Separates the application from the revision in metadata key names.
const REVISION_SEPARATOR: char = ':';
/// Separates the interface from the application in mapping key names.
const MAPPING_SEPARATOR: char = '|';

/// Refuses an empty required field.
pub fn required(field: &str, value: &str) -> Result<(), MetadataError> {
    if value.is_empty() { Err(MetadataError::invalid(field, "must not be empty")) } else { Ok(()) }
}

fn checked_namespace(namespace: &str) -> Result<(), MetadataError> {
    required("namespace", namespace)?;
    Prefix::namespace(METADATA_KIND, namespace).map(drop).map_err(|e| MetadataError::from_key_error("namespace", e))
}

fn checked_application(field: &str, application: &str) -> Result<(), MetadataError> {
    required(field, application)?;
    if application.contains(REVISION_SEPARATOR) || application.contains(MAPPING_SEPARATOR) {
        return Err(MetadataError::invalid(field, "must not contain ':' or '|'"));
    }
    Ok(())
}

fn key(kind: &str, namespace: &str, name: &str, field: &str) -> Result<Key, MetadataError> {
    Key::new(kind, namespace, name).map_err(|e| MetadataError::from_key_error(field, e))
}

/// The key of one revision of an application's metadata.
pub fn metadata(namespace: &str, application: &str, revision: &str) -> Result<Key, MetadataError> {
    checked_namespace(namespace)?;
    checked_application("application_name", application)?;
    required("revision", revision)?;
    key(METADATA_KIND, namespace, &format!("{application}{REVISION_SEPARATOR}{revision}"), "revision")
}

/// The prefix of every revision of an application's metadata.
pub fn metadata_prefix(namespace: &str, application: &str) -> Result<Prefix, MetadataError> {
    checked_namespace(namespace)?;
    checked_application("application_name", application)?;
    Prefix::name(METADATA_KIND, namespace, &format!("{application}{REVISION_SEPARATOR}"))
        .map_err(|e| MetadataError::from_key_error("application_name", e))
}

/// `(namespace, application, revision)` of a metadata key.
pub fn parse_metadata(key: &Key) -> Option<(&str, &str, &str)> {
    let (application, revision) = key.name().split_once(REVISION_SEPARATOR)?;
    (key.kind() == METADATA_KIND).then_some((key.namespace(), application, revision))
}

/// The key of a service definition.
pub fn definition(identifier: &str) -> Result<Key, MetadataError> {
    required("identifier", identifier)?;
    key(DEFINITION_KIND, DEFINITION_NAMESPACE, identifier, "identifier")
}

/// The prefix of the definitions whose identifier starts with `identifier` (may be empty: all).
pub fn definition_prefix(identifier: &str) -> Result<Prefix, MetadataError> {
    Prefix::name(DEFINITION_KIND, DEFINITION_NAMESPACE, identifier)
        .map_err(|e| MetadataError::from_key_error("identifier", e))
}

/// The key that says `application` serves `interface`.
pub fn mapping(namespace: &str, interface: &str, application: &str, field: &str) -> Result<Key, MetadataError> {
    checked_namespace(namespace)?;
    checked_application("application_name", application)?;
    checked_interface(field, interface)?;
    key(MAPPING_KIND, namespace, &format!("{interface}{MAPPING_SEPARATOR}{application}"), field)
}

/// The prefix of the applications serving `interface`.
pub fn mapping_prefix(namespace: &str, interface: &str) -> Result<Prefix, MetadataError> {
    checked_namespace(namespace)?;
    checked_interface("interface_name", interface)?;
    Prefix::name(MAPPING_KIND, namespace, &format!("{interface}{MAPPING_SEPARATOR}"))
        .map_err(|e| MetadataError::from_key_error("interface_name", e))
}

fn checked_interface(field: &str, interface: &str) -> Result<(), MetadataError> {
    required(field, interface)?;
    if interface.contains(MAPPING_SEPARATOR) {
        return Err(MetadataError::invalid(field, "must not contain '|'"));
    }
    Ok(())
}

/// `(namespace, interface, application)` of a mapping key.
pub fn parse_mapping(key: &Key) -> Option<(&str, &str, &str)> {
    let (interface, application) = key.name().rsplit_once(MAPPING_SEPARATOR)?;
    (key.kind() == MAPPING_KIND).then_some((key.namespace(), interface, application))
}

/// Who holds a lease: an application, or a service definition published without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeaseHolder {
    /// An application's lease, shared by everything it publishes.
    Application {
        /// The application's namespace.
        namespace: String,
        /// The application's name.
        application: String,
    },
    /// A service definition's own lease.
    Definition(String),
}

impl LeaseHolder {
    /// The key that remembers the holder's lease.
    pub fn key(&self) -> Result<Key, MetadataError> {
        match self {
            Self::Application { namespace, application } => {
                checked_namespace(namespace)?;
                checked_application("application_name", application)?;
                key(LEASE_KIND, namespace, application, "application_name")
            }
            Self::Definition(identifier) => key(
                LEASE_KIND,
                DEFINITION_NAMESPACE,
                &format!("definition{REVISION_SEPARATOR}{identifier}"),
                "identifier",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let key = metadata("dev", "shop", "a1b2").unwrap();
        assert_eq!(key.as_str(), "ServiceMetadata/dev/shop:a1b2");
        assert_eq!(parse_metadata(&key), Some(("dev", "shop", "a1b2")));
        assert!(metadata_prefix("dev", "shop").unwrap().contains(&key));
        assert!(!metadata_prefix("dev", "sho").unwrap().contains(&key));
        let key = mapping("dev", "org.example.Greeter", "shop", "interface_names[0]").unwrap();
        assert_eq!(parse_mapping(&key), Some(("dev", "org.example.Greeter", "shop")));
        assert!(mapping_prefix("dev", "org.example.Greeter").unwrap().contains(&key));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (metadata("", "shop", "r"), "namespace: must not be empty"),
            (metadata("a/b", "shop", "r"), "namespace: \"a/b\" must contain"),
            (metadata("dev", "", "r"), "application_name: must not be empty"),
            (metadata("dev", "a:b", "r"), "application_name: must not contain"),
            (metadata("dev", "shop", ""), "revision: must not be empty"),
            (metadata("dev", "shop", "r\n"), "revision: must not contain control"),
            (definition(""), "identifier: must not be empty"),
            (mapping("dev", "", "shop", "interface_names[1]"), "interface_names[1]: must not be empty"),
        ];
        for (result, want) in cases {
            let err = result.expect_err(want).to_string();
            assert!(err.starts_with(want), "{err} does not start with {want}");
        }
    }
}
