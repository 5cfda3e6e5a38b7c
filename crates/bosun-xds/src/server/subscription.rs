//! What one stream subscribed to for one type, and what it should therefore receive.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use crate::observer::Subscribed;
use crate::resource::TtlView;
use crate::snapshot::TypeResources;

/// The names a client asked for, with xDS wildcard semantics (DESIGN.md §2 item 6).
#[derive(Debug, Default)]
pub(crate) struct Subscription {
    /// The client receives every resource of the type.
    wildcard: bool,
    /// The wildcard comes from an empty first request (legacy wildcard); it lasts until the
    /// client names something.
    legacy: bool,
    names: HashSet<String>,
    /// Counts the changes of the subscription, so a selection knows whether it changed since.
    generation: u64,
}

/// What a State-of-the-World stream of a partial type (EDS, RDS) last sent: each resource's
/// version, and the set and subscription that was up to date with.
#[derive(Debug, Default)]
pub(crate) struct SentVersions {
    versions: HashMap<Arc<str>, u64>,
    /// The digest of the set and the generation of the subscription of the last selection.
    synced: Option<(u64, u64)>,
}

/// The resources a subscription selects from a set, ready to send.
pub(crate) struct Selection {
    /// Identifies the selected names and versions: equal digests mean equal content.
    pub digest: u64,
    pub chunks: Vec<Bytes>,
    pub count: usize,
}

impl Subscription {
    /// Applies the names of a request. `first` is the first request of this type on the
    /// stream; `legacy_allowed` whether an empty first request means wildcard for this type.
    /// Returns whether the subscription changed.
    pub fn update(&mut self, names: &[String], first: bool, legacy_allowed: bool) -> bool {
        if !names.is_empty() && self.names_the_same(names) {
            self.legacy = false;
            return false;
        }
        let old_wildcard = self.wildcard;
        let old_names = std::mem::take(&mut self.names);
        if names.is_empty() {
            if first {
                self.wildcard = legacy_allowed;
                self.legacy = legacy_allowed;
            } else if !self.legacy {
                self.wildcard = false;
            }
        } else {
            self.legacy = false;
            self.wildcard = names.iter().any(|n| n == "*");
            self.names = names.iter().filter(|n| *n != "*").cloned().collect();
        }
        let changed = old_wildcard != self.wildcard || old_names != self.names;
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// Whether `names` (not empty) is what the subscription already holds. A SotW client repeats
    /// every name in every ACK (10,000 endpoints names, say): this compares them without
    /// copying any.
    fn names_the_same(&self, names: &[String]) -> bool {
        if names.iter().any(|n| n == "*") != self.wildcard {
            return false;
        }
        let named: HashSet<&str> = names.iter().map(String::as_str).filter(|n| *n != "*").collect();
        named.len() == self.names.len() && named.iter().all(|n| self.names.contains(*n))
    }

    /// Changes whenever the subscription does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the subscription selects, for observers.
    pub fn subscribed(&self) -> Subscribed<'_> {
        if self.wildcard { Subscribed::All } else { Subscribed::Names(&self.names) }
    }

    /// Whether the client receives every resource of the type.
    #[cfg(test)]
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether the client asked for nothing at all.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        !self.wildcard && self.names.is_empty()
    }

    /// Selects what this subscription receives from `set`; `ttl_client`: the client receives
    /// resources with a TTL wrapped with it.
    pub fn select(&self, set: &TypeResources, ttl_client: bool) -> Selection {
        if self.wildcard {
            return Selection {
                digest: set.digest() ^ 0x9e37_79b9_7f4a_7c15,
                chunks: vec![TtlView::sotw_body(set, ttl_client).clone()],
                count: set.len(),
            };
        }
        let mut digest = 0u64;
        let mut chunks = Vec::with_capacity(self.names.len().min(set.len()));
        for name in &self.names {
            if let Some(r) = set.get(name) {
                digest = digest.wrapping_add(r.name_version_digest());
                chunks.push(r.sotw_entry_for(ttl_client).clone());
            }
        }
        let count = chunks.len();
        if count == set.len() && count > 1 {
            // The client asked for everything there is: send the body that is already built.
            chunks = vec![TtlView::sotw_body(set, ttl_client).clone()];
        }
        Selection { digest, chunks, count }
    }

    /// Whether the subscription selects a resource of `set` that has a TTL.
    pub fn selects_ttl(&self, set: &TypeResources) -> bool {
        set.ttl_view().resources().iter().any(|r| self.includes(r.name()))
    }

    /// The heartbeat of a partial type: the subscribed resources of `set` with a TTL whose
    /// version the client was sent (in `sent`), wrapped with their TTL. Its cost follows the
    /// resources with a TTL, not the set.
    pub fn select_ttl_sent(&self, set: &TypeResources, sent: &SentVersions) -> Selection {
        let chunks: Vec<Bytes> = set
            .ttl_view()
            .resources()
            .iter()
            .filter(|r| self.includes(r.name()) && sent.versions.get(r.name()) == Some(&r.name_version_digest()))
            .map(|r| r.sotw_entry_for(true).clone())
            .collect();
        Selection { digest: 0, count: chunks.len(), chunks }
    }
}

impl Subscription {
    /// Whether `name` is subscribed.
    fn includes(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// Selects the subscribed resources of `set` whose version differs from the one in `sent`
    /// (all subscribed resources when `all`), and records them in `sent` as sent. Names no longer
    /// subscribed or no longer in the set are forgotten, so they are sent again if they return.
    /// For types where a response may carry part of the subscribed set (EDS, RDS): an update
    /// costs the changed resources, not all of them. When the subscription is the same as at
    /// the last selection and `set` knows what changed since the set of that selection, only the
    /// changed names are looked at: O(changed), not O(subscribed).
    /// `ttl_client`: as in [`Self::select`].
    pub fn select_changed(
        &self,
        set: &TypeResources,
        sent: &mut SentVersions,
        all: bool,
        ttl_client: bool,
    ) -> Selection {
        let synced = sent.synced.replace((set.digest(), self.generation));
        let changed = match synced {
            Some((digest, generation)) if !all && generation == self.generation => {
                if digest == set.digest() {
                    Some(&[][..])
                } else {
                    set.changed_since(digest)
                }
            }
            _ => None,
        };
        let versions = &mut sent.versions;
        let mut chunks = Vec::new();
        let mut add = |r: &crate::resource::Resource, versions: &mut HashMap<Arc<str>, u64>| {
            let digest = r.name_version_digest();
            if all || versions.get(r.name()) != Some(&digest) {
                chunks.push(r.sotw_entry_for(ttl_client).clone());
                versions.insert(r.name_arc().clone(), digest);
            }
        };
        match changed {
            Some(names) => {
                for name in names.iter().filter(|name| self.includes(name)) {
                    match set.get(name) {
                        Some(r) => add(r, versions),
                        None => {
                            versions.remove(name);
                        }
                    }
                }
            }
            None => {
                versions.retain(|name, _| self.includes(name) && set.get(name).is_some());
                if self.wildcard {
                    set.iter().for_each(|r| add(r, versions));
                } else {
                    self.names.iter().filter_map(|n| set.get(n)).for_each(|r| add(r, versions));
                }
            }
        }
        let count = chunks.len();
        if count == set.len() && count > 1 {
            chunks = vec![TtlView::sotw_body(set, ttl_client).clone()];
        }
        Selection { digest: 0, chunks, count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn legacy_wildcard_until_names() {
        let mut s = Subscription::default();
        s.update(&[], true, true);
        assert!(s.is_wildcard());
        s.update(&[], false, true);
        assert!(s.is_wildcard(), "empty again keeps the legacy wildcard");
        s.update(&names(&["a"]), false, true);
        assert!(!s.is_wildcard(), "naming something ends the legacy wildcard");
        s.update(&[], false, true);
        assert!(s.is_empty(), "empty after names unsubscribes from all");
    }

    #[test]
    fn explicit_wildcard_mixes_with_names() {
        let mut s = Subscription::default();
        s.update(&names(&["*", "a"]), true, false);
        assert!(s.is_wildcard());
        assert!(s.update(&names(&["a"]), false, false));
        assert!(!s.is_wildcard());
    }

    #[test]
    fn a_partial_selection_looks_only_at_what_changed() {
        use crate::resource::{Resource, type_url};
        use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
        let cla = |name: &str, weight: u32| {
            Resource::new(&ClusterLoadAssignment {
                cluster_name: name.into(),
                endpoints: vec![Default::default(); weight as usize],
                ..Default::default()
            })
        };
        let first = TypeResources::new(type_url::ENDPOINT, [cla("a", 1), cla("b", 1), cla("c", 1)]);
        let mut s = Subscription::default();
        s.update(&names(&["a", "b", "c"]), true, false);
        let mut sent = SentVersions::default();
        assert_eq!(s.select_changed(&first, &mut sent, false, false).count, 3);
        // Forget "a" was sent: a full comparison would send it again, one over the changes not.
        sent.versions.remove("a");
        let second = first.updated([cla("b", 2)], []).expect("changed");
        let third = second.updated([], ["c"]).expect("changed");
        let selection = s.select_changed(&third, &mut sent, false, false);
        assert_eq!(selection.count, 1, "only \"b\" changed (\"c\" was removed)");
        assert!(!sent.versions.contains_key("c"), "a removed name is forgotten");
        // Nothing changed since: nothing selected.
        assert_eq!(s.select_changed(&third, &mut sent, false, false).count, 0);
        // A new subscription compares everything again, and finds "a" unsent.
        s.update(&names(&["a", "b"]), false, false);
        assert_eq!(s.select_changed(&third, &mut sent, false, false).count, 1);
    }

    #[test]
    fn repeated_names_leave_the_subscription_as_it_is() {
        let mut s = Subscription::default();
        assert!(s.update(&names(&["a", "b"]), true, false));
        let generation = s.generation;
        assert!(!s.update(&names(&["b", "a"]), false, false), "same names, another order");
        assert_eq!(s.generation, generation);
        assert!(s.update(&names(&["a", "a"]), false, false), "as many names, but \"b\" is gone");
        assert!(s.update(&names(&["a", "*"]), false, false), "a wildcard added");
        assert!(!s.update(&names(&["*", "a"]), false, false));
        assert!(s.update(&names(&["a", "c"]), false, false));
    }

    #[test]
    fn no_legacy_wildcard_for_named_types() {
        let mut s = Subscription::default();
        s.update(&[], true, false);
        assert!(s.is_empty());
    }
}
