//! What the postgres store's tests share: one PostgreSQL server per test process, a database per
//! test.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bosun_store_postgres::{PostgresOptions, PostgresStore};
use bosun_testkit::postgres::PostgresServer;

/// A new database on the shared server; returns its URL.
pub fn new_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    PostgresServer::shared().create_database(&name)
}

/// Options for tests: quick lease checks.
pub fn options() -> PostgresOptions {
    PostgresOptions { lease_check_interval: Duration::from_millis(100), ..Default::default() }
}

pub async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, options()).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}
