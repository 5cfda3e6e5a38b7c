//! One list-then-watch loop for every watch RPC: the entries under a prefix as they are, then every
//! change, converted to the RPC's event type, until the client goes away.

use std::sync::Arc;

use bosun_store::{Event, Key, Prefix, Revision, Selector, Store, StoreError, StoreExt};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A change of one entry, before conversion to an RPC's event.
#[derive(Debug)]
pub(crate) enum Change<'a> {
    /// Present (listed at the start) or published.
    Put { key: &'a Key, data: &'a [u8], revision: Revision },
    /// Removed: its lease lapsed, or it was deleted.
    Deleted { key: &'a Key, revision: Revision },
}

/// How many events may wait for a slow client before the watch waits for it.
const BUFFER: usize = 64;

/// The stream a watch RPC returns.
pub(crate) type EventStream<T> = ReceiverStream<Result<T, tonic::Status>>;

/// Lists `prefix`, sends each entry `convert` accepts, then follows the store's watch from just
/// after the list. A watch that falls behind the store's history ends with ABORTED (watch again).
pub(crate) fn list_then_watch<T, F>(store: Arc<dyn Store>, prefix: Prefix, convert: F) -> EventStream<T>
where
    T: Send + 'static,
    F: Fn(Change<'_>) -> Option<T> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        if let Err(status) = follow(store, prefix, &convert, &tx).await {
            let _ = tx.send(Err(status)).await;
        }
    });
    ReceiverStream::new(rx)
}

async fn follow<T, F>(
    store: Arc<dyn Store>,
    prefix: Prefix,
    convert: &F,
    tx: &mpsc::Sender<Result<T, tonic::Status>>,
) -> Result<(), tonic::Status>
where
    F: Fn(Change<'_>) -> Option<T>,
{
    let page = store.list_all(&prefix, &Selector::default()).await.map_err(store_status)?;
    for kv in &page.items {
        let change = Change::Put { key: &kv.key, data: &kv.value.data, revision: kv.mod_revision };
        if let Some(event) = convert(change)
            && tx.send(Ok(event)).await.is_err()
        {
            return Ok(());
        }
    }
    let mut watch = store.watch(&prefix, page.revision + 1).await.map_err(store_status)?;
    loop {
        let batch = tokio::select! {
            () = tx.closed() => return Ok(()),
            batch = watch.next() => batch,
        };
        let Some(batch) = batch else {
            return Err(tonic::Status::unavailable("the store closed the watch"));
        };
        for event in batch.map_err(store_status)?.events {
            let change = match &event {
                Event::Put(kv) => Change::Put { key: &kv.key, data: &kv.value.data, revision: kv.mod_revision },
                Event::Delete { key, revision } => Change::Deleted { key, revision: *revision },
            };
            if let Some(event) = convert(change)
                && tx.send(Ok(event)).await.is_err()
            {
                return Ok(());
            }
        }
    }
}

fn store_status(error: StoreError) -> tonic::Status {
    match error {
        StoreError::Compacted { .. } => tonic::Status::aborted(format!("{error}: watch again")),
        other => crate::MetadataError::Store(other).into(),
    }
}
