//! History: reading the event log for watches, and compacting it.

use std::ops::Bound;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::codec::{self, Change};
use super::engine::{self, Ctx, EVENTS, HISTORY, META, META_COMPACTED, META_REVISION, Tables};
use crate::error::{Result, StoreError};
use crate::key::Prefix;
use crate::types::{Event, Revision, WatchBatch};

/// At most this many revisions are read per step of a watch.
const WATCH_STEP_REVISIONS: usize = 256;
/// A step of a watch stops after the revision that brings it past this many events...
const WATCH_STEP_EVENTS: usize = 4096;
/// ... or past this many bytes of values, so that a watcher holds little in memory.
const WATCH_STEP_BYTES: usize = 4 << 20;

/// What one step of a watch read.
pub(crate) struct WatchRead {
    /// The changes under the prefix, one batch per revision that has some.
    pub(crate) batches: Vec<WatchBatch>,
    /// The next revision to read.
    pub(crate) next: Revision,
    /// Whether more history may be ready to read (the step stopped at its bounds).
    pub(crate) more: bool,
}

/// The changes under `prefix` from revision `from` on, in bounded steps.
pub(crate) fn read_events(db: &Database, prefix: &Prefix, from: Revision) -> Result<WatchRead> {
    let rtx = db.begin_read().ctx("begin a read")?;
    let meta = rtx.open_table(META).ctx("open meta")?;
    let events = rtx.open_table(EVENTS).ctx("open events")?;
    let history = rtx.open_table(HISTORY).ctx("open history")?;
    let current = engine::meta_get(&meta, META_REVISION)?;
    let compacted = engine::meta_get(&meta, META_COMPACTED)?;
    if from <= compacted {
        return Err(StoreError::Compacted { requested: from, compacted });
    }
    let mut batches = Vec::new();
    let (mut revisions, mut total, mut bytes) = (0usize, 0usize, 0usize);
    let mut next = from.max(current + 1);
    for entry in events.range(from..=current).ctx("scan events")? {
        let (revision, changes) = entry.ctx("scan events")?;
        let revision = revision.value();
        let mut batch = Vec::new();
        for (change, key) in codec::decode_changes(changes.value())? {
            if !key.starts_with(prefix.as_str()) {
                continue;
            }
            let parsed = engine::parse_key(&key)?;
            batch.push(match change {
                Change::Delete => Event::Delete { key: parsed, revision },
                Change::Put => match engine::record_at(&history, &key, revision)?.into_kv(parsed, revision) {
                    Some(kv) => {
                        bytes += kv.value.data.len();
                        Event::Put(kv)
                    }
                    None => {
                        return Err(StoreError::Internal(format!(
                            "history of {key} at revision {revision} is a tombstone, the event a put"
                        )));
                    }
                },
            });
        }
        total += batch.len();
        revisions += 1;
        if !batch.is_empty() {
            batches.push(WatchBatch { events: batch });
        }
        let full = revisions >= WATCH_STEP_REVISIONS || total >= WATCH_STEP_EVENTS || bytes >= WATCH_STEP_BYTES;
        if full && revision < current {
            next = revision + 1;
            return Ok(WatchRead { batches, next, more: true });
        }
        next = next.max(revision + 1);
    }
    Ok(WatchRead { batches, next, more: false })
}

/// Forgets the history before `revision` (explicit compaction); a no-op if already compacted.
pub(crate) fn compact(db: &Database, revision: Revision) -> Result<()> {
    let wtx = db.begin_write().ctx("begin a write")?;
    {
        let mut t = Tables::open(&wtx)?;
        let current = t.revision()?;
        if revision > current {
            return Err(StoreError::FutureRevision { requested: revision, current });
        }
        if revision <= t.compacted()? + 1 {
            return Ok(());
        }
        compact_tables(&mut t, revision)?;
    }
    wtx.commit().ctx("commit a compaction")
}

/// Forgets the history before `revision`: the events of those revisions, and every history entry
/// that no read at `revision` or later needs (a key's older values and its tombstones).
pub(crate) fn compact_tables(t: &mut Tables<'_>, revision: Revision) -> Result<()> {
    let compacted = t.compacted()?;
    let new_compacted = revision - 1;
    if new_compacted <= compacted {
        return Ok(());
    }
    let mut removed = 0usize;
    loop {
        // One revision at a time, so that nothing is borrowed from the tables being changed.
        let Some((at, changes)) = (match t.events.first().ctx("read events")? {
            Some((at, changes)) if at.value() <= new_compacted => {
                Some((at.value(), codec::decode_changes(changes.value())?))
            }
            _ => None,
        }) else {
            break;
        };
        for (change, key) in changes {
            let key = key.as_str();
            let newer = {
                let mut range = t
                    .history
                    .range::<(&str, i64)>((Bound::Excluded((key, at)), Bound::Included((key, i64::MAX))))
                    .ctx("scan history")?;
                match range.next() {
                    Some(entry) => Some(entry.ctx("scan history")?.0.value().1),
                    None => None,
                }
            };
            // Needed at `revision` only if it is the key's latest value before it.
            let superseded = newer.is_some_and(|newer| newer <= new_compacted);
            if superseded || change == Change::Delete {
                t.history.remove((key, at)).ctx("compact history")?;
                removed += 1;
            }
        }
        t.events.remove(at).ctx("compact events")?;
    }
    t.meta.insert(META_COMPACTED, new_compacted).ctx("write meta")?;
    tracing::debug!(compacted = new_compacted, removed, "compacted the store's history");
    Ok(())
}
