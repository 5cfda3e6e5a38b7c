//! History on PostgreSQL: compaction keeps what reads at its revision need, the history is
//! bounded on its own, and large revisions reach watchers whole.

mod common;

use std::time::Duration;

use bosun_store::conformance::next_events;
use bosun_store::{Event, Key, ListOptions, Op, Prefix, Store, StoreError, StoreExt, Value};
use bosun_store_postgres::{PostgresOptions, PostgresStore};
use futures::StreamExt;

fn key(name: &str) -> Key {
    Key::new("Cluster", "ns", name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_state_at_its_revision() {
    let store = common::connect(&common::new_database()).await;
    let prefix = Prefix::namespace("Cluster", "ns").unwrap();
    store.put(key("a"), Value::new("1")).await.unwrap();
    store.put(key("a"), Value::new("2")).await.unwrap();
    store.put(key("b"), Value::new("b")).await.unwrap();
    store.delete(key("b")).await.unwrap();
    let at = store.put(key("c"), Value::new("c")).await.unwrap();
    let first =
        store.list(&ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(first.revision, at);
    assert_eq!((first.items[0].key.name(), &first.items[0].value.data[..]), ("a", &b"2"[..]));
    // Later writes, then a compaction at the list's revision: the rest of the list still reads it.
    store.put(key("a"), Value::new("3")).await.unwrap();
    store.delete(key("c")).await.unwrap();
    store.put(key("d"), Value::new("d")).await.unwrap();
    store.compact(at).await.unwrap();
    let next =
        ListOptions { prefix: prefix.clone(), continue_token: first.continue_token.clone(), ..Default::default() };
    let rest = store.list(&next).await.unwrap();
    assert_eq!(rest.items.iter().map(|kv| kv.key.name()).collect::<Vec<_>>(), ["c"]);
    assert_eq!((rest.revision, rest.items[0].mod_revision, rest.items[0].version), (at, at, 1));
    // A watch from the compaction revision sees every later change.
    let mut watch = store.watch(&prefix, at).await.unwrap();
    let events = next_events(&mut watch, 4, Duration::from_secs(10)).await;
    assert_eq!(events[0].revision(), at);
    assert!(matches!(&events[2], Event::Delete { key: k, .. } if k.name() == "c"));
    // Compacting past the list's revision expires its token; compacting the future is refused.
    let now = store.revision().await.unwrap();
    store.compact(now).await.unwrap();
    assert!(matches!(store.list(&next).await, Err(StoreError::Compacted { requested, .. }) if requested == at));
    assert!(matches!(store.compact(now + 10).await, Err(StoreError::FutureRevision { .. })));
    store.compact(at).await.expect("compacting an older revision again does nothing");
    let all = store.list_all(&prefix, &bosun_store::Selector::everything()).await.unwrap();
    assert_eq!(all.items.iter().map(|kv| kv.key.name()).collect::<Vec<_>>(), ["a", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_bounded_on_its_own() {
    let options =
        PostgresOptions { history_revisions: 5, compaction_interval: Duration::from_millis(100), ..common::options() };
    let store = PostgresStore::connect(&common::new_database(), options).await.unwrap();
    let prefix = Prefix::namespace("Cluster", "ns").unwrap();
    let first = store.put(key("k0"), Value::new("x")).await.unwrap();
    for i in 1..20 {
        store.put(key(&format!("k{i}")), Value::new("x")).await.unwrap();
    }
    let last = store.revision().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.watch(&prefix, first).await {
            Err(StoreError::Compacted { .. }) => break,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never compacted");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let mut watch = store.watch(&prefix, last - 4).await.unwrap();
    let events = next_events(&mut watch, 5, Duration::from_secs(10)).await;
    assert_eq!(events[4].revision(), last);
    let all = store.list_all(&prefix, &bosun_store::Selector::everything()).await.unwrap();
    assert_eq!(all.items.len(), 20, "compaction never touches current data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_revisions_reach_watchers_whole() {
    let store = common::connect(&common::new_database()).await;
    let prefix = Prefix::namespace("Cluster", "ns").unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let from = store.revision().await.unwrap() + 1;
    for chunk in 0..12 {
        let ops = (0..125)
            .map(|i| Op::put(key(&format!("k{:05}", chunk * 125 + i)), Value::new("x").with_lease(lease.id)))
            .collect();
        store.txn(ops).await.unwrap();
    }
    store.revoke_lease(lease.id).await.unwrap();
    // 12 revisions of 125 puts, then one of 1500 deletes: more than one read takes.
    let mut watch = store.watch(&prefix, from).await.unwrap();
    let mut sizes = Vec::new();
    while sizes.len() < 13 {
        let batch = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
        let revision = batch.events[0].revision();
        assert!(batch.events.iter().all(|e| e.revision() == revision), "one revision per batch");
        sizes.push(batch.events.len());
    }
    assert_eq!(sizes[..12], [125; 12]);
    assert_eq!(sizes[12], 1500, "a lease's keys are deleted in one revision, delivered whole");
    assert!(tokio::time::timeout(Duration::from_millis(300), watch.next()).await.is_err());
}
