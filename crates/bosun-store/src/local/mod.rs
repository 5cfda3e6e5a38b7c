//! The local store: one MVCC engine over [redb](https://docs.rs/redb), in memory
//! ([`LocalStore::memory`], for tests) or in one file ([`LocalStore::open`], the default store of
//! `bosun serve --data-dir`).
//!
//! Every store transaction is one redb write transaction, committed durably before it is
//! acknowledged; redb's copy-on-write commits make a half-written transaction invisible after a
//! crash. The tables are described in `engine.rs`. Watches read the persisted event history in
//! bounded steps and wait on a [`tokio::sync::watch`] of the latest revision, so a slow watcher
//! never loses events (until they are compacted). A background task expires leases.

mod codec;
mod engine;
mod history;
mod lease;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::Database;
use tokio::sync::oneshot;
use tokio::sync::watch as tokio_watch;

use crate::error::{Result, StoreError};
use crate::key::{Key, Prefix};
use crate::types::{KeyValue, Lease, LeaseId, ListOptions, ListPage, Op, Revision, TxnResult, WatchStream};
use crate::{Store, validate};

pub use lease::MIN_LEASE_TTL;

/// The file a data dir holds.
pub const DATA_FILE: &str = "bosun.redb";

/// Tuning of a [`LocalStore`].
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// How many revisions of history are kept for watches and paginated lists; older history is
    /// compacted automatically (in steps, as writes go on). At least 1.
    pub history_revisions: i64,
    /// The most memory redb uses to cache the file's pages.
    pub cache_bytes: usize,
    /// How often the lease task looks for expired leases.
    pub lease_check_interval: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self { history_revisions: 100_000, cache_bytes: 64 << 20, lease_check_interval: Duration::from_millis(250) }
    }
}

/// The local store: one MVCC engine over redb, in memory ([`LocalStore::memory`], for tests) or
/// in the file `bosun.redb` of a data dir ([`LocalStore::open`]).
///
/// Every transaction is one redb write transaction, committed durably (an acknowledged write
/// survives a crash; a half-written one is never seen). History is kept for
/// [`LocalOptions::history_revisions`] revisions; a background task expires leases, whose
/// deadlines are wall-clock times in the file, so they hold across restarts. [`Store::close`]
/// (or dropping the store) stops the task, ends the watches and releases the file.
pub struct LocalStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backend: &'static str,
    /// `None` once closed.
    db: RwLock<Option<Arc<Database>>>,
    options: LocalOptions,
    /// The latest committed revision, bumped right after each commit (on the committing thread,
    /// so a caller that stops waiting cannot skip it); watches wait on it.
    revision: Arc<tokio_watch::Sender<Revision>>,
    /// Transactions waiting for the next group commit.
    queue: Mutex<Vec<Pending>>,
    /// Held by the thread that commits a group.
    commit_lock: Mutex<()>,
}

/// A transaction waiting for a group commit, and where its result goes.
struct Pending {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<TxnResult>>,
}

impl LocalStore {
    /// A store in memory, for tests. Must be called within a Tokio runtime (it starts the lease
    /// task).
    pub fn memory() -> Result<Self> {
        Self::memory_with(LocalOptions::default())
    }

    /// [`LocalStore::memory`] with options.
    pub fn memory_with(options: LocalOptions) -> Result<Self> {
        let db = redb::Builder::new()
            .set_cache_size(options.cache_bytes)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Internal(format!("creating the in-memory database: {e}")))?;
        let revision = engine::init(&db)?;
        Self::start("memory", db, revision, options)
    }

    /// Opens (or creates) the store in `dir/bosun.redb`, creating `dir` if missing. Fails if
    /// another process (or another store of this process) has the data dir open.
    pub async fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, LocalOptions::default()).await
    }

    /// [`LocalStore::open`] with options.
    pub async fn open_with(dir: &Path, options: LocalOptions) -> Result<Self> {
        let dir = dir.to_path_buf();
        let cache = options.cache_bytes;
        let (db, revision) = tokio::task::spawn_blocking(move || {
            let db = open_file(&dir, cache)?;
            let revision = engine::init(&db)?;
            Ok::<_, StoreError>((db, revision))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("opening the data dir: {e}")))??;
        Self::start("embedded", db, revision, options)
    }

    fn start(backend: &'static str, db: Database, revision: Revision, mut options: LocalOptions) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Internal("the local store must be created within a Tokio runtime".into()))?;
        options.history_revisions = options.history_revisions.max(1);
        let (sender, _) = tokio_watch::channel(revision);
        let inner = Arc::new(Inner {
            backend,
            db: RwLock::new(Some(Arc::new(db))),
            options,
            revision: Arc::new(sender),
            queue: Mutex::default(),
            commit_lock: Mutex::default(),
        });
        runtime.spawn(lease_task(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }
}

fn open_file(dir: &Path, cache_bytes: usize) -> Result<Database> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Unavailable(format!("creating the data dir {}: {e}", dir.display())))?;
    let path: PathBuf = dir.join(DATA_FILE);
    let logged = std::sync::atomic::AtomicBool::new(false);
    let shown = path.display().to_string();
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache_bytes).set_repair_callback(move |session| {
        if !logged.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(file = %shown, progress = session.progress(), "repairing the data file after an unclean shutdown");
        }
    });
    builder.create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::Unavailable(format!("data dir {} is in use by another process", dir.display()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            StoreError::Unavailable(format!("opening {}: {io}", path.display()))
        }
        other => StoreError::Internal(format!("opening {}: {other}", path.display())),
    })
}

impl Inner {
    fn database(&self) -> Result<Arc<Database>> {
        let db = self.db.read().map_err(|_| StoreError::Internal("the store's lock is poisoned".into()))?;
        db.clone().ok_or_else(|| StoreError::Unavailable("the store is closed".into()))
    }

    fn is_closed(&self) -> bool {
        self.db.read().map_or(true, |db| db.is_none())
    }

    /// Runs `f` on the database on a blocking thread.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.database()?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Internal(format!("a store task failed: {e}")))?
    }

    /// Runs the write `f` on the database on a blocking thread; the revision it returns (if it
    /// committed one) is announced to watches there, right after the commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<(T, Option<Revision>)> + Send + 'static,
    ) -> Result<T> {
        let sender = self.revision.clone();
        self.blocking(move |db| {
            let (result, revision) = f(db)?;
            if let Some(revision) = revision {
                committed(&sender, revision);
            }
            Ok(result)
        })
        .await
    }
}

impl Inner {
    /// Commits every queued transaction as one group, answering each; a no-op when an earlier
    /// group already took them.
    fn commit_queued(&self, db: &Database) {
        // Replies are sent before the lock is released, so a caller that gets the lock after its
        // transaction was taken by another thread's group finds it answered.
        let _leader = self.commit_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return;
        }
        let group: Vec<&[Op]> = batch.iter().map(|p| p.ops.as_slice()).collect();
        match engine::txn_group(db, &group, lease::now_ms(), self.options.history_revisions) {
            Ok((results, revision)) => {
                if let Some(revision) = revision {
                    committed(&self.revision, revision);
                }
                for (pending, result) in batch.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
            }
            Err(e) => batch.into_iter().for_each(|p| drop(p.reply.send(Err(e.clone())))),
        }
    }

    /// Answers every queued transaction with `error` (the store could not run the group).
    fn fail_queued(&self, error: &StoreError) {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        batch.into_iter().for_each(|p| drop(p.reply.send(Err(error.clone()))));
    }
}

/// Announces a committed `revision` to watches (if it is newer than the last announced).
fn committed(sender: &tokio_watch::Sender<Revision>, revision: Revision) {
    sender.send_if_modified(|latest| {
        let newer = revision > *latest;
        if newer {
            *latest = revision;
        }
        newer
    });
}

/// Expires leases until the store is dropped or closed. Holds the store only while it works.
async fn lease_task(inner: Weak<Inner>) {
    loop {
        let Some(store) = inner.upgrade() else { return };
        if store.is_closed() {
            return;
        }
        let keep = store.options.history_revisions;
        match store.write(move |db| Ok(((), lease::expire_due(db, lease::now_ms(), 1000, keep)?))).await {
            Ok(()) => {}
            Err(StoreError::Unavailable(_)) if store.is_closed() => return,
            Err(e) => tracing::warn!(error = %e, "expiring leases"),
        }
        let interval = store.options.lease_check_interval;
        drop(store);
        tokio::time::sleep(interval).await;
    }
}

#[async_trait]
impl Store for LocalStore {
    fn backend(&self) -> &str {
        self.inner.backend
    }

    async fn revision(&self) -> Result<Revision> {
        self.inner.database()?;
        Ok(*self.inner.revision.borrow())
    }

    async fn get(&self, key: &Key) -> Result<Option<KeyValue>> {
        let key = key.clone();
        self.inner.blocking(move |db| engine::get(db, &key)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let options = options.clone();
        self.inner.blocking(move |db| engine::list(db, &options)).await
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<TxnResult> {
        validate::txn(&ops)?;
        let (reply, answer) = oneshot::channel();
        self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Pending { ops, reply });
        let inner = self.inner.clone();
        let group = self.inner.blocking(move |db| {
            inner.commit_queued(db);
            Ok(())
        });
        if let Err(e) = group.await {
            self.inner.fail_queued(&e);
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Internal("a store write was dropped unanswered".into())))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        self.inner.blocking(move |db| lease::grant(db, ttl, lease::now_ms())).await
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease> {
        self.inner.blocking(move |db| lease::keep_alive(db, id, lease::now_ms())).await
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        let keep = self.inner.options.history_revisions;
        self.inner.write(move |db| Ok(((), lease::revoke(db, id, keep)?))).await
    }

    async fn watch(&self, prefix: &Prefix, from: Revision) -> Result<WatchStream> {
        watch::start(&self.inner, prefix.clone(), from.max(1)).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.blocking(move |db| history::compact(db, revision)).await
    }

    async fn close(&self) {
        let db = match self.inner.db.write() {
            Ok(mut db) => db.take(),
            Err(_) => None,
        };
        // Wake the watches, which see the store closed and end.
        self.inner.revision.send_modify(|_| {});
        let Some(mut db) = db else { return };
        // Wait (briefly) for the operations in flight, then release the file.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    if let Err(e) = tokio::task::spawn_blocking(move || drop(db)).await {
                        tracing::warn!(error = %e, "closing the store's database");
                    }
                    return;
                }
                Err(shared) if tokio::time::Instant::now() < deadline => {
                    db = shared;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => {
                    tracing::warn!("store closed with operations still running; the file is released when they end");
                    return;
                }
            }
        }
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("backend", &self.inner.backend).finish_non_exhaustive()
    }
}
