//! The conformance suite against the embedded (file) local store: each test gets a data dir of its
//! own, and every `open` opens that same dir again, as a restart of Bosun does.

use std::sync::Arc;

use async_trait::async_trait;
use bosun_store::conformance::Harness;
use bosun_store::{LocalStore, Store, StoreError};
use tempfile::TempDir;

struct Embedded {
    dir: TempDir,
}

impl Embedded {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
}

#[async_trait]
impl Harness for Embedded {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(LocalStore::open(self.dir.path()).await.expect("open the data dir"))
    }

    fn persistent(&self) -> bool {
        true
    }
}

bosun_store::conformance_suite!(Embedded::new());

#[tokio::test]
async fn a_data_dir_is_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let store = LocalStore::open(&data).await.unwrap();
    assert_eq!(store.backend(), "embedded");
    assert!(data.join(bosun_store::DATA_FILE).exists());
    match LocalStore::open(&data).await {
        Err(StoreError::Unavailable(reason)) => {
            assert!(reason.contains("is in use by another process"), "{reason}")
        }
        other => panic!("a second open must fail: {other:?}"),
    }
    store.close().await;
    let again = LocalStore::open(&data).await.expect("reopens after close");
    drop(again);
    // Dropping releases the file too (once background work notices).
    let mut reopened = None;
    for _ in 0..100 {
        match LocalStore::open(&data).await {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert!(reopened.is_some(), "reopens after drop");
}
