//! Leases: granted with a TTL, renewed to now + TTL, revoked or expired with all their keys in one
//! revision. Deadlines are wall-clock milliseconds in the file, so they mean the same after a
//! restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable};

use super::codec::{Change, LeaseRecord};
use super::engine::{self, Ctx, META_NEXT_LEASE, Tables};
use crate::error::{Result, StoreError};
use crate::types::{Lease, LeaseId, Revision};

/// The shortest TTL granted; shorter requests are rounded up.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// Wall-clock now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.max(MIN_LEASE_TTL).as_millis()).unwrap_or(u64::MAX / 4).min(u64::MAX / 4)
}

/// Grants a lease of `ttl` (at least [`MIN_LEASE_TTL`]); ids increase and are never reused.
pub(crate) fn grant(db: &Database, ttl: Duration, now_ms: u64) -> Result<Lease> {
    let ttl_ms = ttl_ms(ttl);
    let wtx = db.begin_write().ctx("begin a write")?;
    let id = {
        let mut t = Tables::open(&wtx)?;
        let id = engine::meta_get(&t.meta, META_NEXT_LEASE)?.max(1);
        t.meta.insert(META_NEXT_LEASE, id + 1).ctx("write meta")?;
        let record = LeaseRecord { ttl_ms, deadline_ms: now_ms.saturating_add(ttl_ms) };
        t.leases.insert(id, record.encode().as_slice()).ctx("write leases")?;
        t.deadlines.insert((record.deadline_ms, id), ()).ctx("write lease deadlines")?;
        id
    };
    wtx.commit().ctx("commit a lease grant")?;
    Ok(Lease { id: LeaseId(id), ttl: Duration::from_millis(ttl_ms) })
}

/// Renews a live lease to now + its TTL.
pub(crate) fn keep_alive(db: &Database, id: LeaseId, now_ms: u64) -> Result<Lease> {
    let wtx = db.begin_write().ctx("begin a write")?;
    let lease = {
        let mut t = Tables::open(&wtx)?;
        let Some(old) = t.live_lease(id.0, now_ms)? else {
            return Err(StoreError::LeaseNotFound(id.0));
        };
        let new = LeaseRecord { ttl_ms: old.ttl_ms, deadline_ms: now_ms.saturating_add(old.ttl_ms) };
        t.deadlines.remove((old.deadline_ms, id.0)).ctx("write lease deadlines")?;
        t.deadlines.insert((new.deadline_ms, id.0), ()).ctx("write lease deadlines")?;
        t.leases.insert(id.0, new.encode().as_slice()).ctx("write leases")?;
        Lease { id, ttl: Duration::from_millis(new.ttl_ms) }
    };
    wtx.commit().ctx("commit a lease renewal")?;
    Ok(lease)
}

/// Revokes a lease (live or expired but not yet reaped): deletes it and its keys, the keys in one
/// new revision (none if it had no keys). Returns that revision.
pub(crate) fn revoke(db: &Database, id: LeaseId, keep: i64) -> Result<Option<Revision>> {
    let wtx = db.begin_write().ctx("begin a write")?;
    let revision = {
        let mut t = Tables::open(&wtx)?;
        remove_lease(&mut t, id.0, keep)?
    };
    wtx.commit().ctx("commit a lease revocation")?;
    Ok(revision)
}

/// Expires the leases whose deadline is at or before `now_ms`, at most `max` of them, each with its
/// keys in one revision, all in one redb transaction. Returns the last revision written, if any.
pub(crate) fn expire_due(db: &Database, now_ms: u64, max: usize, keep: i64) -> Result<Option<Revision>> {
    // Most ticks find nothing due: look with a read first, which does not wait for writers.
    {
        let rtx = redb::ReadableDatabase::begin_read(db).ctx("begin a read")?;
        let deadlines = rtx.open_table(engine::LEASE_DEADLINES).ctx("open lease deadlines")?;
        match deadlines.first().ctx("read lease deadlines")? {
            Some((first, _)) if first.value().0 <= now_ms => {}
            _ => return Ok(None),
        }
    }
    let wtx = db.begin_write().ctx("begin a write")?;
    let mut last = None;
    {
        let mut t = Tables::open(&wtx)?;
        for _ in 0..max {
            let due = match t.deadlines.first().ctx("read lease deadlines")? {
                Some((first, _)) if first.value().0 <= now_ms => first.value().1,
                _ => break,
            };
            if let Some(revision) = remove_lease(&mut t, due, keep)? {
                last = Some(revision);
            }
            tracing::debug!(lease = due, "lease expired");
        }
    }
    wtx.commit().ctx("commit lease expiry")?;
    Ok(last)
}

/// Deletes lease `id` and its keys (one new revision if it had any).
fn remove_lease(t: &mut Tables<'_>, id: i64, keep: i64) -> Result<Option<Revision>> {
    let Some(bytes) = t.leases.remove(id).ctx("write leases")? else {
        return Err(StoreError::LeaseNotFound(id));
    };
    let lease = LeaseRecord::decode(bytes.value())?;
    drop(bytes);
    t.deadlines.remove((lease.deadline_ms, id)).ctx("write lease deadlines")?;
    let mut keys = Vec::new();
    for entry in t.lease_keys.range::<(i64, &str)>((id, "")..).ctx("scan lease keys")? {
        let (k, _) = entry.ctx("scan lease keys")?;
        let (lease, key) = k.value();
        if lease != id {
            break;
        }
        keys.push(key.to_owned());
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let revision = t.revision()? + 1;
    let mut changes = Vec::with_capacity(keys.len());
    for key in &keys {
        let parsed = engine::parse_key(key)?;
        if let Some(prev) = engine::current(&t.keys, &t.history, &parsed)? {
            t.delete(key, &prev, revision)?;
            changes.push((Change::Delete, key.as_str()));
        }
        t.lease_keys.remove((id, key.as_str())).ctx("write lease keys")?;
    }
    if changes.is_empty() {
        return Ok(None);
    }
    t.finish_revision(revision, &changes, keep)?;
    Ok(Some(revision))
}
