//! The background tasks of a store: the notification listener and the maintenance loop.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::{Shared, Wake, write};

/// How long the listener waits before connecting again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Most leases one maintenance round expires (the next round goes on).
const EXPIRIES_PER_ROUND: usize = 1000;

/// Wakes the watchers if `revision` is newer than the last one they were told of.
pub(crate) fn notify(wake: &watch::Sender<Wake>, revision: i64) {
    wake.send_if_modified(|w| {
        let newer = revision > w.revision;
        w.revision = w.revision.max(revision);
        newer
    });
}

/// Listens for the revisions written by every replica and wakes this replica's watchers. After a
/// lost connection it reconnects and wakes them anyway: notifications sent meanwhile are lost,
/// and the watchers read the history to find out.
pub(crate) async fn listen(shared: Arc<Shared>, wake: Arc<watch::Sender<Wake>>) {
    loop {
        let mut listener = match PgListener::connect_with(&shared.pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "postgres store: cannot connect the notification listener; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(&shared.sql.channel).await {
            tracing::warn!(error = %e, "postgres store: LISTEN failed; retrying");
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        }
        // Whatever was notified before LISTEN took effect, the watchers read now.
        wake.send_modify(|_| {});
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.payload().parse::<i64>() {
                    Ok(revision) => notify(&wake, revision),
                    Err(_) => tracing::warn!(payload = notification.payload(), "postgres store: odd notification"),
                },
                Ok(None) => {
                    tracing::warn!("postgres store: the notification listener lost its connection; reconnecting");
                    wake.send_modify(|_| {});
                }
                Err(e) => {
                    tracing::warn!(error = %e, "postgres store: the notification listener failed; reconnecting");
                    wake.send_modify(|_| {});
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    break;
                }
            }
        }
    }
}

/// Expires due leases (each in one revision; `SKIP LOCKED` lets replicas share the work) and
/// keeps the history to `history_revisions`.
pub(crate) async fn maintain(shared: Arc<Shared>, wake: Arc<watch::Sender<Wake>>) {
    let options = &shared.options;
    let mut leases = tokio::time::interval(options.lease_check_interval);
    leases.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut compaction = tokio::time::interval(options.compaction_interval);
    compaction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = leases.tick() => expire_due(&shared, &wake).await,
            _ = compaction.tick() => bound_history(&shared).await,
        }
    }
}

async fn expire_due(shared: &Shared, wake: &watch::Sender<Wake>) {
    for _ in 0..EXPIRIES_PER_ROUND {
        match write::expire_one(shared).await {
            Ok(None) => return,
            Ok(Some(Some(revision))) => notify(wake, revision),
            Ok(Some(None)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "postgres store: expiring leases failed");
                return;
            }
        }
    }
}

async fn bound_history(shared: &Shared) {
    let result = async {
        let mut conn = shared.pool.acquire().await.map_err(|e| crate::error::db("acquiring a connection", e))?;
        let (current, compaction) = write::state(shared, &mut conn).await?;
        drop(conn);
        let keep_from = current - shared.options.history_revisions + 1;
        if keep_from > compaction { write::compact(shared, keep_from).await } else { Ok(()) }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "postgres store: compacting the history failed");
    }
}
