//! Bosun's PostgreSQL store backend (DESIGN.md §6): several Bosun replicas share one database.
//!
//! [`PostgresStore::connect`] creates or migrates its tables (in a schema of their own, see
//! [`PostgresOptions::schema`]) and starts two background tasks: one listens for the revisions
//! other replicas write (`LISTEN`/`NOTIFY`) to wake watchers, the other expires leases and
//! bounds the history. See the `schema` module for the tables.
//!
//! Consistency: every writing transaction first locks the one-row revision counter and holds it
//! until it commits, so writers of every replica serialize, compare-and-swap is linearizable, and
//! transactions commit in revision order: once revision `N` is visible, every revision before it
//! is too. A watcher reads the counter, then the history up to it, so it can never pass over a
//! revision that commits late.
//!
//! TLS: sqlx is built without a TLS backend here, so the URL's `sslmode` may be `disable`,
//! `allow` or `prefer` (all connect without TLS); `require`, `verify-ca` and `verify-full` are
//! refused at connect with [`StoreError::InvalidArgument`]. Use a local socket, a private
//! network or a TLS-terminating proxy until TLS is added.

mod error;
mod read;
mod rows;
mod schema;
mod tasks;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bosun_store::{
    Key, KeyValue, Lease, LeaseId, ListOptions, ListPage, Op, Prefix, Revision, Store, StoreError, TxnResult,
    WatchStream,
};
use parking_lot::Mutex;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::db;
use crate::schema::Sql;
pub use crate::write::MAX_LEASE_TTL;

/// How a [`PostgresStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The PostgreSQL schema that holds the store's tables (created if missing): 1-48 of
    /// `a-z`, `0-9` and `_`. Stores with different schemas in one database are independent.
    pub schema: String,
    /// Most connections in the pool (one of them is held by the notification listener).
    pub max_connections: u32,
    /// How long to wait for a connection before failing with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// How many revisions of history to keep at least; older ones are compacted automatically.
    pub history_revisions: i64,
    /// How often watchers read the history even without a notification (covers a notification
    /// lost while the listener reconnected).
    pub poll_interval: Duration,
    /// How often this replica looks for expired leases.
    pub lease_check_interval: Duration,
    /// How often this replica checks whether the history is longer than `history_revisions`.
    pub compaction_interval: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "bosun".to_owned(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            history_revisions: 100_000,
            poll_interval: Duration::from_secs(1),
            lease_check_interval: Duration::from_millis(250),
            compaction_interval: Duration::from_secs(30),
        }
    }
}

/// What the store's parts share: the pool, the statements and the options.
#[derive(Debug)]
pub(crate) struct Shared {
    pub pool: PgPool,
    pub sql: Sql,
    pub options: PostgresOptions,
}

/// What watchers learn from the listener: the highest revision notified, and whether the store
/// closed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wake {
    pub revision: Revision,
    pub closed: bool,
}

struct Inner {
    shared: Arc<Shared>,
    wake: Arc<watch::Sender<Wake>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.send_modify(|w| w.closed = true);
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// A [`Store`] on PostgreSQL. Cheap to clone (clones share the pool and background tasks);
/// dropping the last clone stops the background tasks.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("schema", &self.inner.shared.options.schema).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, libpq's
    /// URL form), creates or migrates the store's tables and starts the background tasks.
    /// Must be called within a Tokio runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        schema::check_schema_name(&options.schema)?;
        if options.history_revisions < 1 {
            return Err(StoreError::invalid("history_revisions", "must be at least 1"));
        }
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::invalid("url", format!("not a PostgreSQL URL: {e}")))?
            .application_name("bosun");
        if matches!(connect.get_ssl_mode(), PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
            return Err(StoreError::invalid(
                "url",
                "sslmode require/verify-ca/verify-full: this build of Bosun has no TLS support for PostgreSQL",
            ));
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| db("connecting", e))?;
        schema::migrate(&pool, &options.schema).await?;
        let shared = Arc::new(Shared { sql: Sql::new(&options.schema), pool, options });
        let initial = write::current_revision(&shared).await?;
        let wake = Arc::new(watch::Sender::new(Wake { revision: initial, closed: false }));
        let tasks = vec![
            tokio::spawn(tasks::listen(shared.clone(), wake.clone())),
            tokio::spawn(tasks::maintain(shared.clone(), wake.clone())),
        ];
        tracing::info!(schema = %shared.options.schema, revision = initial, "postgres store connected");
        Ok(Self { inner: Arc::new(Inner { shared, wake, tasks: Mutex::new(tasks) }) })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Tells this replica's watchers about a revision it just committed.
    fn wake(&self, revision: Revision) {
        tasks::notify(&self.inner.wake, revision);
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &str {
        "postgres"
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        write::current_revision(self.shared()).await
    }

    async fn get(&self, key: &Key) -> Result<Option<KeyValue>, StoreError> {
        read::get(self.shared(), key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage, StoreError> {
        read::list(self.shared(), options).await
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<TxnResult, StoreError> {
        bosun_store::validate::txn(&ops)?;
        let (result, changed) = write::txn(self.shared(), &ops).await?;
        if changed {
            self.wake(result.revision);
        }
        Ok(result)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease, StoreError> {
        write::grant(self.shared(), ttl).await
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease, StoreError> {
        write::keep_alive(self.shared(), id).await
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<(), StoreError> {
        match write::revoke(self.shared(), id).await? {
            Some(revision) => {
                self.wake(revision);
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn watch(&self, prefix: &Prefix, from: Revision) -> Result<WatchStream, StoreError> {
        read::watch(self.shared().clone(), self.inner.wake.subscribe(), prefix.clone(), from).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        write::compact(self.shared(), revision).await
    }

    async fn close(&self) {
        self.inner.wake.send_modify(|w| w.closed = true);
        let tasks: Vec<_> = self.inner.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.shared().pool.close().await;
    }
}
