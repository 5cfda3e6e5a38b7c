//! The store conformance suite on PostgreSQL: one server for the test process, a database per
//! test; opening again reaches the same database (a restart of Bosun).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use bosun_store::Store;
use bosun_store::conformance::Harness;

struct Postgres {
    url: String,
}

#[async_trait]
impl Harness for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        let store = common::connect(&self.url).await;
        assert_eq!(store.backend(), "postgres");
        Arc::new(store)
    }

    fn persistent(&self) -> bool {
        true
    }
}

fn harness() -> Postgres {
    Postgres { url: common::new_database() }
}

bosun_store::conformance_suite!(harness());
