//! `PluginStore` against the example plugin process when things go wrong: the plugin is killed
//! mid-watch, its configuration is bad, its data directory is taken, its binary is missing.

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_plugin::{LaunchConfig, PluginState, RestartPolicy};
use bosun_store::{Key, Prefix, Store, StoreError, StoreExt, Value};
use bosun_store_plugin::{PluginStore, PluginStoreOptions};
use futures::StreamExt;

const PLUGIN: &str = env!("CARGO_BIN_EXE_bosun-embedded-storage-plugin");

fn launch() -> LaunchConfig {
    LaunchConfig::new("embedded", PLUGIN)
}

fn path_config(dir: &Path) -> String {
    serde_json::json!({ "path": dir }).to_string()
}

fn options() -> PluginStoreOptions {
    let restart = RestartPolicy { initial_backoff: Duration::from_millis(300), ..Default::default() };
    PluginStoreOptions { restart, wait: Duration::from_secs(15), ..PluginStoreOptions::default() }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("test step timed out")
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn key(name: &str) -> Key {
    Key::new("Cluster", "default", name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_plugin_ends_the_watch_and_the_next_call_reaches_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let store = bounded(PluginStore::start_with(launch(), path_config(dir.path()), options())).await.unwrap();
    assert_eq!(store.backend(), "plugin:embedded");
    let before = bounded(store.put(key("a"), Value::new("one").label("app", "web"))).await.unwrap();
    let mut watch = bounded(store.watch(&Prefix::all(), before + 1)).await.unwrap();
    let second = bounded(store.put(key("b"), Value::new("two"))).await.unwrap();
    let batch = bounded(watch.next()).await.expect("an item").expect("a batch");
    assert_eq!(batch.events[0].revision(), second);

    let pid = store.status().pid.expect("running");
    // SAFETY: kills the plugin process this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    match bounded(watch.next()).await {
        Some(Err(StoreError::Unavailable(reason))) => assert!(!reason.is_empty()),
        other => panic!("the watch must end with Unavailable, got {other:?}"),
    }
    assert!(bounded(watch.next()).await.is_none(), "nothing after the error");

    // Once the host has seen the death, a call waits for the restarted process, configures it
    // and succeeds: the data written before the kill is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.status().state == PluginState::Running && store.status().pid == Some(pid) {
        assert!(Instant::now() < deadline, "the host never noticed the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kv = bounded(store.get(&key("a"))).await.unwrap().expect("written before the kill");
    assert_eq!((&kv.value.data[..], kv.mod_revision), (&b"one"[..], before));
    let status = store.status();
    assert!(status.restarts >= 1 && status.pid.is_some_and(|p| p != pid), "{status:?}");
    assert!(!alive(pid));
    let third = bounded(store.put(key("c"), Value::new("three"))).await.unwrap();
    assert!(third > second, "revisions go on after the restart");
    // A new watch resumes exactly where the old one stopped.
    let mut watch = bounded(store.watch(&Prefix::all(), second + 1)).await.unwrap();
    let batch = bounded(watch.next()).await.expect("an item").expect("a batch");
    assert_eq!(batch.events[0].key(), &key("c"));

    let pid = store.status().pid.expect("running");
    bounded(store.close()).await;
    assert!(!alive(pid), "close stops the plugin process");
    assert_eq!(store.status().state, PluginState::Stopped);
    assert!(matches!(bounded(store.revision()).await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_bad_config_is_refused_naming_the_field_and_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases = [
        (serde_json::json!({ "path": 3 }).to_string(), "config.path"),
        (serde_json::json!({ "path": data, "cache": 1 }).to_string(), "config.cache"),
        (serde_json::json!({ "memory": "yes" }).to_string(), "config.memory"),
        ("{".to_owned(), "config"),
    ];
    for (config, want) in cases {
        match bounded(PluginStore::start_with(launch(), config.clone(), options())).await {
            Err(StoreError::InvalidArgument { field, reason }) => {
                assert_eq!(field, want, "{config}: {reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{config}: expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(!data.exists(), "no store was opened");
    let memory = bounded(PluginStore::start(launch(), r#"{"memory": true}"#)).await.unwrap();
    assert!(bounded(memory.revision()).await.unwrap() == 0);
    bounded(memory.close()).await;
}

#[tokio::test]
async fn a_data_dir_in_use_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let first = bounded(PluginStore::start_with(launch(), path_config(dir.path()), options())).await.unwrap();
    match bounded(PluginStore::start_with(launch(), path_config(dir.path()), options())).await {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("in use by another process"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    bounded(first.close()).await;
}

#[tokio::test]
async fn a_plugin_that_does_not_start_is_unavailable_within_the_wait() {
    let options = PluginStoreOptions { wait: Duration::from_secs(1), ..options() };
    let started = Instant::now();
    let result =
        bounded(PluginStore::start_with(LaunchConfig::new("missing", "/nonexistent/plugin"), "{}", options)).await;
    match result {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("plugin:missing"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
