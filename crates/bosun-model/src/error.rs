//! Errors: a document's problems, each with its field path.

use serde::Serialize;

/// A problem with one field of a document: `spec.threshold: must be >= 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path in the document, as `spec.http[0].route[1].weight`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A document that is not valid: every problem found, mostly in document order (checks that span
/// several fields come after those fields' own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid document: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid {
    /// The problems, never empty.
    pub errors: Vec<FieldError>,
}
