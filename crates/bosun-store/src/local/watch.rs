//! Watches: each reads the persisted event history from its next revision in bounded steps, and
//! when it has caught up waits for the next commit on the store's revision channel. It holds the
//! store weakly, so it neither keeps it alive nor outlives it: it ends when the store is dropped
//! or closed.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use futures::StreamExt;
use tokio::sync::watch as tokio_watch;

use super::{Inner, history};
use crate::error::{Result, StoreError};
use crate::key::Prefix;
use crate::types::{Revision, WatchBatch, WatchStream};

struct State {
    store: Weak<Inner>,
    revisions: tokio_watch::Receiver<Revision>,
    prefix: Prefix,
    next: Revision,
    ready: VecDeque<WatchBatch>,
    failed: bool,
}

/// Starts a watch of `prefix` from `from`; fails now if `from` is already compacted.
pub(crate) async fn start(inner: &Arc<Inner>, prefix: Prefix, from: Revision) -> Result<WatchStream> {
    let revisions = inner.revision.subscribe();
    // The first step now: a compacted `from` fails the call rather than the stream.
    let first = {
        let prefix = prefix.clone();
        inner.blocking(move |db| history::read_events(db, &prefix, from)).await?
    };
    let state = State {
        store: Arc::downgrade(inner),
        revisions,
        prefix,
        next: first.next,
        ready: first.batches.into(),
        failed: false,
    };
    Ok(futures::stream::unfold(state, step).boxed())
}

async fn step(mut s: State) -> Option<(Result<WatchBatch, StoreError>, State)> {
    loop {
        if let Some(batch) = s.ready.pop_front() {
            return Some((Ok(batch), s));
        }
        if s.failed {
            return None;
        }
        let store = s.store.upgrade()?;
        if store.is_closed() {
            return None;
        }
        // Marked seen before reading, so a commit after the read wakes the wait below.
        s.revisions.borrow_and_update();
        let (prefix, from) = (s.prefix.clone(), s.next);
        let read = store.blocking(move |db| history::read_events(db, &prefix, from)).await;
        drop(store);
        match read {
            Ok(read) => {
                s.next = read.next;
                s.ready.extend(read.batches);
                if !s.ready.is_empty() || read.more {
                    continue;
                }
            }
            Err(StoreError::Unavailable(_)) if s.store.upgrade().is_none_or(|store| store.is_closed()) => {
                return None;
            }
            Err(e) => {
                s.failed = true;
                return Some((Err(e), s));
            }
        }
        // Caught up: wait for the next commit (an error: the store is gone).
        s.revisions.changed().await.ok()?;
    }
}
