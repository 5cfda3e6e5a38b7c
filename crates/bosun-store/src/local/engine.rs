//! The MVCC engine over redb: the tables, transactions and reads. Every function here blocks (it
//! runs redb transactions) and is called from `spawn_blocking`.
//!
//! Tables:
//! - `meta`: `revision` (the latest), `compacted` (history at and before it is gone), `next_lease`;
//! - `keys`: key → mod revision of its current value (absent: the key does not exist);
//! - `history`: (key, revision) → the key's [`Record`] written at that revision (a value or a
//!   tombstone). Every revision after `compacted` is here, plus the latest value of each key at
//!   `compacted`, so a read at any kept revision is exact;
//! - `events`: revision → the keys it changed, in order ([`codec::encode_changes`]);
//! - `leases`: id → TTL and wall-clock deadline; `lease_deadlines`: (deadline, id), to find the
//!   next to expire; `lease_keys`: (lease id, key), the keys attached to a lease.

use std::ops::Bound;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::codec::{self, Change, LeaseRecord, Record};
use crate::error::{Result, StoreError};
use crate::key::Key;
use crate::token::ContinueToken;
use crate::types::{Expect, KeyValue, ListOptions, ListPage, Op, Revision, TxnResult};

pub(crate) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
pub(crate) const KEYS: TableDefinition<&str, i64> = TableDefinition::new("keys");
pub(crate) const HISTORY: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("history");
pub(crate) const EVENTS: TableDefinition<i64, &[u8]> = TableDefinition::new("events");
pub(crate) const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
pub(crate) const LEASE_DEADLINES: TableDefinition<(u64, i64), ()> = TableDefinition::new("lease_deadlines");
pub(crate) const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";
pub(crate) const META_NEXT_LEASE: &str = "next_lease";

/// Maps redb's errors to the store's: I/O failures may pass ([`StoreError::Unavailable`]),
/// anything else will not ([`StoreError::Internal`]).
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| match e.into() {
            redb::Error::Io(io) => StoreError::Unavailable(format!("{what}: {io}")),
            other => StoreError::Internal(format!("{what}: {other}")),
        })
    }
}

/// Creates the tables of a new data file (opening them in a write transaction creates them);
/// returns the current revision.
pub(crate) fn init(db: &Database) -> Result<Revision> {
    let wtx = db.begin_write().ctx("begin the initial transaction")?;
    {
        let meta = wtx.open_table(META).ctx("open meta")?;
        wtx.open_table(KEYS).ctx("open keys")?;
        wtx.open_table(HISTORY).ctx("open history")?;
        wtx.open_table(EVENTS).ctx("open events")?;
        wtx.open_table(LEASES).ctx("open leases")?;
        wtx.open_table(LEASE_DEADLINES).ctx("open lease deadlines")?;
        wtx.open_table(LEASE_KEYS).ctx("open lease keys")?;
        drop(meta);
    }
    wtx.commit().ctx("commit the initial transaction")?;
    let rtx = db.begin_read().ctx("begin a read")?;
    let meta = rtx.open_table(META).ctx("open meta")?;
    meta_get(&meta, META_REVISION)
}

pub(crate) fn meta_get(meta: &impl ReadableTable<&'static str, i64>, name: &str) -> Result<i64> {
    Ok(meta.get(name).ctx("read meta")?.map(|v| v.value()).unwrap_or(0))
}

pub(crate) fn parse_key(key: &str) -> Result<Key> {
    Key::parse(key).map_err(|e| StoreError::Internal(format!("corrupt key {key:?} in the data file: {e}")))
}

/// The value of `key` at `revision` from the history table.
pub(crate) fn record_at(
    history: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    key: &str,
    revision: Revision,
) -> Result<Record> {
    match history.get((key, revision)).ctx("read history")? {
        Some(bytes) => Record::decode(bytes.value()),
        None => Err(StoreError::Internal(format!("history of {key} at revision {revision} is missing"))),
    }
}

/// The current value of `key`.
pub(crate) fn current(
    keys: &impl ReadableTable<&'static str, i64>,
    history: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    key: &Key,
) -> Result<Option<KeyValue>> {
    let Some(mod_revision) = keys.get(key.as_str()).ctx("read keys")?.map(|v| v.value()) else {
        return Ok(None);
    };
    Ok(record_at(history, key.as_str(), mod_revision)?.into_kv(key.clone(), mod_revision))
}

/// The current value of `key`.
pub(crate) fn get(db: &Database, key: &Key) -> Result<Option<KeyValue>> {
    let rtx = db.begin_read().ctx("begin a read")?;
    let keys = rtx.open_table(KEYS).ctx("open keys")?;
    let history = rtx.open_table(HISTORY).ctx("open history")?;
    current(&keys, &history, key)
}

/// The tables a write transaction changes.
pub(crate) struct Tables<'t> {
    pub(crate) meta: Table<'t, &'static str, i64>,
    pub(crate) keys: Table<'t, &'static str, i64>,
    pub(crate) history: Table<'t, (&'static str, i64), &'static [u8]>,
    pub(crate) events: Table<'t, i64, &'static [u8]>,
    pub(crate) leases: Table<'t, i64, &'static [u8]>,
    pub(crate) deadlines: Table<'t, (u64, i64), ()>,
    pub(crate) lease_keys: Table<'t, (i64, &'static str), ()>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(wtx: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            meta: wtx.open_table(META).ctx("open meta")?,
            keys: wtx.open_table(KEYS).ctx("open keys")?,
            history: wtx.open_table(HISTORY).ctx("open history")?,
            events: wtx.open_table(EVENTS).ctx("open events")?,
            leases: wtx.open_table(LEASES).ctx("open leases")?,
            deadlines: wtx.open_table(LEASE_DEADLINES).ctx("open lease deadlines")?,
            lease_keys: wtx.open_table(LEASE_KEYS).ctx("open lease keys")?,
        })
    }

    pub(crate) fn revision(&self) -> Result<Revision> {
        meta_get(&self.meta, META_REVISION)
    }

    pub(crate) fn compacted(&self) -> Result<Revision> {
        meta_get(&self.meta, META_COMPACTED)
    }

    /// The lease if it exists and has not expired by `now_ms`.
    pub(crate) fn live_lease(&self, id: i64, now_ms: u64) -> Result<Option<LeaseRecord>> {
        let Some(bytes) = self.leases.get(id).ctx("read leases")? else {
            return Ok(None);
        };
        let lease = LeaseRecord::decode(bytes.value())?;
        Ok((lease.deadline_ms > now_ms).then_some(lease))
    }

    /// Writes `key`'s deletion at `revision`; `prev` is its current value.
    pub(crate) fn delete(&mut self, key: &str, prev: &KeyValue, revision: Revision) -> Result<()> {
        if let Some(lease) = prev.value.lease {
            self.lease_keys.remove((lease.0, key)).ctx("write lease keys")?;
        }
        self.history.insert((key, revision), Record::Tombstone.encode().as_slice()).ctx("write history")?;
        self.keys.remove(key).ctx("write keys")?;
        Ok(())
    }

    /// Records a new revision with its changes and compacts if the history is longer than `keep`.
    pub(crate) fn finish_revision(&mut self, revision: Revision, changes: &[(Change, &str)], keep: i64) -> Result<()> {
        self.events.insert(revision, codec::encode_changes(changes.iter().copied()).as_slice()).ctx("write events")?;
        self.meta.insert(META_REVISION, revision).ctx("write meta")?;
        // Compact in steps, so that one write pays for at most a step's worth of history.
        let step = (keep / 10).clamp(1, 1000);
        let compacted = self.compacted()?;
        if revision - compacted > keep + step {
            super::history::compact_tables(self, revision - keep + 1)?;
        }
        Ok(())
    }
}

/// Applies validated transactions in one redb write transaction, so one commit (one fsync) serves
/// them all (group commit). Each gets its own revision and its own result: a failed precondition
/// or a missing lease fails only its transaction, which has written nothing by then. A storage
/// error fails them all. Returns the results and the last revision made, if any.
pub(crate) fn txn_group(
    db: &Database,
    group: &[&[Op]],
    now_ms: u64,
    keep: i64,
) -> Result<(Vec<Result<TxnResult>>, Option<Revision>)> {
    let wtx = db.begin_write().ctx("begin a write")?;
    let outcome = (|| {
        let mut t = Tables::open(&wtx)?;
        let mut results = Vec::with_capacity(group.len());
        let mut last = None;
        for ops in group {
            match apply(&mut t, ops, now_ms, keep) {
                Ok((result, changed)) => {
                    if changed {
                        last = Some(result.revision);
                    }
                    results.push(Ok(result));
                }
                Err(e @ (StoreError::Conflict { .. } | StoreError::LeaseNotFound(_))) => results.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok((results, last))
    })();
    match outcome {
        Ok((results, Some(revision))) => {
            wtx.commit().ctx("commit")?;
            Ok((results, Some(revision)))
        }
        Ok((results, None)) => {
            wtx.abort().ctx("abort")?;
            Ok((results, None))
        }
        Err(e) => {
            if let Err(abort) = wtx.abort() {
                tracing::warn!(error = %abort, "aborting a failed store transaction");
            }
            Err(e)
        }
    }
}

/// The transaction's result and whether it changed anything.
fn apply(t: &mut Tables<'_>, ops: &[Op], now_ms: u64, keep: i64) -> Result<(TxnResult, bool)> {
    let current_revision = t.revision()?;
    let mut prev = Vec::with_capacity(ops.len());
    for op in ops {
        let kv = current(&t.keys, &t.history, op.key())?;
        let actual = kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let expect: Expect = op.precondition();
        if !expect.holds(actual) {
            return Err(expect.conflict(op.key(), actual));
        }
        prev.push(kv);
    }
    for op in ops {
        if let Op::Put { value, .. } = op
            && let Some(lease) = value.lease
            && t.live_lease(lease.0, now_ms)?.is_none()
        {
            return Err(StoreError::LeaseNotFound(lease.0));
        }
    }
    let revision = current_revision + 1;
    let mut changes = Vec::with_capacity(ops.len());
    for (op, prev) in ops.iter().zip(&prev) {
        match op {
            Op::Put { key, value, .. } => {
                let key = key.as_str();
                let (create_revision, version) =
                    prev.as_ref().map_or((revision, 1), |p| (p.create_revision, p.version + 1));
                let old_lease = prev.as_ref().and_then(|p| p.value.lease);
                if old_lease != value.lease {
                    if let Some(old) = old_lease {
                        t.lease_keys.remove((old.0, key)).ctx("write lease keys")?;
                    }
                    if let Some(new) = value.lease {
                        t.lease_keys.insert((new.0, key), ()).ctx("write lease keys")?;
                    }
                }
                let record = Record::encode_put(value, create_revision, version);
                t.history.insert((key, revision), record.as_slice()).ctx("write history")?;
                t.keys.insert(key, revision).ctx("write keys")?;
                changes.push((Change::Put, key));
            }
            Op::Delete { key, .. } => {
                if let Some(prev) = prev {
                    t.delete(key.as_str(), prev, revision)?;
                    changes.push((Change::Delete, key.as_str()));
                }
            }
        }
    }
    if changes.is_empty() {
        return Ok((TxnResult { revision: current_revision, prev }, false));
    }
    t.finish_revision(revision, &changes, keep)?;
    Ok((TxnResult { revision, prev }, true))
}

/// One page of a list, at the current revision or the one of the continue token.
pub(crate) fn list(db: &Database, options: &ListOptions) -> Result<ListPage> {
    let token = match &options.continue_token {
        Some(token) => Some(ContinueToken::decode(token, &options.prefix)?),
        None => None,
    };
    let rtx = db.begin_read().ctx("begin a read")?;
    let meta = rtx.open_table(META).ctx("open meta")?;
    let keys = rtx.open_table(KEYS).ctx("open keys")?;
    let history = rtx.open_table(HISTORY).ctx("open history")?;
    let current_revision = meta_get(&meta, META_REVISION)?;
    let compacted = meta_get(&meta, META_COMPACTED)?;
    let revision = match &token {
        Some(token) if token.revision <= compacted => {
            return Err(StoreError::Compacted { requested: token.revision, compacted });
        }
        Some(token) if token.revision > current_revision => {
            return Err(StoreError::FutureRevision { requested: token.revision, current: current_revision });
        }
        Some(token) => token.revision,
        None => current_revision,
    };
    let prefix = options.prefix.as_str();
    let end = options.prefix.range_end();
    let limit = options.limit.filter(|&l| l > 0).map(|l| l as usize);
    let mut items: Vec<KeyValue> = Vec::new();
    // Takes a key's value if it matches; says whether the page is full (one more than the limit,
    // to know whether another page follows).
    let mut take = |key: &str, record: Record, mod_revision: Revision| -> Result<bool> {
        if let Record::Put { value, .. } = &record
            && options.selector.matches(&value.labels)
            && let Some(kv) = record.into_kv(parse_key(key)?, mod_revision)
        {
            items.push(kv);
        }
        Ok(limit.is_some_and(|l| items.len() > l))
    };

    if revision == current_revision {
        // The current revision: the keys table says which keys exist.
        let lower = match &token {
            Some(token) => Bound::Excluded(token.after.as_str()),
            None => Bound::Included(prefix),
        };
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        for entry in keys.range::<&str>((lower, upper)).ctx("scan keys")? {
            let (key, mod_revision) = entry.ctx("scan keys")?;
            let (key, mod_revision) = (key.value(), mod_revision.value());
            if take(key, record_at(&history, key, mod_revision)?, mod_revision)? {
                break;
            }
        }
    } else {
        // An older revision: each key's latest history entry at or before it.
        let lower = match &token {
            Some(token) => Bound::Excluded((token.after.as_str(), i64::MAX)),
            None => Bound::Included((prefix, i64::MIN)),
        };
        let upper = end.as_deref().map_or(Bound::Unbounded, |end| Bound::Excluded((end, i64::MIN)));
        let mut last: Option<(String, Revision)> = None;
        let mut full = false;
        for entry in history.range::<(&str, i64)>((lower, upper)).ctx("scan history")? {
            let (k, _) = entry.ctx("scan history")?;
            let (key, at) = k.value();
            if at > revision {
                continue;
            }
            match &mut last {
                Some((last_key, last_at)) if last_key == key => *last_at = at,
                _ => {
                    if let Some((key, at)) = last.take()
                        && take(&key, record_at(&history, &key, at)?, at)?
                    {
                        full = true;
                        break;
                    }
                    last = Some((key.to_owned(), at));
                }
            }
        }
        if let Some((key, at)) = last.take()
            && !full
        {
            take(&key, record_at(&history, &key, at)?, at)?;
        }
    }

    let mut continue_token = None;
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        if let Some(last) = items.last() {
            let token = ContinueToken { revision, after: last.key.as_str().to_owned(), prefix: prefix.to_owned() };
            continue_token = Some(token.encode());
        }
    }
    Ok(ListPage { items, revision, continue_token })
}
