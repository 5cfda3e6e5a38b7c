//! References between documents: a FaultToleranceRule's strategies and fallback action.
//!
//! A reference to a document that does not exist is a **warning**, not an error: documents may be
//! applied in any order, so a rule is accepted before its strategies and waits for them (its status
//! is `waiting for RateLimitStrategy/foo`). [`check`] gives the warnings for one document about to
//! be written; [`unresolved`] lists every dangling reference of a set of stored documents.

use std::collections::HashSet;

use serde::Serialize;

use crate::spec::Spec;
use crate::{Document, FieldError, Kind};

/// A document, by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    /// `RateLimitStrategy/foo` (references never leave their namespace).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl Document {
    /// This document, as others refer to it.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef { kind: self.kind(), namespace: self.metadata.namespace.clone(), name: self.metadata.name.clone() }
    }

    /// The documents this one names, each with the field that names it (`spec.strategies[0]`).
    pub fn references(&self) -> Vec<(String, ObjectRef)> {
        let Spec::FaultToleranceRule(rule) = &self.spec else { return Vec::new() };
        let to =
            |kind, name: &str| ObjectRef { kind, namespace: self.metadata.namespace.clone(), name: name.to_owned() };
        let mut out: Vec<_> = rule
            .strategies
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("spec.strategies[{i}]"), to(s.kind, &s.name)))
            .collect();
        if let Some(action) = &rule.fallback_action {
            out.push(("spec.fallbackAction".to_owned(), to(action.kind, &action.name)));
        }
        out
    }
}

/// A reference to a document that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedReference {
    /// The document that refers.
    pub from: ObjectRef,
    /// Its field that refers: `spec.strategies[0]`.
    pub field: String,
    /// The missing document.
    pub to: ObjectRef,
}

impl UnresolvedReference {
    /// The referring document's status while it waits: `waiting for RateLimitStrategy/foo`.
    pub fn status(&self) -> String {
        format!("waiting for {}", self.to)
    }

    /// The warning given when the referring document is written.
    pub fn warning(&self) -> FieldError {
        FieldError::new(
            self.field.clone(),
            format!("{} does not exist in namespace {:?} (yet); the rule waits for it", self.to, self.to.namespace),
        )
    }
}

/// The warnings for `document` about to be written next to the `stored` ones (which may hold an
/// older version of it): one per reference to a document that does not exist.
pub fn check<'a>(document: &Document, stored: impl IntoIterator<Item = &'a Document>) -> Vec<FieldError> {
    let existing: HashSet<ObjectRef> = stored.into_iter().map(Document::object_ref).collect();
    let own = document.object_ref();
    document
        .references()
        .into_iter()
        .filter(|(_, to)| !existing.contains(to))
        .map(|(field, to)| UnresolvedReference { from: own.clone(), field, to }.warning())
        .collect()
}

/// Every reference, among `documents`, to a document not among them; in the documents' order.
pub fn unresolved<'a>(documents: impl IntoIterator<Item = &'a Document> + Clone) -> Vec<UnresolvedReference> {
    let existing: HashSet<ObjectRef> = documents.clone().into_iter().map(Document::object_ref).collect();
    documents
        .into_iter()
        .flat_map(|document| {
            let from = document.object_ref();
            document
                .references()
                .into_iter()
                .filter(|(_, to)| !existing.contains(to))
                .map(move |(field, to)| UnresolvedReference { from: from.clone(), field, to })
        })
        .collect()
}
