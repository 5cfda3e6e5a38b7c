//! The governance documents and Services of the store, translated into Envoy resources per
//! namespace (by `bosun_translate`), and each document's status.
//!
//! A namespace is translated again only when one of its documents changes. Its resources go to
//! the node group of that namespace (`default`: every node), next to the raw Envoy documents of
//! the namespace; a raw resource of the same type and name as a translated one wins, so an
//! operator can override what the translation makes. Listeners and route tables are named by
//! port (`bosun_http_8080`), so on a namespace's nodes its own replace `default`'s of the same
//! port (as every resource of a namespace replaces `default`'s of its name).

use std::collections::{BTreeMap, BTreeSet};

use bosun_store::{Key, KeyValue};
use bosun_translate::{Options, Status};
use bosun_xds::Resource;
use parking_lot::RwLock;

use crate::documents;

/// Every governance document's status, by store key; shared by the snapshot source (which writes
/// it) and the API (which shows it with the documents).
#[derive(Debug, Default)]
pub struct GovernanceStatuses(RwLock<BTreeMap<Key, Status>>);

impl GovernanceStatuses {
    /// The status of the document stored at `key`, if it is a translated governance document.
    pub fn get(&self, key: &Key) -> Option<Status> {
        self.0.read().get(key).cloned()
    }

    /// A stored document as the API shows it ([`documents::render`]), with its `status` if it
    /// has one.
    pub fn render(&self, kv: &KeyValue) -> serde_json::Value {
        let mut rendered = documents::render(kv);
        if let (Some(status), Some(object)) = (self.get(&kv.key), rendered.as_object_mut()) {
            object.insert("status".to_owned(), serde_json::to_value(status).unwrap_or_default());
        }
        rendered
    }

    /// Every status, by `Kind/namespace/name`.
    pub fn all(&self) -> BTreeMap<String, Status> {
        self.0.read().iter().map(|(k, s)| (k.to_string(), s.clone())).collect()
    }

    pub(super) fn replace(&self, statuses: BTreeMap<Key, Status>) {
        *self.0.write() = statuses;
    }
}

/// One namespace: its documents and what they translated to.
#[derive(Default)]
struct Namespace {
    /// Stored documents, or why one could not be read.
    documents: BTreeMap<Key, Result<bosun_model::Document, String>>,
    resources: Vec<Resource>,
    statuses: BTreeMap<Key, Status>,
    /// Why the resources could not be encoded, if they could not.
    error: Option<String>,
}

/// The governance documents of the store, per namespace.
#[derive(Default)]
pub(super) struct Governance {
    namespaces: BTreeMap<String, Namespace>,
    /// Namespaces changed since the last translation.
    dirty: BTreeSet<String>,
    options: Options,
}

impl Governance {
    /// Takes a stored document; `false` if it is not a governance kind.
    pub(super) fn put(&mut self, kv: &KeyValue) -> bool {
        let Some(document) = documents::model_of(kv) else { return false };
        let namespace = kv.key.namespace().to_owned();
        self.namespaces.entry(namespace.clone()).or_default().documents.insert(kv.key.clone(), document);
        self.dirty.insert(namespace);
        true
    }

    /// Forgets a deleted document; `false` if it is not a governance kind.
    pub(super) fn delete(&mut self, key: &Key) -> bool {
        let Some(namespace) = self.namespaces.get_mut(key.namespace()) else { return false };
        if namespace.documents.remove(key).is_none() {
            return false;
        }
        self.dirty.insert(key.namespace().to_owned());
        true
    }

    /// Translates the namespaces that changed; returns every document's status.
    pub(super) fn translate(&mut self) -> BTreeMap<Key, Status> {
        for name in std::mem::take(&mut self.dirty) {
            let Some(namespace) = self.namespaces.get_mut(&name) else { continue };
            if namespace.documents.is_empty() {
                self.namespaces.remove(&name);
                continue;
            }
            let valid: Vec<bosun_model::Document> =
                namespace.documents.values().filter_map(|d| d.as_ref().ok().cloned()).collect();
            let output = bosun_translate::translate(&valid, &self.options);
            let (resources, error) = match output.resources() {
                Ok(resources) => (resources, None),
                // Keep serving what the namespace had.
                Err(e) => (
                    std::mem::take(&mut namespace.resources),
                    Some(format!("namespace {name:?}: encoding the translated resources: {e}")),
                ),
            };
            namespace.resources = resources;
            namespace.error = error;
            namespace.statuses = namespace
                .documents
                .iter()
                .filter_map(|(key, document)| {
                    let status = match document {
                        Err(why) => Status::Invalid { why: why.clone() },
                        Ok(document) => output.statuses.get(&document.object_ref())?.clone(),
                    };
                    Some((key.clone(), status))
                })
                .collect();
        }
        self.namespaces.values().flat_map(|n| n.statuses.iter().map(|(k, s)| (k.clone(), s.clone()))).collect()
    }

    /// The translated resources, per namespace.
    pub(super) fn resources(&self) -> impl Iterator<Item = (&str, &[Resource])> {
        self.namespaces.iter().map(|(name, n)| (name.as_str(), n.resources.as_slice()))
    }

    /// Why some namespace's resources could not be made, if so.
    pub(super) fn error(&self) -> Option<String> {
        let errors: Vec<&str> = self.namespaces.values().filter_map(|n| n.error.as_deref()).collect();
        (!errors.is_empty()).then(|| errors.join("\n"))
    }
}
