//! The metadata centre's error, and its gRPC status.

use bosun_store::StoreError;

/// What a metadata operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The request is malformed: `field` names the field, `reason` says why.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field (`namespace`, `metadata_info`, `interface_names[2]`).
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// Nothing is stored under the key asked for.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl MetadataError {
    /// A [`MetadataError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// Whether a store error about a key part means the request field `field` was bad: key parts
    /// come from request fields, so the store's validation error is reported against them.
    pub(crate) fn from_key_error(field: &str, error: StoreError) -> Self {
        match error {
            StoreError::InvalidArgument { reason, .. } => Self::invalid(field, reason),
            other => Self::Store(other),
        }
    }
}

impl From<MetadataError> for tonic::Status {
    fn from(error: MetadataError) -> Self {
        match &error {
            MetadataError::InvalidArgument { .. } => tonic::Status::invalid_argument(error.to_string()),
            MetadataError::NotFound(_) => tonic::Status::not_found(error.to_string()),
            MetadataError::Store(StoreError::InvalidArgument { .. }) => {
                tonic::Status::invalid_argument(error.to_string())
            }
            MetadataError::Store(StoreError::Unavailable(_)) => tonic::Status::unavailable(error.to_string()),
            MetadataError::Store(StoreError::Conflict { .. }) => tonic::Status::aborted(error.to_string()),
            MetadataError::Store(_) => tonic::Status::internal(error.to_string()),
        }
    }
}
