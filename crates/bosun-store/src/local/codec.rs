//! The byte layout of what the local store writes: key records (a value or a tombstone, with its
//! revisions) and the per-revision event lists.
//!
//! Little-endian integers, strings and byte strings prefixed by a `u32` length. The first byte of
//! every record is a format tag, so the layout can evolve.

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::key::Key;
use crate::types::{KeyValue, Labels, LeaseId, Revision, Value};

const TAG_TOMBSTONE: u8 = 0;
const TAG_PUT: u8 = 1;

/// A key's state as of one revision: its value, or the fact that it was deleted then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// The key was deleted at this revision.
    Tombstone,
    /// The key was written at this revision.
    Put { value: Value, create_revision: Revision, version: i64 },
}

impl Record {
    /// The record's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Self::Tombstone => vec![TAG_TOMBSTONE],
            Self::Put { value, create_revision, version } => Self::encode_put(value, *create_revision, *version),
        }
    }

    /// The bytes of a put's record, without building the record.
    pub(crate) fn encode_put(value: &Value, create_revision: Revision, version: i64) -> Vec<u8> {
        let labels: usize = value.labels.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut out = Vec::with_capacity(1 + 8 * 3 + 4 + labels + value.data.len());
        out.push(TAG_PUT);
        out.extend_from_slice(&create_revision.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&value.lease.map_or(0, |l| l.0).to_le_bytes());
        put_len(&mut out, value.labels.len());
        for (k, v) in &value.labels {
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, v.as_bytes());
        }
        out.extend_from_slice(&value.data);
        out
    }

    /// Decodes a record's bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, what: "record" };
        match r.u8()? {
            TAG_TOMBSTONE => Ok(Self::Tombstone),
            TAG_PUT => {
                let create_revision = r.i64()?;
                let version = r.i64()?;
                let lease = r.i64()?;
                let n = r.u32()? as usize;
                let mut labels = Labels::new();
                for _ in 0..n {
                    let k = r.string()?;
                    let v = r.string()?;
                    labels.insert(k, v);
                }
                let data = Bytes::copy_from_slice(r.bytes);
                let value = Value { data, labels, lease: (lease != 0).then_some(LeaseId(lease)) };
                Ok(Self::Put { value, create_revision, version })
            }
            tag => Err(corrupt("record", &format!("unknown tag {tag}"))),
        }
    }

    /// The key-value this record is for `key` written at `mod_revision` (`None` for a tombstone).
    pub(crate) fn into_kv(self, key: Key, mod_revision: Revision) -> Option<KeyValue> {
        match self {
            Self::Tombstone => None,
            Self::Put { value, create_revision, version } => {
                Some(KeyValue { key, value, create_revision, mod_revision, version })
            }
        }
    }
}

/// What kind of change an event of a revision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Put,
    Delete,
}

/// The changes of one revision: the keys, in the transaction's order. Values are read from the
/// history table at `(key, revision)`, so they are written once.
pub(crate) fn encode_changes<'a>(changes: impl ExactSizeIterator<Item = (Change, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, changes.len());
    for (change, key) in changes {
        out.push(match change {
            Change::Put => TAG_PUT,
            Change::Delete => TAG_TOMBSTONE,
        });
        put_bytes(&mut out, key.as_bytes());
    }
    out
}

/// Decodes the changes of one revision.
pub(crate) fn decode_changes(bytes: &[u8]) -> Result<Vec<(Change, String)>> {
    let mut r = Reader { bytes, what: "event list" };
    let n = r.u32()? as usize;
    let mut changes = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let change = match r.u8()? {
            TAG_PUT => Change::Put,
            TAG_TOMBSTONE => Change::Delete,
            tag => return Err(corrupt("event list", &format!("unknown change {tag}"))),
        };
        changes.push((change, r.string()?));
    }
    Ok(changes)
}

/// A lease as stored: its TTL and its deadline, both in milliseconds (the deadline since the Unix
/// epoch, wall-clock, so that it means the same after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseRecord {
    pub(crate) ttl_ms: u64,
    pub(crate) deadline_ms: u64,
}

impl LeaseRecord {
    pub(crate) fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ttl_ms.to_le_bytes());
        out[8..].copy_from_slice(&self.deadline_ms.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, what: "lease" };
        Ok(Self { ttl_ms: r.i64()? as u64, deadline_ms: r.i64()? as u64 })
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths are bounded by validation (1 MiB values, 1 KiB keys), far below u32::MAX.
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn corrupt(what: &str, reason: &str) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in the data file: {reason}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt(self.what, "truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn i64(&mut self) -> Result<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(self.what, "a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_changes_round_trip() {
        let value = Value::new("data").label("app", "x").label("tier", "").with_lease(LeaseId(7));
        let record = Record::Put { value, create_revision: 3, version: 2 };
        assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        assert_eq!(Record::decode(&Record::Tombstone.encode()).unwrap(), Record::Tombstone);
        let plain = Record::Put { value: Value::new(""), create_revision: 1, version: 1 };
        assert_eq!(Record::decode(&plain.encode()).unwrap(), plain);
        assert!(Record::decode(&record.encode()[..10]).is_err());
        assert!(Record::decode(&[9]).is_err());
        let changes = [(Change::Put, "A/b/c"), (Change::Delete, "A/b/d")];
        let decoded = decode_changes(&encode_changes(changes.iter().copied())).unwrap();
        assert_eq!(decoded, vec![(Change::Put, "A/b/c".to_owned()), (Change::Delete, "A/b/d".to_owned())]);
        let lease = LeaseRecord { ttl_ms: 1000, deadline_ms: 123_456 };
        assert_eq!(LeaseRecord::decode(&lease.encode()).unwrap(), lease);
    }
}
