//! The values the store takes and gives.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::StoreError;
use crate::key::{Key, Prefix};
use crate::selector::Selector;

/// A store revision: 0 before the first change, then +1 (at least) per changing transaction.
pub type Revision = i64;

/// Labels of a value, for selection (`app=reviews`).
pub type Labels = BTreeMap<String, String>;

/// A lease's id (etcd's lease id on the etcd backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub i64);

/// A granted or renewed lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// The TTL granted (a backend may round up what was asked).
    pub ttl: Duration,
}

/// What is written at a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    pub data: Bytes,
    pub labels: Labels,
    /// The key is deleted when this lease expires or is revoked.
    pub lease: Option<LeaseId>,
}

impl Value {
    /// A value with data only.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into(), ..Default::default() }
    }

    /// The same value with a label added.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The same value attached to a lease.
    pub fn with_lease(mut self, lease: LeaseId) -> Self {
        self.lease = Some(lease);
        self
    }
}

/// A key with its value and revisions, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Key,
    pub value: Value,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the key's last change: what [`Expect::ModRevision`] compares.
    pub mod_revision: Revision,
    /// Writes since creation: 1 after the first put.
    pub version: i64,
}

/// A compare-and-swap precondition on a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expect {
    /// No precondition.
    #[default]
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist with this mod revision.
    ModRevision(Revision),
}

impl Expect {
    /// Whether a key whose mod revision is `actual` (0: absent) meets this precondition.
    pub fn holds(self, actual: Revision) -> bool {
        match self {
            Self::Any => true,
            Self::Absent => actual == 0,
            Self::ModRevision(want) => actual == want && actual != 0,
        }
    }

    /// The conflict error for `key` whose mod revision is `actual`.
    pub fn conflict(self, key: &Key, actual: Revision) -> StoreError {
        let expected = match self {
            Self::Any => "anything".to_owned(),
            Self::Absent => "absent".to_owned(),
            Self::ModRevision(r) => format!("mod revision {r}"),
        };
        StoreError::Conflict { key: key.to_string(), expected, actual }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: Key, value: Value, expect: Expect },
    Delete { key: Key, expect: Expect },
}

impl Op {
    /// An unconditional put.
    pub fn put(key: Key, value: Value) -> Self {
        Self::Put { key, value, expect: Expect::Any }
    }

    /// An unconditional delete.
    pub fn delete(key: Key) -> Self {
        Self::Delete { key, expect: Expect::Any }
    }

    pub fn key(&self) -> &Key {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    pub fn precondition(&self) -> Expect {
        match self {
            Self::Put { expect, .. } | Self::Delete { expect, .. } => *expect,
        }
    }
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// The transaction's revision if it changed something, else the store's current revision.
    pub revision: Revision,
    /// Per op, the key's value before the transaction (`None`: it did not exist).
    pub prev: Vec<Option<KeyValue>>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: Prefix,
    pub selector: Selector,
    /// At most this many items per page (`None`: all).
    pub limit: Option<u32>,
    /// The token of the previous page, to read the next one at the same revision.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// In key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (every page of one list has the same).
    pub revision: Revision,
    /// Set when more items may follow: pass it back for the next page.
    pub continue_token: Option<String>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or replaced; `mod_revision` is the change's revision.
    Put(KeyValue),
    /// The key was deleted (by a delete, or by its lease's expiry or revocation) at `revision`.
    Delete { key: Key, revision: Revision },
}

impl Event {
    pub fn key(&self) -> &Key {
        match self {
            Self::Put(kv) => &kv.key,
            Self::Delete { key, .. } => key,
        }
    }

    pub fn revision(&self) -> Revision {
        match self {
            Self::Put(kv) => kv.mod_revision,
            Self::Delete { revision, .. } => *revision,
        }
    }
}

/// The changes of one or more whole revisions, in order: a transaction is never split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    pub events: Vec<Event>,
}

/// What [`crate::Store::watch`] returns. It ends only with an error (or when the store closes).
pub type WatchStream = BoxStream<'static, Result<WatchBatch, StoreError>>;
