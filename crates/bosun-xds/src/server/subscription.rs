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
        old_wildcard != self.wildcard || old_names != self.names
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
    pub fn select_ttl_sent(&self, set: &TypeResources, sent: &HashMap<Arc<str>, u64>) -> Selection {
        let chunks: Vec<Bytes> = set
            .ttl_view()
            .resources()
            .iter()
            .filter(|r| self.includes(r.name()) && sent.get(r.name()) == Some(&r.name_version_digest()))
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
    /// costs the changed resources, not all of them. `ttl_client`: as in [`Self::select`].
    pub fn select_changed(
        &self,
        set: &TypeResources,
        sent: &mut HashMap<Arc<str>, u64>,
        all: bool,
        ttl_client: bool,
    ) -> Selection {
        sent.retain(|name, _| self.includes(name) && set.get(name).is_some());
        let mut chunks = Vec::new();
        let mut add = |r: &crate::resource::Resource| {
            let digest = r.name_version_digest();
            if all || sent.get(r.name()) != Some(&digest) {
                chunks.push(r.sotw_entry_for(ttl_client).clone());
                sent.insert(r.name_arc().clone(), digest);
            }
        };
        if self.wildcard {
            set.iter().for_each(&mut add);
        } else {
            self.names.iter().filter_map(|n| set.get(n)).for_each(&mut add);
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
    fn no_legacy_wildcard_for_named_types() {
        let mut s = Subscription::default();
        s.update(&[], true, false);
        assert!(s.is_empty());
    }
}
