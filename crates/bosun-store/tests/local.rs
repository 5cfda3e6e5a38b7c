//! The local store's own behaviour beyond the conformance suite: reads at compacted boundaries,
//! automatic compaction, long and slow watches, the end of watches, leases across restarts.

use std::time::Duration;

use bosun_store::conformance::next_events;
use bosun_store::{
    Event, Expect, Key, LeaseId, ListOptions, LocalOptions, LocalStore, Op, Prefix, Selector, Store, StoreError,
    StoreExt, Value,
};
use futures::StreamExt;

fn key(ns: &str, name: &str) -> Key {
    Key::new("Item", ns, name).unwrap()
}

fn names(items: &[bosun_store::KeyValue]) -> Vec<String> {
    items.iter().map(|kv| kv.key.name().to_owned()).collect()
}

/// Every page of a list read at the first page's revision.
async fn list_pages(store: &LocalStore, prefix: &Prefix, limit: u32) -> (i64, Vec<bosun_store::KeyValue>) {
    let mut options = ListOptions { prefix: prefix.clone(), limit: Some(limit), ..Default::default() };
    let first = store.list(&options).await.unwrap();
    let mut items = first.items;
    options.continue_token = first.continue_token;
    while options.continue_token.is_some() {
        let page = store.list(&options).await.unwrap();
        assert_eq!(page.revision, first.revision);
        items.extend(page.items);
        options.continue_token = page.continue_token;
    }
    (first.revision, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_reads_stay_exact_across_a_compaction() {
    let store = LocalStore::memory().unwrap();
    let prefix = Prefix::namespace("Item", "ns").unwrap();
    // Several versions, a deletion and a re-creation before the pinned revision.
    for i in 0..5 {
        store.put(key("ns", "a"), Value::new(format!("a{i}"))).await.unwrap();
    }
    store.put(key("ns", "b"), Value::new("b")).await.unwrap();
    store.delete(key("ns", "b")).await.unwrap();
    store.put(key("ns", "c"), Value::new("c0")).await.unwrap();
    store.delete(key("ns", "c")).await.unwrap();
    store.put(key("ns", "c"), Value::new("c1")).await.unwrap();
    store.put(key("ns", "d"), Value::new("d")).await.unwrap();
    let first =
        store.list(&ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() }).await.unwrap();
    let pinned = first.revision;
    assert_eq!(names(&first.items), ["a"]);
    // Changes after the pin, then a compaction up to it.
    store.put(key("ns", "c"), Value::new("c2")).await.unwrap();
    store.delete(key("ns", "d")).await.unwrap();
    store.put(key("ns", "e"), Value::new("e")).await.unwrap();
    store.compact(pinned).await.unwrap();
    let mut options = ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() };
    options.continue_token = first.continue_token;
    let mut items = first.items;
    while options.continue_token.is_some() {
        let page = store.list(&options).await.unwrap();
        assert_eq!(page.revision, pinned);
        items.extend(page.items);
        options.continue_token = page.continue_token;
    }
    let data: Vec<_> = items.iter().map(|kv| String::from_utf8_lossy(&kv.value.data).into_owned()).collect();
    assert_eq!(data, ["a4", "c1", "d"]);
    assert_eq!((items[0].version, items[1].version), (5, 1), "versions as of the pinned revision");
    // The current state.
    let (_, now) = list_pages(&store, &prefix, 2).await;
    assert_eq!(names(&now), ["a", "c", "e"]);
    // Compacting into the future is refused; compacting again is a no-op.
    let current = store.revision().await.unwrap();
    assert!(matches!(store.compact(current + 1).await, Err(StoreError::FutureRevision { .. })));
    store.compact(pinned).await.unwrap();
    store.compact(pinned - 1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_compacted_automatically() {
    let options = LocalOptions { history_revisions: 20, ..Default::default() };
    let store = LocalStore::memory_with(options).unwrap();
    for i in 0..200 {
        store.put(key("ns", &format!("k{}", i % 7)), Value::new(format!("{i}"))).await.unwrap();
    }
    let current = store.revision().await.unwrap();
    assert!(matches!(store.watch(&Prefix::all(), 1).await, Err(StoreError::Compacted { .. })));
    // The last `history_revisions` are always kept.
    let mut watch = store.watch(&Prefix::all(), current - 19).await.unwrap();
    let events = next_events(&mut watch, 20, Duration::from_secs(10)).await;
    assert_eq!(events.last().unwrap().revision(), current);
    let all = store.list_all(&Prefix::all(), &Selector::everything()).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert!(all.items.iter().all(|kv| kv.version > 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_reads_long_history_in_order() {
    let store = LocalStore::memory().unwrap();
    let prefix = Prefix::namespace("Item", "ns").unwrap();
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&prefix, from).await.unwrap();
    for chunk in 0..10 {
        let ops = (0..100).map(|i| Op::put(key("ns", &format!("k{chunk}-{i}")), Value::new("x"))).collect();
        store.txn(ops).await.unwrap();
        for i in 0..60 {
            store.put(key("ns", &format!("single{i}")), Value::new(format!("{chunk}"))).await.unwrap();
            store.put(key("other", "x"), Value::new("noise")).await.unwrap();
        }
    }
    // 10 × (one batch of 100 + 60 singles), read long after they were written.
    let mut batches = Vec::new();
    while batches.len() < 610 {
        let batch = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
        batches.push(batch);
    }
    let sizes: Vec<usize> = batches.iter().map(|b| b.events.len()).collect();
    assert_eq!(sizes.iter().filter(|&&n| n == 100).count(), 10, "a transaction is never split");
    let revisions: Vec<i64> = batches.iter().map(|b| b.events[0].revision()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "in order, no duplicate");
    assert!(batches.iter().all(|b| b.events.iter().all(|e| e.key().namespace() == "ns")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_from_the_future_wait_and_end_with_the_store() {
    let store = LocalStore::memory().unwrap();
    let current = store.revision().await.unwrap();
    let mut watch = store.watch(&Prefix::all(), current + 3).await.unwrap();
    for i in 0..3 {
        store.put(key("ns", &format!("k{i}")), Value::new("x")).await.unwrap();
    }
    let events = next_events(&mut watch, 1, Duration::from_secs(10)).await;
    assert_eq!(events[0].key().name(), "k2");
    // Closing ends the stream.
    let mut other = store.watch(&Prefix::all(), current + 10).await.unwrap();
    store.close().await;
    assert!(tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().is_none());
    assert!(tokio::time::timeout(Duration::from_secs(5), other.next()).await.unwrap().is_none());
    assert!(matches!(store.get(&key("ns", "k0")).await, Err(StoreError::Unavailable(_))));
    // Dropping ends the stream too.
    let store = LocalStore::memory().unwrap();
    let mut watch = store.watch(&Prefix::all(), 5).await.unwrap();
    drop(store);
    assert!(tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_promptly_after_a_restart_and_ids_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let short = store.grant_lease(Duration::from_millis(10)).await.unwrap();
    assert_eq!(short.ttl, Duration::from_secs(1), "rounded up to the minimum");
    let long = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store.put(key("ns", "short"), Value::new("x").with_lease(short.id)).await.unwrap();
    store.put(key("ns", "long"), Value::new("x").with_lease(long.id)).await.unwrap();
    // Moving a key to another lease detaches it from the first.
    store.put(key("ns", "moved"), Value::new("x").with_lease(short.id)).await.unwrap();
    store.put(key("ns", "moved"), Value::new("x").with_lease(long.id)).await.unwrap();
    let from = store.revision().await.unwrap() + 1;
    store.close().await;
    drop(store);
    // The short lease's deadline passes while no process has the store open.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let store = LocalStore::open(dir.path()).await.unwrap();
    let mut watch = store.watch(&Prefix::all(), from).await.unwrap();
    let events = next_events(&mut watch, 1, Duration::from_secs(2)).await;
    assert!(matches!(&events[0], Event::Delete { key, .. } if key.name() == "short"), "{events:?}");
    assert!(store.get(&key("ns", "moved")).await.unwrap().is_some());
    assert!(store.get(&key("ns", "long")).await.unwrap().is_some());
    assert_eq!(store.keep_alive(short.id).await, Err(StoreError::LeaseNotFound(short.id.0)));
    let next = store.grant_lease(Duration::from_secs(5)).await.unwrap();
    assert!(next.id > long.id, "lease ids are never reused");
    // Revoking a lease without keys makes no revision; an unknown lease is not found.
    let before = store.revision().await.unwrap();
    store.revoke_lease(next.id).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before);
    assert_eq!(store.revoke_lease(LeaseId(999_999)).await, Err(StoreError::LeaseNotFound(999_999)));
    store.revoke_lease(long.id).await.unwrap();
    let events = next_events(&mut watch, 2, Duration::from_secs(2)).await;
    assert_eq!(events[0].revision(), events[1].revision());
    assert_eq!(events.iter().map(|e| e.key().name().to_owned()).collect::<Vec<_>>(), ["long", "moved"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(bosun_store::DATA_FILE), vec![0x5a; 10_000]).unwrap();
    let err = LocalStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_) | StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("bosun.redb"), "{err}");
}

/// Concurrent writers share commits (group commit), yet each transaction keeps its own revision
/// and its own outcome: the ones whose precondition fails fail alone and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_keeps_each_transaction_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LocalStore::open(dir.path()).await.unwrap());
    let taken = key("g", "taken");
    store.put(taken.clone(), Value::new("x")).await.unwrap();
    let from = store.revision().await.unwrap() + 1;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (store, taken) = (store.clone(), taken.clone());
        tasks.push(tokio::spawn(async move {
            let mut ops = vec![Op::put(key("g", &format!("k{i:02}")), Value::new(format!("{i}")))];
            if i % 4 == 0 {
                // Conflicts: the key exists.
                ops.push(Op::Put { key: taken, value: Value::new("y"), expect: Expect::Absent });
            }
            (i, store.txn(ops).await)
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        if i % 4 == 0 {
            assert!(matches!(result, Err(StoreError::Conflict { .. })), "{i}: {result:?}");
            assert_eq!(store.get(&key("g", &format!("k{i:02}"))).await.unwrap(), None, "{i} wrote nothing");
        } else {
            revisions.push(result.unwrap().revision);
        }
    }
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), 48, "one revision per successful transaction");
    let mut watch = store.watch(&Prefix::namespace("Item", "g").unwrap(), from).await.unwrap();
    let events = next_events(&mut watch, 48, Duration::from_secs(10)).await;
    assert_eq!(events.iter().map(|e| e.revision()).collect::<Vec<_>>(), revisions);
    assert_eq!(store.get(&taken).await.unwrap().unwrap().value.data, "x");
}
