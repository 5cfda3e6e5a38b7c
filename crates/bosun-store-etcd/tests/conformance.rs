//! The store conformance suite against a real etcd: each test gets an etcd of its own, since
//! `compaction_is_reported` compacts the whole etcd.

use std::sync::Arc;

use async_trait::async_trait;
use bosun_store::Store;
use bosun_store::conformance::Harness;
use bosun_store_etcd::{EtcdOptions, EtcdStore};
use bosun_testkit::etcd::EtcdServer;

struct EtcdHarness {
    server: EtcdServer,
}

#[async_trait]
impl Harness for EtcdHarness {
    async fn open(&self) -> Arc<dyn Store> {
        let store =
            EtcdStore::connect(&self.server.endpoints(), EtcdOptions::default()).await.expect("connect to etcd");
        Arc::new(store)
    }

    /// The data is etcd's: opening again (a Bosun restart) reaches the same data.
    fn persistent(&self) -> bool {
        true
    }
}

fn harness() -> EtcdHarness {
    EtcdHarness { server: EtcdServer::start() }
}

bosun_store::conformance_suite!(harness());
