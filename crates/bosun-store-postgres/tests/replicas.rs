//! Several Bosun replicas on one database, and a database that restarts under a store.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bosun_store::conformance::{cas_increment, next_events};
use bosun_store::{Key, Prefix, Store, StoreError, StoreExt, Value};
use bosun_store_postgres::{PostgresOptions, PostgresStore};
use bosun_testkit::postgres::PostgresServer;

fn key(ns: &str, name: &str) -> Key {
    Key::new("Cluster", ns, name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_see_each_other_and_never_lose_an_update() {
    let url = common::new_database();
    // Both connect at once to a fresh database: the schema is created once.
    let (a, b) = tokio::join!(common::connect(&url), common::connect(&url));
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    let prefix = Prefix::namespace("Cluster", "ns").unwrap();

    let from = a.revision().await.unwrap() + 1;
    let mut watch_b = b.watch(&prefix, from).await.unwrap();
    let mut watch_a = a.watch(&prefix, from).await.unwrap();
    let r1 = a.put(key("ns", "x"), Value::new("from a")).await.unwrap();
    let seen = next_events(&mut watch_b, 1, Duration::from_secs(10)).await;
    assert_eq!((seen[0].key().name(), seen[0].revision()), ("x", r1));
    let r2 = b.put(key("ns", "y"), Value::new("from b")).await.unwrap();
    let seen = next_events(&mut watch_a, 2, Duration::from_secs(10)).await;
    assert_eq!(seen.iter().map(|e| e.revision()).collect::<Vec<_>>(), [r1, r2]);

    // Compare-and-swap increments from both replicas: none lost.
    let counter = key("ns", "counter");
    a.put(counter.clone(), Value::new("0")).await.unwrap();
    let mut tasks = Vec::new();
    for store in [&a, &a, &b, &b] {
        let (store, counter) = (store.clone(), counter.clone());
        tasks.push(tokio::spawn(async move { cas_increment(&*store, &counter, 25).await }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let kv = b.get(&counter).await.unwrap().unwrap();
    assert_eq!((&kv.value.data[..], kv.version), (&b"100"[..], 101));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_two_replicas_are_watched_without_gaps() {
    let url = common::new_database();
    let (a, b) = (common::connect(&url).await, common::connect(&url).await);
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    let from = a.revision().await.unwrap() + 1;
    let mut watch = b.watch(&Prefix::all(), from).await.unwrap();
    let mut writers = Vec::new();
    for (w, store) in [&a, &b, &a, &b].into_iter().enumerate() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..50 {
                revisions.push(store.put(key(&format!("w{w}"), &format!("k{i}")), Value::new("x")).await.unwrap());
            }
            revisions
        }));
    }
    let mut written = BTreeSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let events = next_events(&mut watch, 200, Duration::from_secs(20)).await;
    let seen: Vec<_> = events.iter().map(|e| e.revision()).collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in revision order, each once");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), written, "every revision, none skipped");
    assert_eq!(written.len(), 200);
    assert_eq!(*written.first().unwrap(), from);
    assert_eq!(*written.last().unwrap(), from + 199, "no revision is lost to a rolled-back writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_replica_expires_the_leases_of_a_stopped_one() {
    let url = common::new_database();
    let a = common::connect(&url).await;
    let b = common::connect(&url).await;
    let lease = a.grant_lease(Duration::from_secs(1)).await.unwrap();
    a.put(key("ns", "held"), Value::new("x").with_lease(lease.id)).await.unwrap();
    a.close().await;
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.get(&key("ns", "held")).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.keep_alive(lease.id).await, Err(StoreError::LeaseNotFound(lease.id.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_in_different_schemas_are_independent() {
    let url = common::new_database();
    let one = common::connect(&url).await;
    let two =
        PostgresStore::connect(&url, PostgresOptions { schema: "other".into(), ..common::options() }).await.unwrap();
    one.put(key("ns", "a"), Value::new("x")).await.unwrap();
    assert_eq!(two.get(&key("ns", "a")).await.unwrap(), None);
    assert_eq!(two.revision().await.unwrap(), 0);
    let bad = PostgresStore::connect(&url, PostgresOptions { schema: "Bad\"name".into(), ..common::options() }).await;
    assert!(matches!(bad, Err(StoreError::InvalidArgument { .. })), "{bad:?}");
    let tls = PostgresStore::connect(&format!("{url}?sslmode=require"), common::options()).await;
    assert!(matches!(tls, Err(StoreError::InvalidArgument { .. })), "{tls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", bosun_testkit::free_port());
    let options = PostgresOptions { acquire_timeout: Duration::from_secs(2), ..common::options() };
    let result = PostgresStore::connect(&url, options).await;
    assert!(matches!(result, Err(StoreError::Unavailable(ref m)) if m.contains("connecting")), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_a_database_restart() {
    let mut server = tokio::task::spawn_blocking(PostgresServer::start).await.unwrap();
    let store = common::connect(&server.url()).await;
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&Prefix::all(), from).await.unwrap();
    store.put(key("ns", "before"), Value::new("x")).await.unwrap();
    next_events(&mut watch, 1, Duration::from_secs(10)).await;
    // Let the WAL writer flush (the test server runs with synchronous_commit=off).
    tokio::time::sleep(Duration::from_secs(1)).await;
    server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.put(key("ns", "after"), Value::new("x")).await {
            Ok(_) => break,
            Err(StoreError::Unavailable(reason)) => {
                assert!(tokio::time::Instant::now() < deadline, "still unavailable: {reason}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let events = next_events(&mut watch, 1, Duration::from_secs(20)).await;
    assert_eq!(events[0].key().name(), "after");
    store.close().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let url = common::new_database();
    let store = common::connect(&url).await;
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE bosun.schema_version SET version = 99").execute(&pool).await.unwrap();
    pool.close().await;
    let result = PostgresStore::connect(&url, common::options()).await;
    assert!(matches!(result, Err(StoreError::Internal(ref m)) if m.contains("newer")), "{result:?}");
}
