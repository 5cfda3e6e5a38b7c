//! What is particular to the etcd backend: the root prefix, fragmented watch responses, a member
//! restarting under a watch, and an unreachable etcd.

use std::time::Duration;

use bosun_store::conformance::next_events;
use bosun_store::{Event, Key, Prefix, Selector, Store, StoreError, StoreExt, Value};
use bosun_store_etcd::{EtcdOptions, EtcdStore};
use bosun_testkit::etcd::EtcdServer;
use futures::StreamExt;

fn key(name: &str) -> Key {
    Key::new("Cluster", "default", name).unwrap()
}

async fn store(server: &EtcdServer, prefix: &str) -> EtcdStore {
    let options = EtcdOptions { prefix: prefix.to_owned(), ..Default::default() };
    EtcdStore::connect(&server.endpoints(), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_with_other_prefixes_do_not_see_each_other() {
    let server = EtcdServer::start();
    let (a, b) = (store(&server, "/bosun/").await, store(&server, "/bosun-staging/").await);
    assert_eq!(a.backend(), "etcd");
    a.put(key("x"), Value::new("from a")).await.unwrap();
    b.put(key("y"), Value::new("from b")).await.unwrap();
    let names =
        |page: bosun_store::ListPage| page.items.into_iter().map(|kv| kv.key.name().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(a.list_all(&Prefix::all(), &Selector::everything()).await.unwrap()), ["x"]);
    assert_eq!(names(b.list_all(&Prefix::all(), &Selector::everything()).await.unwrap()), ["y"]);
    assert_eq!(b.get(&key("x")).await.unwrap(), None);

    // A key under the root that is not kind/namespace/name (someone else's) is skipped.
    let mut raw = etcd_client::Client::connect(server.endpoints(), None).await.unwrap();
    raw.put("/bosun/not-a-key", "junk", None).await.unwrap();
    assert_eq!(names(a.list_all(&Prefix::all(), &Selector::everything()).await.unwrap()), ["x"]);

    let err = EtcdStore::connect(&server.endpoints(), EtcdOptions { prefix: "/bosun".into(), ..Default::default() })
        .await
        .err()
        .expect("a prefix without a trailing slash is refused");
    assert!(matches!(&err, StoreError::InvalidArgument { field, .. } if field == "prefix"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_revisions_arrive_whole_from_fragmented_responses() {
    let _ = tracing_subscriber::fmt().with_env_filter("bosun_store_etcd=trace").with_test_writer().try_init();
    let server = EtcdServer::start();
    let store = store(&server, "/bosun/").await;
    let from = store.revision().await.unwrap() + 1;
    // Four revisions of almost 1 MiB each: etcd sends them in one response, too large for one
    // message (1.5 MiB), so it splits the response in fragments.
    let mut revisions = Vec::new();
    for i in 0..4u8 {
        let data = vec![i; bosun_store::validate::MAX_VALUE_BYTES - 1000];
        revisions.push(store.put(key(&format!("big{i}")), Value::new(data)).await.unwrap());
    }
    let mut watch = store.watch(&Prefix::all(), from).await.unwrap();
    let events = next_events(&mut watch, 4, Duration::from_secs(20)).await;
    assert_eq!(events.iter().map(Event::revision).collect::<Vec<_>>(), revisions);
    for (i, event) in events.iter().enumerate() {
        let Event::Put(kv) = event else { panic!("expected a put: {event:?}") };
        assert!(kv.value.data.iter().all(|&b| usize::from(b) == i), "the value of big{i} arrives whole");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_outlives_an_etcd_restart() {
    let mut server = EtcdServer::start();
    let store = store(&server, "/bosun/").await;
    let from = store.revision().await.unwrap() + 1;
    let mut watch = store.watch(&Prefix::all(), from).await.unwrap();
    let r1 = store.put(key("a"), Value::new("1")).await.unwrap();
    assert_eq!(next_events(&mut watch, 1, Duration::from_secs(10)).await[0].revision(), r1);

    server.restart();
    let r2 = loop {
        match store.put(key("b"), Value::new("2")).await {
            Ok(r) => break r,
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    };
    let events = next_events(&mut watch, 1, Duration::from_secs(20)).await;
    assert_eq!(events[0].revision(), r2, "the watch resumes after the revision it had delivered");
    assert!(tokio::time::timeout(Duration::from_millis(300), watch.next()).await.is_err(), "nothing repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_unavailable() {
    let mut server = EtcdServer::start();
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        watch_retries: 2,
        ..Default::default()
    };
    let store = EtcdStore::connect(&server.endpoints(), options.clone()).await.unwrap();
    let mut watch = store.watch(&Prefix::all(), 1).await.unwrap();
    server.kill();
    let err = store.put(key("a"), Value::new("x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1"), "the error names the endpoint: {err}");
    match tokio::time::timeout(Duration::from_secs(20), watch.next()).await {
        Ok(Some(Err(StoreError::Unavailable(e)))) => assert!(e.contains("tries failed"), "{e}"),
        other => panic!("expected the watch to end with Unavailable, got {other:?}"),
    }
    let err = EtcdStore::connect(&server.endpoints(), options).await.err().expect("nothing answers");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
