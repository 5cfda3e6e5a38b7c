//! Losing the etcd member the store talks to: writes go on through the others, and a watch
//! delivers every acknowledged write exactly once, in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bosun_store::{Event, Key, Prefix, Revision, Store, StoreError, StoreExt, Value};
use bosun_store_etcd::{EtcdOptions, EtcdStore};
use bosun_testkit::etcd::EtcdCluster;
use futures::StreamExt;

const WRITES: usize = 150;
const KILL_AFTER: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_current_member_loses_no_write_and_no_event() {
    let _ = tracing_subscriber::fmt().with_env_filter("bosun_store_etcd=debug").with_test_writer().try_init();
    let mut cluster = EtcdCluster::start(3);
    let endpoints = cluster.endpoints();
    let options = EtcdOptions { request_timeout: Duration::from_secs(3), ..Default::default() };
    let store = EtcdStore::connect(&endpoints, options).await.unwrap();
    let prefix = Prefix::namespace("Cluster", "failover").unwrap();
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&prefix, from).await.unwrap();

    // The watcher collects every event until it has seen the revision it is told to wait for.
    let (until_tx, mut until_rx) = tokio::sync::watch::channel(Revision::MAX);
    let watcher = tokio::spawn(async move {
        let mut events: Vec<Event> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let last = events.last().map_or(0, Event::revision);
            if last >= *until_rx.borrow_and_update() {
                return events;
            }
            tokio::select! {
                item = tokio::time::timeout_at(deadline, watch.next()) => match item {
                    Ok(Some(Ok(batch))) => {
                        assert!(!batch.events.is_empty(), "an empty batch");
                        let revision = batch.events[0].revision();
                        assert!(batch.events.iter().all(|e| e.revision() == revision), "a batch per revision");
                        events.extend(batch.events);
                    }
                    Ok(Some(Err(e))) => panic!("the watch failed after {} events: {e}", events.len()),
                    Ok(None) => panic!("the watch ended after {} events", events.len()),
                    Err(_) => panic!("the watch stalled after {} events (last revision {last})", events.len()),
                },
                _ = until_rx.changed() => {}
            }
        }
    });

    // The writer: each write is retried (with a new value) until acknowledged.
    let store = Arc::new(store);
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, written) = (store.clone(), written.clone());
        tokio::spawn(async move {
            let mut acked: Vec<(Revision, String)> = Vec::new();
            let mut unacked: Vec<String> = Vec::new();
            for i in 0..WRITES {
                let key = Key::new("Cluster", "failover", &format!("k{}", i % 10)).unwrap();
                let mut attempt = 0;
                loop {
                    let value = format!("{i}.{attempt}");
                    match store.put(key.clone(), Value::new(value.clone())).await {
                        Ok(revision) => {
                            acked.push((revision, value));
                            break;
                        }
                        Err(StoreError::Unavailable(e)) => {
                            attempt += 1;
                            assert!(attempt < 50, "write {i} failed {attempt} times: {e}");
                            unacked.push(value);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("write {i}: {e}"),
                    }
                }
                written.store(i + 1, Ordering::Release);
            }
            (acked, unacked)
        })
    };
    // Mid-way, while writes are in flight, the member the store talks to dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while written.load(Ordering::Acquire) < KILL_AFTER {
        assert!(tokio::time::Instant::now() < deadline, "the writer is stuck before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let current = store.current_endpoint();
    let index = endpoints.iter().position(|e| *e == current).expect("a known endpoint");
    cluster.kill_member(index);
    let killed = current;
    let (acked, unacked) =
        tokio::time::timeout(Duration::from_secs(60), writer).await.expect("the writer finishes").unwrap();
    assert_ne!(store.current_endpoint(), killed, "the store moved to another member");

    let last = acked.last().map(|(r, _)| *r).unwrap();
    until_tx.send_replace(last);
    let events = watcher.await.unwrap();

    // In revision order, each revision once.
    let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "out of order or repeated: {revisions:?}");
    // Every acknowledged write, with its value; anything else is a write whose answer was lost.
    let seen: HashMap<Revision, String> = events
        .iter()
        .map(|e| match e {
            Event::Put(kv) => (kv.mod_revision, String::from_utf8_lossy(&kv.value.data).into_owned()),
            Event::Delete { key, .. } => panic!("unexpected delete of {key}"),
        })
        .collect();
    for (revision, value) in &acked {
        assert_eq!(seen.get(revision), Some(value), "acknowledged write {value} at {revision} not delivered");
    }
    let acked_values: Vec<&String> = acked.iter().map(|(_, v)| v).collect();
    for value in seen.values() {
        assert!(acked_values.contains(&value) || unacked.contains(value), "an event nobody wrote: {value}");
    }
    assert_eq!(acked.len(), WRITES);
    assert!(acked.windows(2).all(|w| w[0].0 < w[1].0), "acknowledged revisions increase");
    eprintln!(
        "killed {killed}; {} writes acknowledged, {} retried, {} events; now on {}",
        acked.len(),
        unacked.len(),
        events.len(),
        store.current_endpoint()
    );
    store.close().await;
}
