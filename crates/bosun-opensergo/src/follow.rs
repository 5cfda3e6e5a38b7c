//! Following the store: list the governance kinds, then watch; list again when the watch fails
//! (a compacted history, an unavailable store), retrying until shut down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bosun_model::Kind;
use bosun_store::{Prefix, Revision, Selector, Store, StoreError, StoreExt};
use futures::StreamExt;

use crate::OpenSergoServer;
use crate::server::Shared;

/// Waits between attempts while the store is unavailable.
const RETRY: Duration = Duration::from_secs(1);

impl OpenSergoServer {
    /// Serves the governance rules of `store` until `shutdown` turns true: lists them, then
    /// follows the store's watch, pushing each change to the clients subscribed to it. A
    /// compacted watch lists again; an unavailable store is retried, the rules read last still
    /// being served.
    pub async fn follow(&self, store: Arc<dyn Store>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                error = follow_once(&store, &self.shared) => {
                    tracing::warn!("OpenSergo rules: following the store: {error}; listing again");
                    self.shared.set_store_error(Some(error.to_string()));
                }
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// Lists and then watches until the watch fails; returns why.
async fn follow_once(store: &Arc<dyn Store>, shared: &Shared) -> StoreError {
    // Each kind is read at its own revision; the watch starts after the earliest, and skips for
    // each kind what its list already showed.
    let mut listed_at: BTreeMap<&'static str, Revision> = BTreeMap::new();
    let mut items = Vec::new();
    for kind in Kind::ALL {
        let prefix = match Prefix::kind(kind.name()) {
            Ok(prefix) => prefix,
            Err(e) => return e,
        };
        match store.list_all(&prefix, &Selector::everything()).await {
            Ok(page) => {
                listed_at.insert(kind.name(), page.revision);
                items.extend(page.items);
            }
            Err(e) => return e,
        }
    }
    let (Some(&first), Some(&last)) = (listed_at.values().min(), listed_at.values().max()) else {
        return StoreError::Internal("no kind to follow".into());
    };
    shared.change_rules(|rules| rules.replace_all(&items, last));
    shared.set_store_error(None);
    shared.followed(last);
    let mut watch = match store.watch(&Prefix::all(), first + 1).await {
        Ok(watch) => watch,
        Err(e) => return e,
    };
    let mut revision = last;
    while let Some(batch) = watch.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => return e,
        };
        shared.change_rules(|rules| {
            let mut changed = Vec::new();
            for event in &batch.events {
                revision = revision.max(event.revision());
                let kind = event.key().kind();
                if listed_at.get(kind).is_none_or(|&listed| event.revision() <= listed) {
                    continue;
                }
                for key in rules.apply(event) {
                    if !changed.contains(&key) {
                        changed.push(key);
                    }
                }
            }
            changed
        });
        shared.followed(revision);
    }
    StoreError::Unavailable("the watch ended".into())
}
