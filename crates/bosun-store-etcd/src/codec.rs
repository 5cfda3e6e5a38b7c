//! How Bosun's keys and values are laid out in etcd.
//!
//! - Key: the store's root prefix (default `/bosun/`) followed by `kind/namespace/name`, so several
//!   Bosun deployments can share one etcd under different roots.
//! - Value: an [`Envelope`], a protobuf message holding the value's data (field 1, bytes) and its
//!   labels (field 2, `map<string, string>`). Fields are only ever added, with new tags, so older
//!   Bosuns skip what they do not know.
//! - The lease is etcd's own lease of the key; the revisions are etcd's (`create_revision`,
//!   `mod_revision`, `version`, and the header revision for the store's revision).

use bosun_store::{Key, KeyValue, Labels, LeaseId, StoreError, Value};
use bytes::Bytes;
use prost::Message;

/// What Bosun writes as an etcd value.
///
/// ```proto
/// message Envelope {
///   bytes data = 1;
///   map<string, string> labels = 2;
/// }
/// ```
#[derive(Clone, PartialEq, Message)]
pub struct Envelope {
    /// The value's data.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    /// The value's labels.
    #[prost(btree_map = "string, string", tag = "2")]
    pub labels: Labels,
}

/// Encodes a value's data and labels (its lease is etcd's, not in the envelope).
pub fn encode_value(value: &Value) -> Vec<u8> {
    Envelope { data: value.data.clone(), labels: value.labels.clone() }.encode_to_vec()
}

/// The etcd key of `key` under `root`.
pub fn etcd_key(root: &str, key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(root.len() + key.as_str().len());
    out.extend_from_slice(root.as_bytes());
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

/// The smallest key greater than every key starting with `prefix` (etcd's prefix range end);
/// `[0]` (every key from the start key on) when there is none.
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The store key of an etcd key under `root`; `None` for a key that is not one of Bosun's (a
/// foreign key under the root is skipped, not fatal).
pub fn store_key(root: &str, etcd_key: &[u8]) -> Option<Key> {
    let rest = etcd_key.strip_prefix(root.as_bytes())?;
    let text = std::str::from_utf8(rest).ok()?;
    Key::parse(text).ok()
}

/// A store key-value from an etcd one whose key is `key`.
pub fn decode_kv(key: Key, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let envelope = Envelope::decode(kv.value())
        .map_err(|e| StoreError::Internal(format!("etcd value of {key} is not a Bosun envelope: {e}")))?;
    let lease = (kv.lease() != 0).then_some(LeaseId(kv.lease()));
    Ok(KeyValue {
        key,
        value: Value { data: envelope.data, labels: envelope.labels, lease },
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    })
}

/// Decodes an etcd key-value under `root`: `Ok(None)` for a key that is not Bosun's.
pub fn decode_any(root: &str, kv: &etcd_client::KeyValue) -> Result<Option<KeyValue>, StoreError> {
    match store_key(root, kv.key()) {
        Some(key) => decode_kv(key, kv).map(Some),
        None => {
            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "skipping a key under the root that is not kind/namespace/name");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let value = Value::new("data").label("app", "reviews").label("tier", "web");
        let envelope = Envelope::decode(encode_value(&value).as_slice()).unwrap();
        assert_eq!((envelope.data, envelope.labels), (value.data, value.labels));
        assert_eq!(Envelope::decode(&[][..]).unwrap(), Envelope::default(), "an empty value decodes");
    }

    #[test]
    fn keys_live_under_the_root() {
        let key = Key::new("Cluster", "default", "a/b").unwrap();
        let raw = etcd_key("/bosun/", &key);
        assert_eq!(raw, b"/bosun/Cluster/default/a/b");
        assert_eq!(store_key("/bosun/", &raw), Some(key));
        assert_eq!(store_key("/other/", &raw), None);
        assert_eq!(store_key("/bosun/", b"/bosun/garbage"), None);
        assert_eq!(range_end(b"/bosun/"), b"/bosun0");
        assert_eq!(range_end(b"a\xff\xff"), b"b");
        assert_eq!(range_end(b""), [0]);
    }
}
