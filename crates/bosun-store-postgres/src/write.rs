//! Writes: transactions, leases and compaction. Every write that makes a revision locks the
//! revision counter first and holds it until it commits (see the crate docs).

use std::collections::HashMap;
use std::time::Duration;

use bosun_store::{KeyValue, Lease, LeaseId, Op, Revision, StoreError, TxnResult};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::Shared;
use crate::error::db;
use crate::rows::{Change, encode_labels, key_value};
use crate::schema::q;

/// The longest lease TTL (etcd's): 9,000,000,000 seconds; longer ones are refused with
/// [`StoreError::InvalidArgument`].
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(9_000_000_000);

/// The current revision.
pub(crate) async fn current_revision(sh: &Shared) -> Result<Revision, StoreError> {
    sqlx::query_scalar(q(&sh.sql.revision)).fetch_one(&sh.pool).await.map_err(|e| db("reading the revision", e))
}

async fn begin(sh: &Shared) -> Result<Transaction<'static, Postgres>, StoreError> {
    sh.pool.begin().await.map_err(|e| db("starting a transaction", e))
}

/// Locks the revision counter until the transaction ends; returns the current revision.
async fn lock_revision(sh: &Shared, conn: &mut PgConnection) -> Result<Revision, StoreError> {
    sqlx::query_scalar(q(&sh.sql.lock_revision))
        .fetch_one(conn)
        .await
        .map_err(|e| db("locking the revision counter", e))
}

/// Applies `ops` (validated) all or nothing; returns the result and whether anything changed.
pub(crate) async fn txn(sh: &Shared, ops: &[Op]) -> Result<(TxnResult, bool), StoreError> {
    let mut tx = begin(sh).await?;
    let result = apply(sh, &mut tx, ops).await.map(|(result, changed)| ((result, changed), changed));
    finish(tx, result, "committing a transaction").await
}

/// Ends `tx`: commits when `result` is `Ok` and says to, else rolls back at once (so that the
/// locks it holds are released now, not when the connection is next used).
async fn finish<T>(
    tx: Transaction<'static, Postgres>,
    result: Result<(T, bool), StoreError>,
    what: &str,
) -> Result<T, StoreError> {
    match result {
        Ok((value, true)) => {
            tx.commit().await.map_err(|e| db(what, e))?;
            Ok(value)
        }
        Ok((value, false)) => {
            rollback(tx).await;
            Ok(value)
        }
        Err(e) => {
            rollback(tx).await;
            Err(e)
        }
    }
}

async fn rollback(tx: Transaction<'static, Postgres>) {
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "postgres store: rollback failed (the connection is dropped)");
    }
}

/// The body of [`txn`]; returns the result and whether it changed something (to commit).
async fn apply(sh: &Shared, tx: &mut PgConnection, ops: &[Op]) -> Result<(TxnResult, bool), StoreError> {
    let current = lock_revision(sh, &mut *tx).await?;
    let keys: Vec<&str> = ops.iter().map(|op| op.key().as_str()).collect();
    let rows = sqlx::query(q(&sh.sql.get_many))
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db("reading the transaction's keys", e))?;
    let mut existing = HashMap::with_capacity(rows.len());
    for row in &rows {
        let kv = key_value(row, "mod_revision")?;
        existing.insert(kv.key.as_str().to_owned(), kv);
    }
    let prev: Vec<Option<KeyValue>> = ops.iter().map(|op| existing.get(op.key().as_str()).cloned()).collect();
    for (op, prev) in ops.iter().zip(&prev) {
        let actual = prev.as_ref().map_or(0, |kv| kv.mod_revision);
        if !op.precondition().holds(actual) {
            return Err(op.precondition().conflict(op.key(), actual));
        }
    }
    let mut leases: Vec<i64> = ops
        .iter()
        .filter_map(|op| if let Op::Put { value, .. } = op { value.lease.map(|l| l.0) } else { None })
        .collect();
    if !leases.is_empty() {
        leases.sort_unstable();
        leases.dedup();
        let live: Vec<i64> = sqlx::query_scalar(q(&sh.sql.live_leases))
            .bind(&leases)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db("checking the transaction's leases", e))?;
        for op in ops {
            if let Op::Put { value: bosun_store::Value { lease: Some(id), .. }, .. } = op
                && !live.contains(&id.0)
            {
                return Err(StoreError::LeaseNotFound(id.0));
            }
        }
    }
    let revision = current + 1;
    let changes: Vec<Change> = ops
        .iter()
        .zip(&prev)
        .filter_map(|(op, prev)| match op {
            Op::Put { key, value, .. } => {
                let (create, version) = prev.as_ref().map_or((revision, 1), |kv| (kv.create_revision, kv.version + 1));
                Some(Change { key: key.as_str().to_owned(), value: Some((value.clone(), create, version)) })
            }
            Op::Delete { key, .. } => prev.as_ref().map(|_| Change { key: key.as_str().to_owned(), value: None }),
        })
        .collect();
    if changes.is_empty() {
        return Ok((TxnResult { revision: current, prev }, false));
    }
    record(sh, tx, revision, &changes).await?;
    Ok((TxnResult { revision, prev }, true))
}

/// Writes `changes` at `revision` (the counter is locked), in one statement: `kv`, `history`,
/// the counter, and the notification (sent by PostgreSQL when the transaction commits).
async fn record(
    sh: &Shared,
    conn: &mut PgConnection,
    revision: Revision,
    changes: &[Change],
) -> Result<(), StoreError> {
    let mut rows = Rows::with_capacity(changes.len());
    for change in changes {
        match &change.value {
            Some((value, create, version)) => rows.push(
                &change.key,
                false,
                &value.data,
                encode_labels(&value.labels),
                value.lease.map(|l| l.0),
                *create,
                *version,
            ),
            None => rows.push(&change.key, true, &[], "{}".to_owned(), None, 0, 0),
        }
    }
    let seqs: Vec<i32> = (0..changes.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
    sqlx::query(q(&sh.sql.record))
        .bind(revision)
        .bind(&rows.keys)
        .bind(&seqs)
        .bind(&rows.deleted)
        .bind(&rows.data)
        .bind(&rows.labels)
        .bind(&rows.leases)
        .bind(&rows.creates)
        .bind(&rows.versions)
        .bind(&sh.sql.channel)
        .execute(&mut *conn)
        .await
        .map_err(|e| db("writing the changes", e))?;
    Ok(())
}

/// Grants a lease of `ttl` rounded up to whole seconds, at least one.
pub(crate) async fn grant(sh: &Shared, ttl: Duration) -> Result<Lease, StoreError> {
    if ttl > MAX_LEASE_TTL {
        return Err(StoreError::invalid("ttl", format!("{ttl:?} is longer than the limit of {MAX_LEASE_TTL:?}")));
    }
    let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
    let ttl_ms = i64::try_from(secs * 1000).unwrap_or(i64::MAX);
    let id: i64 = sqlx::query_scalar(q(&sh.sql.grant))
        .bind(ttl_ms)
        .fetch_one(&sh.pool)
        .await
        .map_err(|e| db("granting a lease", e))?;
    Ok(Lease { id: LeaseId(id), ttl: Duration::from_secs(secs) })
}

/// Renews a live lease for its TTL.
pub(crate) async fn keep_alive(sh: &Shared, id: LeaseId) -> Result<Lease, StoreError> {
    let ttl_ms: Option<i64> = sqlx::query_scalar(q(&sh.sql.keep_alive))
        .bind(id.0)
        .fetch_optional(&sh.pool)
        .await
        .map_err(|e| db("renewing a lease", e))?;
    match ttl_ms {
        Some(ms) => Ok(Lease { id, ttl: Duration::from_millis(u64::try_from(ms).unwrap_or(0)) }),
        None => Err(StoreError::LeaseNotFound(id.0)),
    }
}

/// Deletes the keys of the locked lease `id` in one revision (none if it has no keys), and the
/// lease. Lock order: the lease row, then the revision counter (transactions take the counter
/// and only read leases, so this cannot deadlock with them).
async fn end_lease(sh: &Shared, conn: &mut PgConnection, id: i64) -> Result<Option<Revision>, StoreError> {
    let current = lock_revision(sh, conn).await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(q(&sh.sql.delete_lease_keys))
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db("deleting a lease's keys", e))?;
    sqlx::query(q(&sh.sql.delete_lease)).bind(id).execute(&mut *conn).await.map_err(|e| db("deleting a lease", e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut keys: Vec<String> = rows.into_iter().map(|(key, _)| key).collect();
    keys.sort_unstable();
    let changes: Vec<Change> = keys.into_iter().map(|key| Change { key, value: None }).collect();
    let revision = current + 1;
    record(sh, conn, revision, &changes).await?;
    Ok(Some(revision))
}

/// Revokes lease `id`; returns the revision that deleted its keys, if it had any.
pub(crate) async fn revoke(sh: &Shared, id: LeaseId) -> Result<Option<Revision>, StoreError> {
    let mut tx = begin(sh).await?;
    let result = async {
        let found: Option<i64> = sqlx::query_scalar(q(&sh.sql.lock_lease))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("locking a lease", e))?;
        if found.is_none() {
            return Err(StoreError::LeaseNotFound(id.0));
        }
        Ok((end_lease(sh, &mut tx, id.0).await?, true))
    }
    .await;
    finish(tx, result, "committing a lease revocation").await
}

/// Expires one due lease no other replica is expiring. `None`: none was due; else the revision
/// that deleted its keys, if it had any.
pub(crate) async fn expire_one(sh: &Shared) -> Result<Option<Option<Revision>>, StoreError> {
    let mut tx = begin(sh).await?;
    let result = async {
        let due: Option<i64> = sqlx::query_scalar(q(&sh.sql.lock_expired_lease))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("finding expired leases", e))?;
        let Some(id) = due else {
            return Ok((None, false));
        };
        let revision = end_lease(sh, &mut tx, id).await?;
        tracing::debug!(lease = id, ?revision, "lease expired");
        Ok((Some(revision), true))
    }
    .await;
    finish(tx, result, "committing a lease expiry").await
}

/// The current revision and the compaction revision (the oldest readable one; 0: none).
pub(crate) async fn state(sh: &Shared, conn: &mut PgConnection) -> Result<(Revision, Revision), StoreError> {
    sqlx::query_as(q(&sh.sql.state)).fetch_one(conn).await.map_err(|e| db("reading the store's state", e))
}

/// Forgets history before `revision`.
pub(crate) async fn compact(sh: &Shared, revision: Revision) -> Result<(), StoreError> {
    if revision <= 0 {
        return Ok(());
    }
    let mut tx = begin(sh).await?;
    let result = async {
        let compacted: Revision = sqlx::query_scalar(q(&sh.sql.lock_compaction))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("locking the compaction", e))?;
        let current: Revision = sqlx::query_scalar(q(&sh.sql.revision))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("reading the revision", e))?;
        if revision > current {
            return Err(StoreError::FutureRevision { requested: revision, current });
        }
        if revision <= compacted {
            return Ok((0, false));
        }
        sqlx::query(q(&sh.sql.set_compaction))
            .bind(revision)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("recording the compaction", e))?;
        let removed = sqlx::query(q(&sh.sql.compact_history))
            .bind(revision)
            .bind(compacted)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("compacting the history", e))?
            .rows_affected();
        Ok((removed, true))
    }
    .await;
    let removed = finish(tx, result, "committing a compaction").await?;
    if removed > 0 {
        tracing::info!(revision, removed, "compacted the history");
    }
    Ok(())
}

/// Column arrays for `UNNEST`.
struct Rows<'a> {
    keys: Vec<&'a str>,
    deleted: Vec<bool>,
    data: Vec<&'a [u8]>,
    labels: Vec<String>,
    leases: Vec<Option<i64>>,
    creates: Vec<i64>,
    versions: Vec<i64>,
}

impl<'a> Rows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: Vec::with_capacity(n),
            deleted: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            leases: Vec::with_capacity(n),
            creates: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        key: &'a str,
        deleted: bool,
        data: &'a [u8],
        labels: String,
        lease: Option<i64>,
        create: i64,
        version: i64,
    ) {
        self.keys.push(key);
        self.deleted.push(deleted);
        self.data.push(data);
        self.labels.push(labels);
        self.leases.push(lease);
        self.creates.push(create);
        self.versions.push(version);
    }
}
