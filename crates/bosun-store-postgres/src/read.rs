//! Reads: get, list at a revision, and watches.

use std::collections::VecDeque;
use std::sync::Arc;

use bosun_store::{
    ContinueToken, Event, Key, KeyValue, ListOptions, ListPage, Prefix, Revision, StoreError, WatchBatch, WatchStream,
};
use futures::StreamExt;
use sqlx::PgConnection;
use sqlx::pool::PoolConnection;
use tokio::sync::watch;

use crate::error::db;
use crate::rows::{event, key_value};
use crate::schema::q;
use crate::write::state;
use crate::{Shared, Wake};

/// Most history rows one watch read takes (a revision with more is read whole on its own).
const WATCH_BATCH_ROWS: i64 = 1000;
/// Most rows one list read takes.
const LIST_CHUNK_ROWS: usize = 2000;
/// How many consecutive failed reads a watcher retries (one per poll interval) before it gives
/// up with the error: a database restart does not end watches.
const WATCH_RETRIES: u32 = 30;

async fn acquire(sh: &Shared) -> Result<PoolConnection<sqlx::Postgres>, StoreError> {
    sh.pool.acquire().await.map_err(|e| db("acquiring a connection", e))
}

fn compacted(requested: Revision, compaction: Revision) -> StoreError {
    StoreError::Compacted { requested, compacted: compaction - 1 }
}

/// The key's current value.
pub(crate) async fn get(sh: &Shared, key: &Key) -> Result<Option<KeyValue>, StoreError> {
    let row = sqlx::query(q(&sh.sql.get))
        .bind(key.as_str())
        .fetch_optional(&sh.pool)
        .await
        .map_err(|e| db("reading a key", e))?;
    row.map(|row| key_value(&row, "mod_revision")).transpose()
}

/// One page of a list, at the current revision or the continue token's.
pub(crate) async fn list(sh: &Shared, options: &ListOptions) -> Result<ListPage, StoreError> {
    let prefix = &options.prefix;
    let token = options.continue_token.as_deref().map(|t| ContinueToken::decode(t, prefix)).transpose()?;
    let mut conn = acquire(sh).await?;
    let (current, compaction) = state(sh, &mut conn).await?;
    let revision = match &token {
        Some(token) if token.revision > current => {
            return Err(StoreError::FutureRevision { requested: token.revision, current });
        }
        Some(token) => token.revision,
        None => current,
    };
    if revision < compaction {
        return Err(compacted(revision, compaction));
    }
    let want = options.limit.filter(|&l| l > 0).map(|l| l as usize);
    let chunk = want.map_or(LIST_CHUNK_ROWS, |w| (w + 1).clamp(100, LIST_CHUNK_ROWS));
    let mut after = token.map(|t| t.after).unwrap_or_default();
    let range_end = prefix.range_end();
    let mut items = Vec::new();
    let mut more = false;
    // At the current revision the current values are read (cheaper than the history), as long
    // as no write commits meanwhile; after one, the history at the revision is read instead.
    let mut from_current = revision == current;
    'read: loop {
        let rows = if from_current {
            let rows = sqlx::query(q(&sh.sql.list_current))
                .bind(&after)
                .bind(prefix.as_str())
                .bind(range_end.as_deref())
                .bind(chunk as i64)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db("listing keys", e))?;
            let (now, _) = state(sh, &mut conn).await?;
            if now != revision {
                from_current = false;
                continue;
            }
            rows
        } else {
            sqlx::query(q(&sh.sql.list))
                .bind(&after)
                .bind(prefix.as_str())
                .bind(range_end.as_deref())
                .bind(revision)
                .bind(chunk as i64)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db("listing keys", e))?
        };
        let full = rows.len() == chunk;
        for row in &rows {
            let kv = key_value(row, "mod_revision")?;
            after = kv.key.as_str().to_owned();
            if !options.selector.matches(&kv.value.labels) {
                continue;
            }
            if want.is_some_and(|w| items.len() == w) {
                more = true;
                break 'read;
            }
            items.push(kv);
        }
        if !full {
            break;
        }
    }
    // A compaction that committed while we read may have removed rows we needed.
    let (_, compaction) = state(sh, &mut conn).await?;
    if revision < compaction {
        return Err(compacted(revision, compaction));
    }
    let continue_token = match (more, items.last()) {
        (true, Some(last)) => Some(
            ContinueToken { revision, after: last.key.as_str().to_owned(), prefix: prefix.as_str().to_owned() }
                .encode(),
        ),
        _ => None,
    };
    Ok(ListPage { items, revision, continue_token })
}

/// A watcher's state between reads.
struct Watcher {
    shared: Arc<Shared>,
    wake: watch::Receiver<Wake>,
    prefix: Prefix,
    range_end: Option<String>,
    /// The next revision to deliver.
    next: Revision,
    pending: VecDeque<WatchBatch>,
    failures: u32,
    done: bool,
}

/// A stream of every change under `prefix` from `from` on.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    wake: watch::Receiver<Wake>,
    prefix: Prefix,
    from: Revision,
) -> Result<WatchStream, StoreError> {
    let from = from.max(1);
    let mut conn = acquire(&shared).await?;
    let (_, compaction) = state(&shared, &mut conn).await?;
    drop(conn);
    if from < compaction {
        return Err(compacted(from, compaction));
    }
    let range_end = prefix.range_end();
    let watcher =
        Watcher { shared, wake, prefix, range_end, next: from, pending: VecDeque::new(), failures: 0, done: false };
    Ok(futures::stream::unfold(watcher, |mut w| async move {
        let item = w.next_item().await?;
        Some((item, w))
    })
    .boxed())
}

impl Watcher {
    /// The next batch or error; `None` when the stream ends.
    async fn next_item(&mut self) -> Option<Result<WatchBatch, StoreError>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            if self.done {
                return None;
            }
            // Mark the notifications seen before reading, so one that arrives during the read
            // wakes the wait below.
            if self.wake.borrow_and_update().closed {
                self.done = true;
                return None;
            }
            match self.read().await {
                Ok(caught_up) => {
                    self.failures = 0;
                    if !caught_up || !self.pending.is_empty() {
                        continue;
                    }
                }
                Err(StoreError::Unavailable(reason)) if self.failures < WATCH_RETRIES => {
                    self.failures += 1;
                    tracing::warn!(%reason, next = self.next, "watch read failed; retrying");
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let poll = self.shared.options.poll_interval;
            tokio::select! {
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        self.done = true;
                        return None;
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Reads the next revisions into `pending`; returns whether it reached the current revision.
    async fn read(&mut self) -> Result<bool, StoreError> {
        let sh = self.shared.clone();
        let mut conn = acquire(&sh).await?;
        // Transactions commit in revision order (the counter lock), so every revision up to the
        // current one read here has committed and is visible to the next statement.
        let (current, compaction) = state(&sh, &mut conn).await?;
        if self.next < compaction {
            return Err(compacted(self.next, compaction));
        }
        if self.next > current {
            return Ok(true);
        }
        let mut rows = self.rows(&mut conn, current).await?;
        let mut upto = current;
        if rows.len() as i64 > WATCH_BATCH_ROWS {
            // The last revision read may be cut short: read it again whole if it is the only one,
            // else leave it for the next read.
            let first = rows.first().map_or(self.next, Event::revision);
            let last = rows.last().map_or(self.next, Event::revision);
            if first == last {
                rows = self.revision_rows(&mut conn, last).await?;
                upto = last;
            } else {
                rows.retain(|e| e.revision() != last);
                upto = last - 1;
            }
        }
        // A compaction that committed during the read may have removed rows we needed.
        let (_, compaction) = state(&sh, &mut conn).await?;
        if self.next < compaction {
            return Err(compacted(self.next, compaction));
        }
        let mut batch: Vec<Event> = Vec::new();
        for event in rows {
            if batch.last().is_some_and(|e| e.revision() != event.revision()) {
                self.pending.push_back(WatchBatch { events: std::mem::take(&mut batch) });
            }
            batch.push(event);
        }
        if !batch.is_empty() {
            self.pending.push_back(WatchBatch { events: batch });
        }
        self.next = upto + 1;
        Ok(upto == current)
    }

    async fn rows(&self, conn: &mut PgConnection, current: Revision) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(q(&self.shared.sql.watch))
            .bind(self.next)
            .bind(current)
            .bind(self.prefix.as_str())
            .bind(self.range_end.as_deref())
            .bind(WATCH_BATCH_ROWS + 1)
            .fetch_all(conn)
            .await
            .map_err(|e| db("reading the history", e))?;
        rows.iter().map(event).collect()
    }

    async fn revision_rows(&self, conn: &mut PgConnection, revision: Revision) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(q(&self.shared.sql.watch_one))
            .bind(revision)
            .bind(self.prefix.as_str())
            .bind(self.range_end.as_deref())
            .fetch_all(conn)
            .await
            .map_err(|e| db("reading the history", e))?;
        rows.iter().map(event).collect()
    }
}
