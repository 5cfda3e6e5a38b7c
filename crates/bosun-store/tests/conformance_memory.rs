//! The conformance suite against the in-memory local store.

use std::sync::Arc;

use async_trait::async_trait;
use bosun_store::conformance::Harness;
use bosun_store::{LocalStore, Store};

/// A fresh in-memory store per test.
struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(LocalStore::memory().expect("in-memory store"))
    }

    fn persistent(&self) -> bool {
        false
    }
}

bosun_store::conformance_suite!(Memory);

#[tokio::test]
async fn memory_store_names_its_backend() {
    let store = LocalStore::memory().unwrap();
    assert_eq!(store.backend(), "memory");
}
