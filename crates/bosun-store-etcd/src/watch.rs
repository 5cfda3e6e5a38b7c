//! Watches: one etcd watch per store watch, run by a task that survives the loss of its member.
//!
//! The task asks etcd for fragmented responses (a large revision may come in several parts) and
//! joins the parts; etcd never splits a revision across whole responses, so each joined response
//! is cut into one batch per revision. When the stream fails, the task moves to the next member
//! and watches again from the revision after the last one it delivered: no gap, no duplicate.

use std::sync::Arc;
use std::time::Duration;

use bosun_store::{Event, Prefix, Revision, StoreError, WatchBatch, WatchStream};
use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::Inner;
use crate::codec::{decode_kv, range_end, store_key};
use crate::conn::is_transient;

/// Batches a watcher may have buffered before the task waits for it.
const BUFFER: usize = 64;
/// Longest wait between two reconnection tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Item = Result<WatchBatch, StoreError>;

/// Starts a watch of `prefix` from revision `from` (at least 1).
pub(crate) fn spawn(inner: Arc<Inner>, prefix: Prefix, from: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let mut task = Task { inner, prefix, next: from.max(1), tx };
        if let Some(error) = task.run().await {
            let _ = task.tx.send(Err(error)).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// How one etcd watch stream ended.
enum End {
    /// The watcher went away or the store closed: stop quietly.
    Stop,
    /// The watch cannot go on: end with this error.
    Fail(StoreError),
    /// The member failed (after `delivered` messages): watch again, elsewhere.
    Retry { reason: String, delivered: bool },
}

struct Task {
    inner: Arc<Inner>,
    prefix: Prefix,
    /// The first revision not yet delivered.
    next: Revision,
    tx: mpsc::Sender<Item>,
}

impl Task {
    /// Watches until the watcher goes away (`None`) or the watch fails for good.
    async fn run(&mut self) -> Option<StoreError> {
        let mut failures = 0u32;
        let mut backoff = Duration::from_millis(50);
        loop {
            let (member_index, member) = self.inner.members.current();
            let mut member = member.clone();
            let url = member.url.clone();
            let tx = self.tx.clone();
            let mut key = self.inner.root.clone().into_bytes();
            key.extend_from_slice(self.prefix.as_str().as_bytes());
            let options =
                WatchOptions::new().with_range(range_end(&key)).with_start_revision(self.next).with_fragment();
            let mut closed = self.inner.closed.subscribe();
            let end = tokio::select! {
                _ = tx.closed() => End::Stop,
                _ = closed.wait_for(|closed| *closed) => End::Stop,
                end = async {
                    match member.watch.watch(key, Some(options)).await {
                        Ok(stream) => self.follow(stream).await,
                        Err(e) if is_transient(&e) => End::Retry { reason: e.to_string(), delivered: false },
                        Err(e) => End::Fail(StoreError::Internal(format!("etcd watch via {url}: {e}"))),
                    }
                } => end,
            };
            match end {
                End::Stop => return None,
                End::Fail(error) => return Some(error),
                End::Retry { reason, delivered } => {
                    if delivered {
                        failures = 0;
                        backoff = Duration::from_millis(50);
                    }
                    failures += 1;
                    self.inner.members.failed(member_index);
                    if failures > self.inner.watch_retries {
                        return Some(StoreError::Unavailable(format!(
                            "etcd watch of {:?} from revision {}: {failures} tries failed, the last via {}: {reason}",
                            self.prefix.as_str(),
                            self.next,
                            url
                        )));
                    }
                    tracing::warn!(member = %url, next = self.next, %reason, "etcd watch failed; watching again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Delivers the stream's events until it ends.
    async fn follow(&mut self, mut stream: etcd_client::WatchStream) -> End {
        let mut delivered = false;
        let mut parts: Vec<WatchResponse> = Vec::new();
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return End::Retry { reason: "the watch stream ended".to_owned(), delivered },
                Err(e) if is_transient(&e) => return End::Retry { reason: e.to_string(), delivered },
                Err(e) => return End::Fail(StoreError::Internal(format!("etcd watch: {e}"))),
            };
            if response.compact_revision() != 0 {
                return End::Fail(StoreError::Compacted {
                    requested: self.next,
                    compacted: response.compact_revision() - 1,
                });
            }
            if response.canceled() {
                let reason = format!("etcd canceled the watch: {}", response.cancel_reason());
                return End::Retry { reason, delivered };
            }
            // Any answer shows the member is serving this watch.
            delivered = true;
            let fragment = response.0.fragment;
            parts.push(response);
            if fragment {
                tracing::trace!(parts = parts.len(), "a fragment of a watch response");
                continue;
            }
            let events: Vec<etcd_client::Event> = parts.drain(..).flat_map(|r| r.events().to_vec()).collect();
            if let Err(end) = self.deliver(&events).await {
                return end;
            }
        }
    }

    /// Sends the events of whole revisions, one batch per revision, skipping what was delivered.
    async fn deliver(&mut self, events: &[etcd_client::Event]) -> Result<(), End> {
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_revision = 0;
        for event in events {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            if revision < self.next {
                continue;
            }
            if revision != batch_revision {
                self.send(std::mem::take(&mut batch), batch_revision).await?;
                batch_revision = revision;
            }
            let Some(key) = store_key(&self.inner.root, kv.key()) else {
                tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "skipping a watched key that is not kind/namespace/name");
                continue;
            };
            batch.push(match event.event_type() {
                EventType::Put => Event::Put(decode_kv(key, kv).map_err(End::Fail)?),
                EventType::Delete => Event::Delete { key, revision },
            });
        }
        self.send(batch, batch_revision).await
    }

    /// Sends one revision's batch (if it has events) and moves past the revision.
    async fn send(&mut self, batch: Vec<Event>, revision: Revision) -> Result<(), End> {
        if revision == 0 {
            return Ok(());
        }
        if !batch.is_empty() && self.tx.send(Ok(WatchBatch { events: batch })).await.is_err() {
            return Err(End::Stop);
        }
        self.next = revision + 1;
        Ok(())
    }
}

/// The oldest revision etcd still has, learnt by watching from `requested`, which it has
/// compacted; `None` when etcd does not say within two seconds.
pub(crate) async fn compact_revision(inner: &Inner, requested: Revision) -> Option<Revision> {
    let (_, member) = inner.members.current();
    let mut member = member.clone();
    let key = inner.root.clone().into_bytes();
    let probe = async move {
        let options = WatchOptions::new().with_start_revision(requested.max(1));
        let mut stream = member.watch.watch(key, Some(options)).await.ok()?;
        while let Ok(Some(response)) = stream.message().await {
            if response.compact_revision() != 0 {
                return Some(response.compact_revision());
            }
            if response.canceled() {
                return None;
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten()
}
