//! Interface → application mappings as xDS resources, for consumers that subscribe over ADS (as
//! Pixiu's did with a custom type URL): one [`ServiceAppMapping`] per interface and namespace,
//! named `interface|namespace`.

use std::collections::{BTreeMap, BTreeSet};

use bosun_store::Key;
use prost::Message;

use crate::keys;
use crate::proto::bosun::metadata::v1::ServiceAppMapping;

/// The type URL of the mapping resources.
pub const MAPPING_TYPE_URL: &str = "type.googleapis.com/bosun.metadata.v1.ServiceAppMapping";

/// The resource name of an interface's mapping in a namespace.
pub fn resource_name(namespace: &str, interface: &str) -> String {
    format!("{interface}|{namespace}")
}

/// The mappings in the store, kept up to date from its keys, by (namespace, interface).
#[derive(Debug, Default)]
pub struct MappingIndex {
    applications: BTreeMap<(String, String), BTreeSet<String>>,
}

impl MappingIndex {
    /// Records a stored key; false when it is not a mapping key.
    pub fn put(&mut self, key: &Key) -> bool {
        let Some((namespace, interface, application)) = keys::parse_mapping(key) else { return false };
        let scope = (namespace.to_owned(), interface.to_owned());
        self.applications.entry(scope).or_default().insert(application.to_owned());
        true
    }

    /// Forgets a deleted key; false when it is not a mapping key.
    pub fn delete(&mut self, key: &Key) -> bool {
        let Some((namespace, interface, application)) = keys::parse_mapping(key) else { return false };
        let scope = (namespace.to_owned(), interface.to_owned());
        if let Some(applications) = self.applications.get_mut(&scope) {
            applications.remove(application);
            if applications.is_empty() {
                self.applications.remove(&scope);
            }
        }
        true
    }

    /// Every interface's mapping: its resource name and encoded [`ServiceAppMapping`].
    pub fn resources(&self) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
        self.applications.iter().map(|((namespace, interface), applications)| {
            let message = ServiceAppMapping {
                namespace: namespace.clone(),
                interface_name: interface.clone(),
                application_names: applications.iter().cloned().collect(),
            };
            (resource_name(namespace, interface), message.encode_to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_puts_and_deletes() {
        let mut index = MappingIndex::default();
        let shop = keys::mapping("dev", "org.example.Greeter", "shop", "i").unwrap();
        let cart = keys::mapping("dev", "org.example.Greeter", "cart", "i").unwrap();
        assert!(index.put(&shop) && index.put(&cart));
        assert!(!index.put(&keys::metadata("dev", "shop", "r").unwrap()));
        let resources: Vec<_> = index.resources().collect();
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].0, "org.example.Greeter|dev");
        let decoded = ServiceAppMapping::decode(resources[0].1.as_slice()).unwrap();
        assert_eq!(decoded.application_names, ["cart", "shop"]);
        assert!(index.delete(&shop) && index.delete(&cart));
        assert_eq!(index.resources().count(), 0);
    }
}
