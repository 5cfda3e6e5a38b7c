//! The client of a `transform` plugin.

use tonic::transport::Channel;

use crate::error::{PluginError, Result};
use crate::proto::bosun::transform_client::TransformClient as RawClient;
use crate::proto::bosun::{ConfigureRequest, TransformRequest, transform_response};

/// What a transform plugin did with a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformOutcome {
    /// The new document (JSON).
    Changed(Vec<u8>),
    /// The document is fine as it is.
    Unchanged,
    /// The document is refused, with a reason.
    Rejected(String),
}

/// Calls a transform plugin over a channel (from [`crate::Plugin::channel`] or
/// [`crate::PluginHost::channel`]).
#[derive(Debug, Clone)]
pub struct TransformClient {
    inner: RawClient<Channel>,
}

/// The largest answer accepted from a plugin.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl TransformClient {
    /// A client over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { inner: RawClient::new(channel).max_decoding_message_size(MAX_MESSAGE) }
    }

    /// Sends the plugin its configuration (JSON).
    pub async fn configure(&mut self, config_json: &str) -> Result<()> {
        self.inner.configure(ConfigureRequest { config_json: config_json.to_owned() }).await?;
        Ok(())
    }

    /// Transforms one resource.
    pub async fn transform(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        document_json: &[u8],
    ) -> Result<TransformOutcome> {
        let req = TransformRequest {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            document_json: document_json.to_vec(),
        };
        let resp = self.inner.transform(req).await?.into_inner();
        match resp.result {
            Some(transform_response::Result::ChangedJson(doc)) => {
                serde_json::from_slice::<serde_json::Value>(&doc)
                    .map_err(|e| PluginError::InvalidAnswer(format!("changed document is not JSON: {e}")))?;
                Ok(TransformOutcome::Changed(doc))
            }
            Some(transform_response::Result::Unchanged(_)) => Ok(TransformOutcome::Unchanged),
            Some(transform_response::Result::RejectedReason(r)) => Ok(TransformOutcome::Rejected(r)),
            None => Err(PluginError::InvalidAnswer("empty transform result".to_owned())),
        }
    }
}
