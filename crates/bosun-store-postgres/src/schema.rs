//! The tables, created and migrated at connect, and the SQL statements over them.
//!
//! Everything lives in one PostgreSQL schema (`bosun` by default), so several stores (or other
//! applications) can share a database:
//! - `revision`: one row, the global revision counter. Every writing transaction locks it first
//!   (`SELECT ... FOR UPDATE`) and holds the lock until it commits, so writers of every replica
//!   serialize and commit in revision order.
//! - `compaction`: one row, the oldest revision still readable (0: nothing compacted).
//! - `kv`: the current value of every live key.
//! - `history`: every change, `(key, revision)` → value or tombstone, for lists at a revision and
//!   watches. Compaction removes the changes superseded at the compaction revision.
//! - `lease`: leases with their deadline in database time, so expiry survives restarts.
//! - `schema_version`: which migrations ran.

use std::sync::Arc;

use bosun_store::StoreError;
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::db;

/// The schema version this code creates and reads.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Checks a schema name: 1-48 lowercase ASCII letters, digits and `_`, not starting with a digit
/// (it is quoted into SQL and names the notification channel).
pub(crate) fn check_schema_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "schema",
            format!("{name:?} must be 1-48 of a-z, 0-9 and _, not starting with a digit"),
        ))
    }
}

/// A statement, cheap to clone into a query.
pub(crate) type Stmt = Arc<str>;

/// Wraps a statement for sqlx (the schema name in it was checked by [`check_schema_name`]).
pub(crate) fn q(stmt: &Stmt) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(stmt.clone())
}

/// The statements of one schema.
#[derive(Debug)]
pub(crate) struct Sql {
    /// The channel writers notify with the new revision.
    pub channel: String,
    pub state: Stmt,
    pub revision: Stmt,
    pub lock_revision: Stmt,
    pub get: Stmt,
    pub get_many: Stmt,
    pub live_leases: Stmt,
    pub record: Stmt,
    pub list: Stmt,
    pub list_current: Stmt,
    pub watch: Stmt,
    pub watch_one: Stmt,
    pub grant: Stmt,
    pub keep_alive: Stmt,
    pub lock_lease: Stmt,
    pub lock_expired_lease: Stmt,
    pub delete_lease: Stmt,
    pub delete_lease_keys: Stmt,
    pub lock_compaction: Stmt,
    pub set_compaction: Stmt,
    pub compact_history: Stmt,
}

const KV_COLUMNS: &str = "key, data, labels, lease, create_revision, mod_revision, version";

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let stmt = |text: String| -> Stmt { Arc::from(text) };
        Self {
            channel: format!("{schema}_revision"),
            state: stmt(format!("SELECT r.revision, c.revision FROM {s}.revision r, {s}.compaction c")),
            revision: stmt(format!("SELECT revision FROM {s}.revision WHERE id = 1")),
            lock_revision: stmt(format!("SELECT revision FROM {s}.revision WHERE id = 1 FOR UPDATE")),
            get: stmt(format!("SELECT {KV_COLUMNS} FROM {s}.kv WHERE key = $1")),
            get_many: stmt(format!("SELECT {KV_COLUMNS} FROM {s}.kv WHERE key = ANY($1)")),
            live_leases: stmt(format!(
                "SELECT id FROM {s}.lease WHERE id = ANY($1) AND expires_at > clock_timestamp()"
            )),
            // One transaction's changes at revision $1, with the counter and the notification.
            record: stmt(format!(
                "WITH changes AS ( \
                   SELECT * FROM UNNEST($2::text[], $3::int4[], $4::bool[], $5::bytea[], $6::text[], $7::int8[], \
                     $8::int8[], $9::int8[]) AS u(key, seq, deleted, data, labels, lease, create_revision, version) \
                 ), put AS ( \
                   INSERT INTO {s}.kv ({KV_COLUMNS}) \
                   SELECT key, data, labels, lease, create_revision, $1, version FROM changes WHERE NOT deleted \
                   ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, labels = EXCLUDED.labels, \
                   lease = EXCLUDED.lease, create_revision = EXCLUDED.create_revision, \
                   mod_revision = EXCLUDED.mod_revision, version = EXCLUDED.version \
                 ), removed AS ( \
                   DELETE FROM {s}.kv WHERE key IN (SELECT key FROM changes WHERE deleted) \
                 ), history AS ( \
                   INSERT INTO {s}.history (key, revision, seq, deleted, data, labels, lease, create_revision, version) \
                   SELECT key, $1, seq, deleted, data, labels, lease, create_revision, version FROM changes \
                 ), counter AS ( \
                   UPDATE {s}.revision SET revision = $1 WHERE id = 1 \
                 ) SELECT pg_notify($10, $1::text)"
            )),
            // The latest change of each key at a revision, live keys only, in key order.
            list: stmt(format!(
                "SELECT key, data, labels, lease, create_revision, revision AS mod_revision, version FROM ( \
                   SELECT DISTINCT ON (key) key, deleted, data, labels, lease, create_revision, revision, version \
                   FROM {s}.history \
                   WHERE key > $1 AND key >= $2 AND ($3::text IS NULL OR key < $3) AND revision <= $4 \
                   ORDER BY key, revision DESC \
                 ) latest WHERE NOT deleted ORDER BY key LIMIT $5"
            )),
            list_current: stmt(format!(
                "SELECT {KV_COLUMNS} FROM {s}.kv WHERE key > $1 AND key >= $2 AND ($3::text IS NULL OR key < $3) \
                 ORDER BY key LIMIT $4"
            )),
            watch: stmt(format!(
                "SELECT key, revision, deleted, data, labels, lease, create_revision, version FROM {s}.history \
                 WHERE revision >= $1 AND revision <= $2 AND key >= $3 AND ($4::text IS NULL OR key < $4) \
                 ORDER BY revision, seq LIMIT $5"
            )),
            watch_one: stmt(format!(
                "SELECT key, revision, deleted, data, labels, lease, create_revision, version FROM {s}.history \
                 WHERE revision = $1 AND key >= $2 AND ($3::text IS NULL OR key < $3) ORDER BY seq"
            )),
            grant: stmt(format!(
                "INSERT INTO {s}.lease (id, ttl_ms, expires_at) \
                 VALUES (nextval('{s}.lease_id'), $1, clock_timestamp() + $1 * interval '1 millisecond') RETURNING id"
            )),
            keep_alive: stmt(format!(
                "UPDATE {s}.lease SET expires_at = clock_timestamp() + ttl_ms * interval '1 millisecond' \
                 WHERE id = $1 AND expires_at > clock_timestamp() RETURNING ttl_ms"
            )),
            lock_lease: stmt(format!("SELECT id FROM {s}.lease WHERE id = $1 FOR UPDATE")),
            lock_expired_lease: stmt(format!(
                "SELECT id FROM {s}.lease WHERE expires_at <= clock_timestamp() \
                 ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )),
            delete_lease: stmt(format!("DELETE FROM {s}.lease WHERE id = $1")),
            delete_lease_keys: stmt(format!("DELETE FROM {s}.kv WHERE lease = $1 RETURNING key, create_revision")),
            lock_compaction: stmt(format!("SELECT revision FROM {s}.compaction WHERE id = 1 FOR UPDATE")),
            set_compaction: stmt(format!("UPDATE {s}.compaction SET revision = $1 WHERE id = 1")),
            // Forget every change older than $1 that a later change at or before $1 supersedes,
            // and the tombstones older than $1: what remains reads the same at $1 and after.
            // Only keys changed since the previous compaction ($2) can have such changes: the
            // previous one left each key's latest change before it alone.
            compact_history: stmt(format!(
                "DELETE FROM {s}.history h \
                 WHERE h.key IN (SELECT c.key FROM {s}.history c WHERE c.revision >= $2 AND c.revision <= $1) \
                 AND h.revision < $1 AND (h.deleted OR EXISTS ( \
                   SELECT 1 FROM {s}.history n WHERE n.key = h.key AND n.revision > h.revision AND n.revision <= $1))"
            )),
        }
    }
}

/// Migration 1: the tables.
fn migration_1(s: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE {s}.revision (id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL)"),
        format!("INSERT INTO {s}.revision VALUES (1, 0)"),
        format!("CREATE TABLE {s}.compaction (id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL)"),
        format!("INSERT INTO {s}.compaction VALUES (1, 0)"),
        format!(
            "CREATE TABLE {s}.kv (key text COLLATE \"C\" PRIMARY KEY, data bytea NOT NULL, labels text NOT NULL, \
             lease bigint, create_revision bigint NOT NULL, mod_revision bigint NOT NULL, version bigint NOT NULL)"
        ),
        format!("CREATE INDEX kv_lease ON {s}.kv (lease) WHERE lease IS NOT NULL"),
        format!(
            "CREATE TABLE {s}.history (key text COLLATE \"C\" NOT NULL, revision bigint NOT NULL, seq int NOT NULL, \
             deleted boolean NOT NULL, data bytea NOT NULL, labels text NOT NULL, lease bigint, \
             create_revision bigint NOT NULL, version bigint NOT NULL, PRIMARY KEY (key, revision))"
        ),
        format!("CREATE INDEX history_revision ON {s}.history (revision, seq)"),
        format!("CREATE SEQUENCE {s}.lease_id"),
        format!(
            "CREATE TABLE {s}.lease (id bigint PRIMARY KEY, ttl_ms bigint NOT NULL, expires_at timestamptz NOT NULL)"
        ),
        format!("CREATE INDEX lease_expires ON {s}.lease (expires_at)"),
    ]
}

/// Creates or migrates the schema, idempotently: under a transaction-scoped advisory lock, so
/// replicas connecting at once migrate one after the other and the later ones find it done.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let s = format!("\"{schema}\"");
    let mut tx = pool.begin().await.map_err(|e| db("starting the schema migration", e))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bosun-store-schema:' || $1))")
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("locking the schema for migration", e))?;
    for ddl in [
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)"
        ),
        format!("INSERT INTO {s}.schema_version VALUES (1, 0) ON CONFLICT (id) DO NOTHING"),
    ] {
        sqlx::query(AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(|e| db("creating the schema", e))?;
    }
    let version: i32 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT version FROM {s}.schema_version")))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db("reading the schema version", e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "postgres: schema {schema:?} is at version {version}, newer than this Bosun knows ({SCHEMA_VERSION}): upgrade Bosun"
        )));
    }
    if version < 1 {
        tracing::info!(schema, "creating the store's tables");
        for ddl in migration_1(&s) {
            sqlx::query(AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(|e| db("creating the tables", e))?;
        }
    }
    if version < SCHEMA_VERSION {
        sqlx::query(AssertSqlSafe(format!("UPDATE {s}.schema_version SET version = $1")))
            .bind(SCHEMA_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("recording the schema version", e))?;
    }
    tx.commit().await.map_err(|e| db("committing the schema migration", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema_name("bosun").is_ok());
        assert!(check_schema_name("bosun_2").is_ok());
        assert!(check_schema_name("").is_err());
        assert!(check_schema_name("Bosun").is_err());
        assert!(check_schema_name("a\"b").is_err());
        assert!(check_schema_name("1a").is_err());
    }
}
