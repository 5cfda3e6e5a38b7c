//! Continue tokens: where the next page of a list starts, and at which revision it reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::key::Prefix;
use crate::types::Revision;

/// The decoded form of a list's continue token. Opaque to clients; every backend uses this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    /// The revision every page of the list reads at.
    #[serde(rename = "r")]
    pub revision: Revision,
    /// The last key returned: the next page starts after it.
    #[serde(rename = "k")]
    pub after: String,
    /// The list's prefix, so a token is not used with another list.
    #[serde(rename = "p")]
    pub prefix: String,
}

impl ContinueToken {
    /// The token's string form.
    pub fn encode(&self) -> String {
        // Serializing a struct of strings and an integer cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes `token`, checking that it belongs to a list of `prefix`.
    pub fn decode(token: &str, prefix: &Prefix) -> Result<Self> {
        let invalid = || StoreError::invalid("continue", "not a continue token of this store");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if token.prefix != prefix.as_str() {
            return Err(StoreError::invalid("continue", "the token belongs to a list of another prefix"));
        }
        if token.revision < 0 || !token.after.starts_with(prefix.as_str()) {
            return Err(invalid());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_other_prefixes() {
        let prefix = Prefix::parse("Cluster/ns").unwrap();
        let token = ContinueToken { revision: 42, after: "Cluster/ns/b".into(), prefix: prefix.as_str().into() };
        assert_eq!(ContinueToken::decode(&token.encode(), &prefix).unwrap(), token);
        let other = Prefix::parse("Cluster/other").unwrap();
        assert!(ContinueToken::decode(&token.encode(), &other).unwrap_err().to_string().starts_with("continue: "));
        assert!(ContinueToken::decode("garbage!", &prefix).is_err());
    }
}
