//! Bosun's store: everything that changes Bosun's state goes through one [`Store`], and everything
//! that pushes config reads its [`Store::watch`] (DESIGN.md §6).
//!
//! The model is etcd's, which every backend can honour:
//! - keys are `kind/namespace/name` ([`Key`]); values are bytes with labels ([`Value`]);
//! - every change gets a global, monotonically increasing [`Revision`]; all the changes of one
//!   transaction share one revision;
//! - [`Store::list`] reads a prefix at one revision, filtered by a label [`Selector`], in pages
//!   whose opaque continue token pins that revision;
//! - [`Store::txn`] applies several puts and deletes all or nothing, each with an optional
//!   compare-and-swap precondition ([`Expect`]) on the key's mod revision;
//! - leases: a TTL that keys are attached to, renewed by [`Store::keep_alive`], whose expiry
//!   deletes its keys;
//! - [`Store::watch`] from a revision delivers every change after it, never skipping, repeating
//!   or reordering, and fails with [`StoreError::Compacted`] when that history is gone.
//!
//! Inputs are validated here, once, for every backend ([`validate`]): a bad key, label or
//! oversize value is refused with the field and the reason, and nothing is written.

mod error;
mod key;
mod local;
mod selector;
mod token;
mod types;
pub mod validate;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Result, StoreError};
pub use key::{Key, Prefix};
pub use local::{DATA_FILE, LocalOptions, LocalStore, MIN_LEASE_TTL};
pub use selector::Selector;
pub use token::ContinueToken;
pub use types::{
    Event, Expect, KeyValue, Labels, Lease, LeaseId, ListOptions, ListPage, Op, Revision, TxnResult, Value, WatchBatch,
    WatchStream,
};

use std::time::Duration;

use async_trait::async_trait;

/// A store backend. Every method validates its input and either applies all of it or nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name of the backend for logs and `/status` (`memory`, `embedded`, `etcd`, ...).
    fn backend(&self) -> &str;

    /// The current revision: the revision of the latest change (0 for a store never written).
    async fn revision(&self) -> Result<Revision>;

    /// The key's current value, if it exists.
    async fn get(&self, key: &Key) -> Result<Option<KeyValue>>;

    /// One page of the keys under `options.prefix` that match `options.selector`, in key order,
    /// at one revision (the current one, or the one pinned by the continue token).
    async fn list(&self, options: &ListOptions) -> Result<ListPage>;

    /// Applies every op or none. A failed [`Expect`] fails the whole transaction with
    /// [`StoreError::Conflict`]. A transaction that changes something gets one new revision, shared
    /// by all its changes; one that changes nothing (deletes of absent keys) gets none.
    async fn txn(&self, ops: Vec<Op>) -> Result<TxnResult>;

    /// Grants a lease that lives `ttl` (at least) unless renewed. A backend may round the TTL up
    /// to its minimum; the returned lease says what was granted.
    async fn grant_lease(&self, ttl: Duration) -> Result<Lease>;

    /// Renews a lease for its full TTL. [`StoreError::LeaseNotFound`] if it expired or never existed.
    async fn keep_alive(&self, id: LeaseId) -> Result<Lease>;

    /// Revokes a lease now, deleting the keys attached to it (one revision for all of them).
    async fn revoke_lease(&self, id: LeaseId) -> Result<()>;

    /// Every change under `prefix` with a revision `>= from`, in revision order, each transaction's
    /// changes in one batch. `from = revision + 1` after a list at `revision` continues it exactly.
    /// [`StoreError::Compacted`] (now or as the stream's last item) when `from` is older than the
    /// history the backend keeps: list again and watch from there.
    async fn watch(&self, prefix: &Prefix, from: Revision) -> Result<WatchStream>;

    /// Forgets history before `revision`: reads at and watches from older revisions fail with
    /// [`StoreError::Compacted`]. Backends also compact on their own to bound their history.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Closes connections and background tasks; later calls may fail. Dropping the store does the
    /// same without waiting.
    async fn close(&self) {}
}

/// Shorthands over [`Store::txn`] for the one-key cases.
#[async_trait]
pub trait StoreExt: Store {
    /// Puts `value` at `key` unconditionally; returns the new revision.
    async fn put(&self, key: Key, value: Value) -> Result<Revision> {
        Ok(self.txn(vec![Op::put(key, value)]).await?.revision)
    }

    /// Puts `value` at `key` if the key's mod revision is as expected; returns the new revision.
    async fn put_if(&self, key: Key, value: Value, expect: Expect) -> Result<Revision> {
        Ok(self.txn(vec![Op::Put { key, value, expect }]).await?.revision)
    }

    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, key: Key) -> Result<bool> {
        Ok(self.txn(vec![Op::delete(key)]).await?.prev.into_iter().next().flatten().is_some())
    }

    /// Deletes `key` if its mod revision is as expected; returns whether it existed.
    async fn delete_if(&self, key: Key, expect: Expect) -> Result<bool> {
        Ok(self.txn(vec![Op::Delete { key, expect }]).await?.prev.into_iter().next().flatten().is_some())
    }

    /// Every matching key, reading page after page at one revision.
    async fn list_all(&self, prefix: &Prefix, selector: &Selector) -> Result<ListPage> {
        let mut options =
            ListOptions { prefix: prefix.clone(), selector: selector.clone(), limit: Some(1000), ..Default::default() };
        let mut all = self.list(&options).await?;
        while let Some(token) = all.continue_token.take() {
            options.continue_token = Some(token);
            let page = self.list(&options).await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
        }
        Ok(all)
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
