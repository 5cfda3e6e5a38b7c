//! The conformance suite: one set of tests that every [`Store`] backend passes.
//!
//! A backend's test file implements [`Harness`] and expands [`conformance_suite!`](crate::conformance_suite):
//!
//! ```ignore
//! bosun_store::conformance_suite!(my_harness().await);
//! ```
//!
//! Tests do not assume they have the store to themselves: each works in namespaces of its own and
//! asserts only relative revisions, so a harness may share one server between tests. The one
//! exception is `compaction_is_reported`, which compacts the whole store: a harness whose tests
//! share a server must make sure no other test's watch or list needs the history it drops (the
//! etcd harness gives each test its own etcd).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::{
    Event, Expect, Key, KeyValue, LeaseId, ListOptions, Op, Prefix, Revision, Selector, Store, StoreError, StoreExt,
    Value, WatchStream,
};

/// How a backend's tests open its store.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// Opens the store. For a persistent backend, calling it again after the previous store was
    /// closed opens the same data: a restart of Bosun.
    async fn open(&self) -> Arc<dyn Store>;

    /// Whether the data survives [`Harness::open`] again (the restart tests run only then).
    fn persistent(&self) -> bool;
}

/// Expands to one `#[tokio::test]` per conformance test, each getting a harness from `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            put_get_and_revisions, delete_and_noop_delete, txn_is_all_or_nothing, compare_and_swap,
            concurrent_cas_is_linearizable, list_by_prefix_and_selector, pagination_is_consistent_under_writes,
            watch_replays_history_in_order, watch_delivers_live_changes, watch_resumes_without_gap_or_duplicate,
            watch_filters_by_prefix, compaction_is_reported, lease_expiry_deletes_keys, lease_keep_alive_renews,
            lease_revoke_deletes_keys_at_once, unknown_lease_writes_nothing, large_values, ten_thousand_keys,
            bad_input_writes_nothing, restart_keeps_data_and_history, lease_survives_restart);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $make;
                $crate::conformance::$name(&harness).await;
            }
        )*
    };
}

/// A namespace no other test uses, so tests can share a server.
pub fn unique_namespace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{}-{}-{}", std::process::id(), nanos % 1_000_000_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn key(kind: &str, ns: &str, name: &str) -> Key {
    Key::new(kind, ns, name).expect("test key")
}

fn val(data: &str) -> Value {
    Value::new(Bytes::copy_from_slice(data.as_bytes()))
}

fn data(kv: &KeyValue) -> &[u8] {
    &kv.value.data
}

/// The next `n` events of `stream`, waiting at most `within`.
pub async fn next_events(stream: &mut WatchStream, n: usize, within: Duration) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while events.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(batch))) => {
                assert!(!batch.events.is_empty(), "a watch batch is never empty");
                events.extend(batch.events);
            }
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", events.len()),
            Ok(None) => panic!("watch ended after {} of {n} events", events.len()),
            Err(_) => panic!("only {} of {n} events within {within:?}: {events:?}", events.len()),
        }
    }
    assert_eq!(events.len(), n, "more events than written: {events:?}");
    events
}

/// Asserts that nothing arrives on `stream` for `quiet`.
async fn assert_quiet(stream: &mut WatchStream, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn put_of(event: &Event) -> &KeyValue {
    match event {
        Event::Put(kv) => kv,
        Event::Delete { key, .. } => panic!("expected a put, got the delete of {key}"),
    }
}

pub async fn put_get_and_revisions(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let a = key("Cluster", &ns, "a");
    let before = store.revision().await.unwrap();
    let r1 = store.put(a.clone(), val("one").label("app", "reviews")).await.unwrap();
    assert!(r1 > before, "a put moves the revision forward");
    let kv = store.get(&a).await.unwrap().expect("written");
    assert_eq!((data(&kv), kv.create_revision, kv.mod_revision, kv.version), (&b"one"[..], r1, r1, 1));
    assert_eq!(kv.value.labels.get("app").map(String::as_str), Some("reviews"));
    let r2 = store.put(a.clone(), val("two")).await.unwrap();
    assert!(r2 > r1);
    let kv = store.get(&a).await.unwrap().expect("written");
    assert_eq!((data(&kv), kv.create_revision, kv.mod_revision, kv.version), (&b"two"[..], r1, r2, 2));
    assert!(kv.value.labels.is_empty(), "a put replaces the labels too");
    assert!(store.revision().await.unwrap() >= r2);
    assert_eq!(store.get(&key("Cluster", &ns, "missing")).await.unwrap(), None);
}

pub async fn delete_and_noop_delete(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let a = key("Cluster", &ns, "a");
    let r1 = store.put(a.clone(), val("x")).await.unwrap();
    assert!(store.delete(a.clone()).await.unwrap());
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert!(!store.delete(a.clone()).await.unwrap(), "deleting an absent key says so");
    // Re-creating starts a new life: version 1, a new create revision.
    let r3 = store.put(a.clone(), val("y")).await.unwrap();
    let kv = store.get(&a).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (r3, 1));
    assert!(r3 > r1);
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), r1).await.unwrap();
    let events = next_events(&mut watch, 3, Duration::from_secs(10)).await;
    assert!(matches!(&events[1], Event::Delete { key, .. } if *key == a));
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn txn_is_all_or_nothing(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let (a, b, c) = (key("Cluster", &ns, "a"), key("Cluster", &ns, "b"), key("Listener", &ns, "c"));
    store.put(b.clone(), val("b0")).await.unwrap();
    let result = store
        .txn(vec![Op::put(a.clone(), val("a1")), Op::Put { key: b.clone(), value: val("b1"), expect: Expect::Absent }])
        .await;
    assert!(matches!(result, Err(StoreError::Conflict { ref key, .. }) if key == b.as_str()), "{result:?}");
    assert_eq!(store.get(&a).await.unwrap(), None, "a failed transaction writes nothing");
    assert_eq!(data(&store.get(&b).await.unwrap().unwrap()), b"b0");

    let ok = store
        .txn(vec![Op::put(a.clone(), val("a1")), Op::delete(b.clone()), Op::put(c.clone(), val("c1"))])
        .await
        .unwrap();
    assert_eq!(ok.prev.len(), 3);
    assert!(ok.prev[0].is_none() && ok.prev[2].is_none());
    assert_eq!(data(ok.prev[1].as_ref().expect("b existed")), b"b0");
    let (ka, kc) = (store.get(&a).await.unwrap().unwrap(), store.get(&c).await.unwrap().unwrap());
    assert_eq!((ka.mod_revision, kc.mod_revision), (ok.revision, ok.revision), "one revision per transaction");
    assert_eq!(store.get(&b).await.unwrap(), None);

    // The transaction's changes arrive together.
    let mut watch = store.watch(&Prefix::all(), ok.revision).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap().unwrap();
    let mine: Vec<_> = batch.events.iter().filter(|e| e.key().namespace() == ns).collect();
    assert_eq!(mine.len(), 3, "{batch:?}");
    assert!(mine.iter().all(|e| e.revision() == ok.revision));
}

pub async fn compare_and_swap(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let a = key("Cluster", &ns, "a");
    let r1 = store.put_if(a.clone(), val("1"), Expect::Absent).await.unwrap();
    let err = store.put_if(a.clone(), val("2"), Expect::Absent).await.unwrap_err();
    assert_eq!(err, StoreError::Conflict { key: a.to_string(), expected: "absent".into(), actual: r1 });
    let r2 = store.put_if(a.clone(), val("2"), Expect::ModRevision(r1)).await.unwrap();
    let err = store.put_if(a.clone(), val("3"), Expect::ModRevision(r1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual, .. } if actual == r2), "{err:?}");
    assert!(store.delete_if(a.clone(), Expect::ModRevision(r1)).await.is_err());
    assert_eq!(data(&store.get(&a).await.unwrap().unwrap()), b"2");
    assert!(store.delete_if(a.clone(), Expect::ModRevision(r2)).await.unwrap());
    let err = store.put_if(a.clone(), val("4"), Expect::ModRevision(r2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: 0, .. }), "an absent key has mod revision 0: {err:?}");
}

pub async fn concurrent_cas_is_linearizable(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let counter = key("Counter", &ns, "c");
    store.put(counter.clone(), val("0")).await.unwrap();
    let (writers, increments) = (4, 25);
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, counter) = (store.clone(), counter.clone());
        tasks.push(tokio::spawn(async move { cas_increment(&*store, &counter, increments).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = store.get(&counter).await.unwrap().unwrap();
    assert_eq!(data(&kv), (writers * increments).to_string().as_bytes(), "no lost update");
    assert_eq!(kv.version, 1 + (writers * increments) as i64);
}

/// Increments the decimal counter at `key` `times` times by compare-and-swap, reading it again
/// after every conflict: a writer for the tests that no update is lost between writers.
pub async fn cas_increment<S: Store + ?Sized>(store: &S, key: &Key, times: usize) {
    let (mut done, mut attempts) = (0, 0);
    while done < times {
        attempts += 1;
        assert!(attempts < 10_000, "CAS never succeeded");
        let kv = store.get(key).await.unwrap().expect("the counter exists");
        let n: u64 = std::str::from_utf8(&kv.value.data).unwrap().parse().unwrap();
        match store.put_if(key.clone(), val(&(n + 1).to_string()), Expect::ModRevision(kv.mod_revision)).await {
            Ok(_) => done += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

pub async fn list_by_prefix_and_selector(h: &impl Harness) {
    let store = h.open().await;
    let (ns, other) = (unique_namespace(), unique_namespace());
    let mut ops = Vec::new();
    for (i, name) in ["c", "a", "b"].iter().enumerate() {
        let app = if i == 1 { "ratings" } else { "reviews" };
        ops.push(Op::put(key("Cluster", &ns, name), val(name).label("app", app).label("tier", "web")));
    }
    ops.push(Op::put(key("Cluster", &other, "a"), val("other")));
    ops.push(Op::put(key("Listener", &ns, "l"), val("l")));
    ops.push(Op::put(key("Cluster", &ns, "ab"), val("ab")));
    let rev = store.txn(ops).await.unwrap().revision;

    let names = |page: &crate::ListPage| page.items.iter().map(|kv| kv.key.name().to_owned()).collect::<Vec<_>>();
    let all = store.list_all(&Prefix::namespace("Cluster", &ns).unwrap(), &Selector::everything()).await.unwrap();
    assert_eq!(names(&all), ["a", "ab", "b", "c"], "key order, this namespace only");
    assert!(all.revision >= rev);
    let sel = Selector::parse("app=reviews").unwrap();
    let reviews = store.list_all(&Prefix::namespace("Cluster", &ns).unwrap(), &sel).await.unwrap();
    assert_eq!(names(&reviews), ["b", "c"]);
    let sel = Selector::parse("app in (reviews, ratings),tier=web").unwrap();
    assert_eq!(
        names(&store.list_all(&Prefix::namespace("Cluster", &ns).unwrap(), &sel).await.unwrap()),
        ["a", "b", "c"]
    );
    let by_name = store.list_all(&Prefix::name("Cluster", &ns, "a").unwrap(), &Selector::everything()).await.unwrap();
    assert_eq!(names(&by_name), ["a", "ab"]);
    let kind = store.list_all(&Prefix::kind("Listener").unwrap(), &Selector::everything()).await.unwrap();
    assert!(kind.items.iter().any(|kv| kv.key == key("Listener", &ns, "l")));
    assert!(kind.items.iter().all(|kv| kv.key.kind() == "Listener"));
}

pub async fn pagination_is_consistent_under_writes(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let prefix = Prefix::namespace("Item", &ns).unwrap();
    let ops = (0..25)
        .map(|i| {
            Op::put(
                key("Item", &ns, &format!("k{i:02}")),
                val(&format!("v{i}")).label("even", if i % 2 == 0 { "yes" } else { "no" }),
            )
        })
        .collect();
    store.txn(ops).await.unwrap();

    let mut options = ListOptions { prefix: prefix.clone(), limit: Some(10), ..Default::default() };
    let first = store.list(&options).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let token = first.continue_token.clone().expect("more pages");
    // Writes between pages: the next pages still show the list's revision.
    store.delete(key("Item", &ns, "k20")).await.unwrap();
    store.put(key("Item", &ns, "k15"), val("changed")).await.unwrap();
    store.put(key("Item", &ns, "k99"), val("new")).await.unwrap();
    let mut seen: Vec<KeyValue> = first.items;
    options.continue_token = Some(token);
    loop {
        let page = store.list(&options).await.unwrap();
        assert_eq!(page.revision, first.revision, "every page reads at the first page's revision");
        assert!(page.items.len() <= 10);
        seen.extend(page.items);
        match page.continue_token {
            Some(t) => options.continue_token = Some(t),
            None => break,
        }
    }
    let names: Vec<_> = seen.iter().map(|kv| kv.key.name().to_owned()).collect();
    let want: Vec<_> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(names, want, "each key exactly once, as of the first page");
    assert_eq!(data(&seen[15]), b"v15");

    // A selector with a limit: pages hold matching items only.
    let mut options = ListOptions {
        prefix: prefix.clone(),
        selector: Selector::parse("even=yes").unwrap(),
        limit: Some(4),
        ..Default::default()
    };
    let mut matched = 0;
    loop {
        let page = store.list(&options).await.unwrap();
        assert!(page.items.iter().all(|kv| kv.value.labels.get("even").map(String::as_str) == Some("yes")));
        matched += page.items.len();
        match page.continue_token {
            Some(t) => options.continue_token = Some(t),
            None => break,
        }
    }
    assert_eq!(matched, 12, "k00..k24 even, minus k20 deleted, plus none new (k99 has no label)");

    // A token is for its own list only, and garbage is refused.
    let page = store.list(&ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() }).await.unwrap();
    let other = ListOptions {
        prefix: Prefix::namespace("Item", "elsewhere").unwrap(),
        continue_token: page.continue_token,
        ..Default::default()
    };
    assert!(
        matches!(store.list(&other).await, Err(StoreError::InvalidArgument { ref field, .. }) if field == "continue")
    );
    let garbage = ListOptions { prefix, continue_token: Some("!!".into()), ..Default::default() };
    assert!(matches!(store.list(&garbage).await, Err(StoreError::InvalidArgument { .. })));
}

pub async fn watch_replays_history_in_order(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let start = store.revision().await.unwrap() + 1;
    let mut revisions = Vec::new();
    for i in 0..20 {
        let k = key("Cluster", &ns, &format!("k{}", i % 5));
        revisions.push(if i % 7 == 6 {
            store.txn(vec![Op::delete(k)]).await.unwrap().revision
        } else {
            store.put(k, val(&i.to_string())).await.unwrap()
        });
    }
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), start).await.unwrap();
    let events = next_events(&mut watch, 20, Duration::from_secs(10)).await;
    let got: Vec<Revision> = events.iter().map(Event::revision).collect();
    assert_eq!(got, revisions, "every change once, in order");
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Put(kv) => assert_eq!(data(kv), i.to_string().as_bytes()),
            Event::Delete { key, .. } => assert_eq!(key.name(), format!("k{}", i % 5)),
        }
    }
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn watch_delivers_live_changes(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), from).await.unwrap();
    let writer = {
        let (store, ns) = (store.clone(), ns.clone());
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..50 {
                revs.push(store.put(key("Cluster", &ns, &format!("k{i}")), val("x")).await.unwrap());
            }
            revs
        })
    };
    let events = next_events(&mut watch, 50, Duration::from_secs(20)).await;
    let revs = writer.await.unwrap();
    assert_eq!(events.iter().map(Event::revision).collect::<Vec<_>>(), revs);
    assert_eq!(put_of(&events[49]).key.name(), "k49");
}

pub async fn watch_resumes_without_gap_or_duplicate(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let prefix = Prefix::namespace("Cluster", &ns).unwrap();
    let from = store.revision().await.unwrap() + 1;
    for i in 0..10 {
        store.put(key("Cluster", &ns, &format!("k{i}")), val("x")).await.unwrap();
    }
    let mut watch = store.watch(&prefix, from).await.unwrap();
    let first = next_events(&mut watch, 4, Duration::from_secs(10)).await;
    drop(watch);
    // The client reconnects from the revision after the last one it saw.
    for i in 10..15 {
        store.put(key("Cluster", &ns, &format!("k{i}")), val("x")).await.unwrap();
    }
    let mut watch = store.watch(&prefix, first[3].revision() + 1).await.unwrap();
    let rest = next_events(&mut watch, 11, Duration::from_secs(10)).await;
    let names: Vec<_> = first.iter().chain(&rest).map(|e| e.key().name().to_owned()).collect();
    assert_eq!(names, (0..15).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn watch_filters_by_prefix(h: &impl Harness) {
    let store = h.open().await;
    let (ns, other) = (unique_namespace(), unique_namespace());
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), from).await.unwrap();
    store.put(key("Cluster", &other, "a"), val("x")).await.unwrap();
    store.put(key("Listener", &ns, "a"), val("x")).await.unwrap();
    // A transaction half in, half out of the prefix delivers its half.
    store
        .txn(vec![Op::put(key("Cluster", &ns, "a"), val("in")), Op::put(key("Cluster", &other, "b"), val("out"))])
        .await
        .unwrap();
    let events = next_events(&mut watch, 1, Duration::from_secs(10)).await;
    assert_eq!(put_of(&events[0]).key, key("Cluster", &ns, "a"));
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn compaction_is_reported(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let prefix = Prefix::namespace("Cluster", &ns).unwrap();
    let r1 = store.put(key("Cluster", &ns, "a"), val("1")).await.unwrap();
    store.txn((0..3).map(|i| Op::put(key("Cluster", &ns, &format!("p{i}")), val("x"))).collect()).await.unwrap();
    let page = store.list(&ListOptions { prefix: prefix.clone(), limit: Some(1), ..Default::default() }).await.unwrap();
    let r2 = store.put(key("Cluster", &ns, "a"), val("2")).await.unwrap();
    let r3 = store.put(key("Cluster", &ns, "b"), val("3")).await.unwrap();
    store.compact(r3).await.unwrap();
    // History from r3 on is kept; before it is gone.
    let mut watch = store.watch(&prefix, r3).await.unwrap();
    assert_eq!(next_events(&mut watch, 1, Duration::from_secs(10)).await[0].revision(), r3);
    match store.watch(&prefix, r1).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, r1),
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut stream) => match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {}
            other => panic!("expected Compacted from the stream, got {other:?}"),
        },
    }
    assert!(r2 < r3);
    // The continue token of a list read before the compaction has expired.
    let next = ListOptions { prefix, continue_token: page.continue_token, ..Default::default() };
    assert!(matches!(store.list(&next).await, Err(StoreError::Compacted { .. })), "a token older than the compaction");
    // Current data is untouched.
    assert_eq!(data(&store.get(&key("Cluster", &ns, "a")).await.unwrap().unwrap()), b"2");
}

/// Waits until `key` is gone, at most `within`; returns how long it took.
async fn wait_deleted(store: &Arc<dyn Store>, key: &Key, within: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    while store.get(key).await.unwrap().is_some() {
        assert!(start.elapsed() < within, "{key} still there after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

pub async fn lease_expiry_deletes_keys(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    assert!(lease.ttl >= Duration::from_secs(2));
    let from = store.revision().await.unwrap() + 1;
    let (a, b, c) = (key("Metadata", &ns, "a"), key("Metadata", &ns, "b"), key("Metadata", &ns, "c"));
    store
        .txn(vec![Op::put(a.clone(), val("a").with_lease(lease.id)), Op::put(b.clone(), val("b").with_lease(lease.id))])
        .await
        .unwrap();
    store.put(c.clone(), val("c")).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().unwrap().value.lease, Some(lease.id));
    let mut watch = store.watch(&Prefix::namespace("Metadata", &ns).unwrap(), from).await.unwrap();
    wait_deleted(&store, &a, lease.ttl + Duration::from_secs(5)).await;
    let events = next_events(&mut watch, 5, Duration::from_secs(10)).await;
    let deletes: Vec<_> = events[3..]
        .iter()
        .map(|e| match e {
            Event::Delete { key, .. } => key.name().to_owned(),
            Event::Put(kv) => panic!("expected deletes, got a put of {}", kv.key),
        })
        .collect();
    assert_eq!(deletes, ["a", "b"]);
    assert_eq!(store.get(&b).await.unwrap(), None);
    assert!(store.get(&c).await.unwrap().is_some(), "keys without the lease stay");
    assert_eq!(store.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(lease.id.0)));
}

pub async fn lease_keep_alive_renews(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let a = key("Metadata", &ns, "a");
    store.put(a.clone(), val("a").with_lease(lease.id)).await.unwrap();
    // Renewed every half TTL for three TTLs: still there.
    let until = tokio::time::Instant::now() + lease.ttl * 3;
    while tokio::time::Instant::now() < until {
        let renewed = store.keep_alive(lease.id).await.unwrap();
        assert_eq!(renewed.id, lease.id);
        tokio::time::sleep(lease.ttl / 2).await;
        assert!(store.get(&a).await.unwrap().is_some(), "a renewed lease's key stays");
    }
    // Then no more renewals: gone within the TTL and a few seconds.
    wait_deleted(&store, &a, lease.ttl + Duration::from_secs(5)).await;
}

pub async fn lease_revoke_deletes_keys_at_once(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let ops = (0..3).map(|i| Op::put(key("Metadata", &ns, &format!("k{i}")), val("x").with_lease(lease.id))).collect();
    let from = store.txn(ops).await.unwrap().revision + 1;
    let mut watch = store.watch(&Prefix::namespace("Metadata", &ns).unwrap(), from).await.unwrap();
    store.revoke_lease(lease.id).await.unwrap();
    let events = next_events(&mut watch, 3, Duration::from_secs(10)).await;
    assert!(events.iter().all(|e| matches!(e, Event::Delete { .. })));
    assert!(events.iter().all(|e| e.revision() == events[0].revision()), "one revision for all the lease's keys");
    assert_eq!(store.get(&key("Metadata", &ns, "k0")).await.unwrap(), None);
    assert_eq!(store.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(lease.id.0)));
}

pub async fn unknown_lease_writes_nothing(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let a = key("Metadata", &ns, "a");
    let bogus = LeaseId(0x7fff_0000_1234);
    let result = store
        .txn(vec![Op::put(key("Metadata", &ns, "b"), val("b")), Op::put(a.clone(), val("a").with_lease(bogus))])
        .await;
    assert_eq!(result, Err(StoreError::LeaseNotFound(bogus.0)));
    assert_eq!(store.get(&key("Metadata", &ns, "b")).await.unwrap(), None, "nothing of the transaction is written");
}

pub async fn large_values(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let big: Vec<u8> = (0..crate::validate::MAX_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    let a = key("Blob", &ns, "a");
    store.put(a.clone(), Value::new(big.clone())).await.unwrap();
    assert_eq!(&store.get(&a).await.unwrap().unwrap().value.data[..], &big[..]);
    let mut bigger = big.clone();
    bigger.push(0);
    let err = store.put(a.clone(), Value::new(bigger)).await.unwrap_err();
    assert!(matches!(&err, StoreError::InvalidArgument { field, .. } if field == "ops[0].value"), "{err:?}");
    assert_eq!(store.get(&a).await.unwrap().unwrap().value.data.len(), big.len(), "the old value stays");
}

pub async fn ten_thousand_keys(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    for chunk in 0..100 {
        let ops = (0..100)
            .map(|i| {
                Op::put(
                    key("Endpoint", &ns, &format!("e{:05}", chunk * 100 + i)),
                    val("10.0.0.1:8080").label("app", "svc"),
                )
            })
            .collect();
        store.txn(ops).await.unwrap();
    }
    let all = store.list_all(&Prefix::namespace("Endpoint", &ns).unwrap(), &Selector::everything()).await.unwrap();
    assert_eq!(all.items.len(), 10_000);
    assert!(all.items.windows(2).all(|w| w[0].key < w[1].key));
    let page = store
        .list(&ListOptions {
            prefix: Prefix::namespace("Endpoint", &ns).unwrap(),
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert!(page.continue_token.is_some());
}

pub async fn bad_input_writes_nothing(h: &impl Harness) {
    let store = h.open().await;
    let ns = unique_namespace();
    let good = key("Cluster", &ns, "good");
    let before = store.revision().await.unwrap();
    let cases: Vec<(Vec<Op>, &str)> = vec![
        (vec![], "ops"),
        (
            vec![
                Op::put(good.clone(), val("x")),
                Op::put(key("Cluster", &ns, "b"), val("x").label("app", "not valid")),
            ],
            "ops[1].labels[\"app\"]",
        ),
        (vec![Op::put(good.clone(), val("x")), Op::put(good.clone(), val("y"))], "ops[1].key"),
        (vec![Op::put(good.clone(), val("x").label("", "v"))], "ops[0].labels[\"\"]"),
        ((0..129).map(|i| Op::put(key("Cluster", &ns, &format!("k{i}")), val("x"))).collect(), "ops"),
    ];
    for (ops, field) in cases {
        match store.txn(ops).await {
            Err(StoreError::InvalidArgument { field: got, reason }) => {
                assert_eq!(got, field, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected InvalidArgument for {field}, got {other:?}"),
        }
    }
    assert_eq!(store.get(&good).await.unwrap(), None);
    let page = store
        .list(&ListOptions { prefix: Prefix::namespace("Cluster", &ns).unwrap(), ..Default::default() })
        .await
        .unwrap();
    assert!(page.items.is_empty());
    // Nothing else wrote in this namespace, and the refused writes made no revision of their own.
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), before + 1).await.unwrap();
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn restart_keeps_data_and_history(h: &impl Harness) {
    if !h.persistent() {
        return;
    }
    let ns = unique_namespace();
    let store = h.open().await;
    let from = store.revision().await.unwrap() + 1;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(
            store.put(key("Cluster", &ns, &format!("k{i}")), val(&i.to_string()).label("app", "x")).await.unwrap(),
        );
    }
    store.delete(key("Cluster", &ns, "k3")).await.unwrap();
    let last = store.revision().await.unwrap();
    store.close().await;
    drop(store);

    let store = h.open().await;
    assert!(store.revision().await.unwrap() >= last, "the revision never goes back");
    let kv = store.get(&key("Cluster", &ns, "k7")).await.unwrap().expect("survives the restart");
    assert_eq!((data(&kv), kv.mod_revision), (&b"7"[..], revs[7]));
    assert_eq!(kv.value.labels.get("app").map(String::as_str), Some("x"));
    assert_eq!(store.get(&key("Cluster", &ns, "k3")).await.unwrap(), None);
    // A watcher that saw up to revs[4] before the restart resumes exactly.
    let mut watch = store.watch(&Prefix::namespace("Cluster", &ns).unwrap(), revs[4] + 1).await.unwrap();
    let events = next_events(&mut watch, 6, Duration::from_secs(10)).await;
    assert_eq!(events[0].revision(), revs[5]);
    assert!(matches!(events[5], Event::Delete { .. }));
    let next = store.put(key("Cluster", &ns, "after"), val("x")).await.unwrap();
    assert!(next > last);
    assert!(from <= revs[0]);
}

pub async fn lease_survives_restart(h: &impl Harness) {
    if !h.persistent() {
        return;
    }
    let ns = unique_namespace();
    let store = h.open().await;
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    let a = key("Metadata", &ns, "a");
    store.put(a.clone(), val("a").with_lease(lease.id)).await.unwrap();
    store.close().await;
    drop(store);

    let store = h.open().await;
    assert!(store.get(&a).await.unwrap().is_some(), "a live lease's key survives the restart");
    store.keep_alive(lease.id).await.expect("the lease is remembered across the restart");
    // Not renewed any more: it still expires, though nothing of the old process is left.
    wait_deleted(&store, &a, lease.ttl + Duration::from_secs(5)).await;
    assert_eq!(store.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(lease.id.0)));
}
