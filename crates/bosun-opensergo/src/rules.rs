//! The rules served, per (namespace, application, kind), encoded once, with versions that only
//! grow per key.
//!
//! A key's version is the store revision of its last change, raised when needed so that it is
//! always above the key's previous version: lists of several kinds are read at different
//! revisions, and a key nobody wrote has the version of the last list (so that a client that
//! saw it empty before a restart does not take the next version for an old one).

use std::collections::{BTreeMap, HashMap};

use bosun_model::spec::Spec;
use bosun_model::{Document, Kind, Metadata};
use bosun_store::{Event, Key, KeyValue, Revision};
use prost_types::Any;
use serde::Serialize;

use crate::convert;

/// What a client subscribes to: the rules of one kind for one application of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RuleKey {
    /// The namespace.
    pub namespace: String,
    /// The application (`app` label, else `spec.selector.app`).
    pub app: String,
    /// The kind.
    pub kind: Kind,
}

/// The rules of one key.
#[derive(Debug, Clone, PartialEq, Default)]
struct Entry {
    version: i64,
    /// By document name, so that the order on the wire is stable.
    data: BTreeMap<String, Any>,
}

/// One stored document, as served.
#[derive(Debug, Clone, PartialEq)]
struct Served {
    key: RuleKey,
    name: String,
    data: Any,
}

/// Every served rule, and why the documents that are not served are not.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    entries: HashMap<RuleKey, Entry>,
    /// The store keys served, and where.
    documents: HashMap<Key, Served>,
    /// Stored governance documents not served, with why.
    errors: BTreeMap<Key, String>,
    /// The version of a key without an entry: the revision of the last list.
    baseline: Revision,
}

impl Rules {
    /// The version and rules of `key`, in document name order.
    pub(crate) fn get(&self, key: &RuleKey) -> (i64, Vec<Any>) {
        match self.entries.get(key) {
            Some(entry) => (entry.version, entry.data.values().cloned().collect()),
            None => (self.baseline, Vec::new()),
        }
    }

    /// How many documents are served.
    pub(crate) fn served(&self) -> usize {
        self.documents.len()
    }

    /// The stored documents not served, with why.
    pub(crate) fn errors(&self) -> &BTreeMap<Key, String> {
        &self.errors
    }

    fn version_of(&self, key: &RuleKey) -> i64 {
        self.entries.get(key).map_or(self.baseline, |e| e.version)
    }

    /// Replaces every rule by a list of the store read at `revision` (at most); returns the keys
    /// whose rules changed.
    pub(crate) fn replace_all(&mut self, items: &[KeyValue], revision: Revision) -> Vec<RuleKey> {
        let baseline = revision.max(self.baseline);
        let mut fresh = Rules { baseline, ..Default::default() };
        for kv in items {
            fresh.insert(kv);
        }
        let mut changed = Vec::new();
        for (key, entry) in &mut fresh.entries {
            match self.entries.get(key) {
                Some(old) if old.data == entry.data => entry.version = old.version,
                _ => {
                    entry.version = next_version(self.version_of(key), baseline);
                    changed.push(key.clone());
                }
            }
        }
        for (key, old) in &self.entries {
            if fresh.entries.contains_key(key) {
                continue;
            }
            if !old.data.is_empty() {
                // Gone: served empty from now on, with a version above the old one.
                let version = next_version(old.version, baseline);
                fresh.entries.insert(key.clone(), Entry { version, data: BTreeMap::new() });
                changed.push(key.clone());
            } else if old.version > baseline {
                // Still empty, but the baseline would take its version back.
                fresh.entries.insert(key.clone(), old.clone());
            }
        }
        *self = fresh;
        changed.sort();
        changed
    }

    /// Applies one change; returns the keys whose rules changed (none, one, or two when a
    /// document moved to another application).
    pub(crate) fn apply(&mut self, event: &Event) -> Vec<RuleKey> {
        let revision = event.revision();
        let mut touched = Vec::new();
        if let Some(old) = self.remove(event.key()) {
            touched.push(old);
        }
        if let Event::Put(kv) = event
            && let Some(key) = self.insert(kv)
            && !touched.contains(&key)
        {
            touched.push(key);
        }
        for key in &touched {
            let version = next_version(self.version_of(key), revision);
            self.entries.entry(key.clone()).or_default().version = version;
        }
        touched
    }

    /// Removes a stored document; returns the key it was served under.
    fn remove(&mut self, store_key: &Key) -> Option<RuleKey> {
        self.errors.remove(store_key);
        let served = self.documents.remove(store_key)?;
        if let Some(entry) = self.entries.get_mut(&served.key) {
            entry.data.remove(&served.name);
        }
        Some(served.key)
    }

    /// Adds a stored document (a version of 0 for a new key is set by the caller); returns the
    /// key it is served under, if it is.
    fn insert(&mut self, kv: &KeyValue) -> Option<RuleKey> {
        match served(kv)? {
            Ok(served) => {
                let key = served.key.clone();
                let baseline = self.baseline;
                let entry = self
                    .entries
                    .entry(key.clone())
                    .or_insert_with(|| Entry { version: baseline, ..Default::default() });
                entry.data.insert(served.name.clone(), served.data.clone());
                self.documents.insert(kv.key.clone(), served);
                Some(key)
            }
            Err(error) => {
                self.errors.insert(kv.key.clone(), error);
                None
            }
        }
    }
}

/// The version after `previous` for a change at `revision`.
fn next_version(previous: i64, revision: Revision) -> i64 {
    revision.max(previous + 1)
}

/// How a stored document is served; `None` if it is not a governance document.
fn served(kv: &KeyValue) -> Option<Result<Served, String>> {
    let kind = Kind::from_name(kv.key.kind())?;
    if !convert::served(kind) {
        return None;
    }
    Some(document(kind, kv).and_then(|doc| {
        let app = doc.app().ok_or_else(|| {
            "not bound to an application (no `app` label and no spec.selector.app): not served to OpenSergo".to_owned()
        })?;
        let key = RuleKey { namespace: kv.key.namespace().to_owned(), app: app.to_owned(), kind };
        let data = convert::to_any(&doc).map_err(|e| e.to_string())?;
        Ok(Served { key, name: kv.key.name().to_owned(), data })
    }))
}

/// The typed document of a stored governance key (its value is the spec's JSON).
pub(crate) fn document(kind: Kind, kv: &KeyValue) -> Result<Document, String> {
    let spec = serde_json::from_slice(&kv.value.data).map_err(|e| format!("stored JSON: {e}"))?;
    let spec = Spec::parse(kind, spec).map_err(|e| e.to_string())?;
    let metadata = Metadata {
        name: kv.key.name().to_owned(),
        namespace: kv.key.namespace().to_owned(),
        labels: kv.value.labels.clone(),
        resource_version: None,
    };
    Ok(Document { metadata, spec })
}

#[cfg(test)]
mod tests {
    use bosun_store::Value;

    use super::*;

    fn kv(name: &str, app: &str, threshold: u64, revision: Revision) -> KeyValue {
        let spec = serde_json::json!({"metricType": "RequestAmount", "limitMode": "Local", "threshold": threshold, "statDurationSeconds": 1});
        KeyValue {
            key: Key::new("RateLimitStrategy", "shop", name).expect("key"),
            value: Value::new(spec.to_string()).label("app", app),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        }
    }

    fn key(app: &str) -> RuleKey {
        RuleKey { namespace: "shop".into(), app: app.into(), kind: Kind::RateLimitStrategy }
    }

    #[test]
    fn versions_grow_with_every_change_and_documents_follow_their_app() {
        let mut rules = Rules::default();
        assert_eq!(rules.replace_all(&[kv("a", "cart", 1, 3)], 5), [key("cart")]);
        assert_eq!(rules.get(&key("cart")).0, 5);
        assert_eq!(rules.get(&key("orders")), (5, vec![]), "an unknown key has the list's version");

        assert_eq!(rules.apply(&Event::Put(kv("b", "cart", 2, 6))), [key("cart")]);
        let (version, data) = rules.get(&key("cart"));
        assert_eq!((version, data.len()), (6, 2));

        // Moving a document to another app changes both keys.
        assert_eq!(rules.apply(&Event::Put(kv("b", "orders", 2, 7))), [key("cart"), key("orders")]);
        assert_eq!(rules.get(&key("cart")).1.len(), 1);
        assert_eq!(rules.get(&key("orders")).0, 7);

        // A change at an older revision (a kind listed later than another) still raises the version.
        assert_eq!(rules.apply(&Event::Delete { key: kv("a", "cart", 0, 0).key, revision: 4 }), [key("cart")]);
        assert_eq!(rules.get(&key("cart")), (8, vec![]));
        assert_eq!(rules.served(), 1);
    }

    #[test]
    fn a_relist_changes_the_versions_of_what_changed_only() {
        let mut rules = Rules::default();
        rules.replace_all(&[kv("a", "cart", 1, 3), kv("b", "orders", 1, 4)], 10);
        // After a compaction: cart unchanged, orders changed, pay new, and a key that vanished.
        rules.apply(&Event::Put(kv("c", "gone", 1, 11)));
        let changed = rules.replace_all(&[kv("a", "cart", 1, 3), kv("b", "orders", 2, 15), kv("d", "pay", 1, 16)], 20);
        assert_eq!(changed, [key("gone"), key("orders"), key("pay")]);
        assert_eq!(rules.get(&key("cart")).0, 10, "unchanged keeps its version");
        assert_eq!(rules.get(&key("orders")).0, 20);
        assert_eq!(rules.get(&key("gone")), (20, vec![]));
        assert_eq!(rules.get(&key("pay")).0, 20);
    }

    #[test]
    fn documents_not_served_say_why() {
        let mut rules = Rules::default();
        let mut unbound = kv("a", "cart", 1, 2);
        unbound.value.labels.clear();
        let mut broken = kv("b", "cart", 1, 3);
        broken.value.data = "{\"threshold\": -1}".into();
        let lane = KeyValue { key: Key::new("TrafficLane", "shop", "l").expect("key"), ..kv("l", "cart", 1, 4) };
        assert!(rules.replace_all(&[unbound, broken, lane], 4).is_empty());
        let errors: Vec<_> = rules.errors().iter().map(|(k, e)| (k.name().to_owned(), e.clone())).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].1.contains("not bound to an application"), "{errors:?}");
        assert!(errors[1].1.contains("spec."), "{errors:?}");
        assert_eq!(rules.served(), 0);
    }
}
