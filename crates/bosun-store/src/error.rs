//! The store's one error type.

use crate::types::Revision;

/// What a store operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The request is malformed: `field` names what is wrong (`key.name`, `value`,
    /// `labels["app"]`, `ops[2].key`), `reason` says why. Nothing was written.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    /// A compare-and-swap precondition failed; nothing of the transaction was written.
    #[error("conflict on {key}: expected {expected}, found mod revision {actual}")]
    Conflict {
        key: String,
        /// What the op expected, in words (`mod revision 7`, `absent`).
        expected: String,
        /// The key's mod revision now (0: absent).
        actual: Revision,
    },

    /// The lease expired, was revoked, or never existed.
    #[error("lease {0:x} not found (expired or revoked)")]
    LeaseNotFound(i64),

    /// The revision asked for is older than the history kept (`compacted` is the oldest revision
    /// still readable minus one): list again.
    #[error("revision {requested} has been compacted (history starts after {compacted})")]
    Compacted { requested: Revision, compacted: Revision },

    /// The revision asked for is newer than the store's.
    #[error("revision {requested} is in the future (the store is at {current})")]
    FutureRevision { requested: Revision, current: Revision },

    /// The backend cannot be reached or refused the operation; it may work if tried again.
    #[error("store unavailable: {0}")]
    Unavailable(String),

    /// The backend failed in a way that retrying will not fix (corruption, a bug).
    #[error("store failure: {0}")]
    Internal(String),
}

impl StoreError {
    /// An [`StoreError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// The same error with its field path prefixed (`key.name` → `ops[2].key.name`).
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::InvalidArgument { field, reason } => {
                Self::InvalidArgument { field: format!("{prefix}.{field}"), reason }
            }
            other => other,
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
