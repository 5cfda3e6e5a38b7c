//! Bosun's etcd store: the [`bosun_store::Store`] of several Bosun replicas sharing one etcd
//! cluster (DESIGN.md §6).
//!
//! Keys live under a root prefix (default `/bosun/`) as `kind/namespace/name`; values are a small
//! protobuf envelope of the data and the labels ([`codec::Envelope`]); revisions, leases, watches
//! and compaction are etcd's own. A transaction is one etcd Txn whose compares are the ops'
//! [`Expect`]s; when one fails, the Txn's failure branch reads the keys' mod revisions, so the
//! [`StoreError::Conflict`] names the actual revision and nothing is written.
//!
//! The store talks to one member at a time. When that member cannot be reached, it moves on to
//! the next endpoint: reads are retried there, writes only when they surely never reached etcd
//! (else the caller gets [`StoreError::Unavailable`] and decides), and watches resume from the
//! revision after the last one delivered, so nothing is lost or repeated.

#![warn(missing_docs)]

pub mod codec;
mod conn;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bosun_store::{
    ContinueToken, Expect, Key, KeyValue, Lease, LeaseId, ListOptions, ListPage, Op, Prefix, Revision, Store,
    StoreError, TxnResult, WatchStream,
};
use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use crate::codec::{decode_any, decode_kv, encode_value, etcd_key, range_end};
use crate::conn::{Failure, Members, Retry};

/// Most keys read from etcd per range request of a list.
const LIST_CHUNK: usize = 500;

/// How to reach etcd and where Bosun's keys live in it.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// The prefix of every key the store writes (`/bosun/`; it must end with `/`): deployments
    /// with different prefixes share an etcd without seeing each other's keys.
    pub prefix: String,
    /// How long connecting to a member may take.
    pub connect_timeout: Duration,
    /// How long one request to a member may take before the store tries the next member.
    pub request_timeout: Duration,
    /// How many times in a row a watch may fail to reconnect (with backoff up to 2 s between
    /// tries) before it ends with [`StoreError::Unavailable`].
    pub watch_retries: u32,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            prefix: "/bosun/".to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            watch_retries: 10,
        }
    }
}

/// What the store and its watch tasks share.
struct Inner {
    members: Members,
    root: String,
    watch_retries: u32,
    /// Set to `true` when the store closes: watch tasks end.
    closed: tokio::sync::watch::Sender<bool>,
}

/// A [`Store`] on an etcd cluster.
pub struct EtcdStore {
    inner: Arc<Inner>,
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`) and checks that one of
    /// them answers within the timeouts.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        if !options.prefix.ends_with('/') || options.prefix.chars().any(char::is_control) {
            return Err(StoreError::invalid("prefix", "must end with '/' and have no control characters"));
        }
        let members = Members::new(endpoints, options.connect_timeout, options.request_timeout).await?;
        let (closed, _) = tokio::sync::watch::channel(false);
        let store = EtcdStore {
            inner: Arc::new(Inner { members, root: options.prefix, watch_retries: options.watch_retries, closed }),
        };
        let revision = store.revision().await?;
        tracing::info!(endpoints = ?endpoints, prefix = %store.inner.root, revision, "connected to etcd");
        Ok(store)
    }

    /// The endpoint requests go to now (it changes when that member cannot be reached).
    pub fn current_endpoint(&self) -> String {
        self.inner.members.current().1.url.clone()
    }

    /// The revision etcd had compacted up to, found by watching from `requested` (which etcd has
    /// compacted); `requested` itself when etcd does not say in time.
    async fn compacted_before(&self, requested: Revision) -> Revision {
        watch::compact_revision(&self.inner, requested).await.map(|r| r - 1).unwrap_or(requested)
    }

    /// The store error for a read at `revision` that etcd refused: compacted, in the future, or
    /// another failure.
    async fn read_error(&self, failure: Failure, revision: Revision, what: &str) -> StoreError {
        if failure.says("required revision has been compacted") {
            return StoreError::Compacted { requested: revision, compacted: self.compacted_before(revision).await };
        }
        if failure.says("required revision is a future revision") {
            let current = self.revision().await.unwrap_or(0);
            return StoreError::FutureRevision { requested: revision, current };
        }
        failure.into_store_error(what)
    }

    /// The lease of `ops` that etcd does not know, for a put etcd refused with "lease not found".
    async fn missing_lease(&self, ops: &[Op]) -> StoreError {
        let mut leases: Vec<i64> = ops
            .iter()
            .filter_map(|op| if let Op::Put { value, .. } = op { value.lease } else { None })
            .map(|l| l.0)
            .collect();
        leases.sort_unstable();
        leases.dedup();
        if leases.len() > 1 {
            for &id in &leases {
                let found =
                    self.inner
                        .members
                        .call("lease time-to-live", Retry::Always, |mut m| async move {
                            m.lease.time_to_live(id, None).await
                        })
                        .await;
                if matches!(found, Ok(ref r) if r.ttl() < 0) {
                    return StoreError::LeaseNotFound(id);
                }
            }
        }
        StoreError::LeaseNotFound(leases.first().copied().unwrap_or(0))
    }

    /// The conflict error of a Txn whose compares failed, from the failure branch's reads (one per
    /// op with an [`Expect`], in op order).
    fn conflict(ops: &[Op], responses: &[TxnOpResponse]) -> StoreError {
        let conditional = ops.iter().filter(|op| op.precondition() != Expect::Any);
        for (op, response) in conditional.zip(responses) {
            let actual = match response {
                TxnOpResponse::Get(get) => get.kvs().first().map_or(0, |kv| kv.mod_revision()),
                _ => continue,
            };
            if !op.precondition().holds(actual) {
                return op.precondition().conflict(op.key(), actual);
            }
        }
        StoreError::Internal("etcd refused the transaction's compares, but every read key meets them".to_owned())
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.inner.closed.send_replace(true);
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &str {
        "etcd"
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let key = self.inner.root.clone().into_bytes();
        let response = self
            .inner
            .members
            .call("revision", Retry::Always, |mut m| {
                let key = key.clone();
                async move { m.kv.get(key, Some(GetOptions::new().with_keys_only())).await }
            })
            .await
            .map_err(|f| f.into_store_error("read of the revision"))?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Internal("etcd answered a range without a header".to_owned()))
    }

    async fn get(&self, key: &Key) -> Result<Option<KeyValue>, StoreError> {
        let raw = etcd_key(&self.inner.root, key);
        let response = self
            .inner
            .members
            .call("get", Retry::Always, |mut m| {
                let raw = raw.clone();
                async move { m.kv.get(raw, None).await }
            })
            .await
            .map_err(|f| f.into_store_error(&format!("get of {key}")))?;
        match response.kvs().first() {
            Some(kv) => decode_kv(key.clone(), kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage, StoreError> {
        let root = &self.inner.root;
        let mut prefix = root.clone().into_bytes();
        prefix.extend_from_slice(options.prefix.as_str().as_bytes());
        let end = range_end(&prefix);
        let (mut revision, mut start) = match &options.continue_token {
            Some(token) => {
                let token = ContinueToken::decode(token, &options.prefix)?;
                let mut start = root.clone().into_bytes();
                start.extend_from_slice(token.after.as_bytes());
                start.push(0);
                (token.revision, start)
            }
            None => (0, prefix),
        };
        // A limit of 0 means none, as in Kubernetes.
        let limit = options.limit.filter(|&l| l > 0).map(|l| l as usize);
        let mut items = Vec::new();
        let mut continue_token = None;
        loop {
            let want = limit.map_or(LIST_CHUNK, |l| l - items.len());
            let chunk = if options.selector.is_empty() { want } else { want.max(100) }.min(LIST_CHUNK);
            let get = GetOptions::new()
                .with_range(end.clone())
                .with_revision(revision)
                .with_limit(i64::try_from(chunk).unwrap_or(i64::MAX));
            let from = start.clone();
            let result = self
                .inner
                .members
                .call("list", Retry::Always, |mut m| {
                    let (from, get) = (from.clone(), get.clone());
                    async move { m.kv.get(from, Some(get)).await }
                })
                .await;
            let response = match result {
                Ok(response) => response,
                Err(failure) => return Err(self.read_error(failure, revision, "list").await),
            };
            if revision == 0 {
                revision = response
                    .header()
                    .map(|h| h.revision())
                    .ok_or_else(|| StoreError::Internal("etcd answered a range without a header".to_owned()))?;
            }
            let kvs = response.kvs();
            for (i, kv) in kvs.iter().enumerate() {
                let Some(item) = decode_any(root, kv)? else { continue };
                if !options.selector.matches(&item.value.labels) {
                    continue;
                }
                items.push(item);
                if limit == Some(items.len()) {
                    if i + 1 < kvs.len() || response.more() {
                        let after = items.last().map(|kv| kv.key.to_string()).unwrap_or_default();
                        continue_token = Some(
                            ContinueToken { revision, after, prefix: options.prefix.as_str().to_owned() }.encode(),
                        );
                    }
                    return Ok(ListPage { items, revision, continue_token });
                }
            }
            match kvs.last() {
                Some(last) if response.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(ListPage { items, revision, continue_token }),
            }
        }
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<TxnResult, StoreError> {
        bosun_store::validate::txn(&ops)?;
        let root = &self.inner.root;
        let mut compares = Vec::new();
        let mut success = Vec::with_capacity(ops.len());
        let mut failure = Vec::new();
        for op in &ops {
            let key = etcd_key(root, op.key());
            match op.precondition() {
                Expect::Any => {}
                Expect::Absent => compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0)),
                Expect::ModRevision(r) => {
                    // etcd compares an absent key as mod revision 0, which the store's Expect
                    // never matches: a compare that always fails stands for it.
                    compares.push(if r > 0 {
                        Compare::mod_revision(key.clone(), CompareOp::Equal, r)
                    } else {
                        Compare::mod_revision(key.clone(), CompareOp::Less, 0)
                    });
                }
            }
            if op.precondition() != Expect::Any {
                failure.push(TxnOp::get(key.clone(), Some(GetOptions::new().with_keys_only())));
            }
            success.push(match op {
                Op::Put { value, .. } => {
                    let mut put = PutOptions::new().with_prev_key();
                    if let Some(lease) = value.lease {
                        put = put.with_lease(lease.0);
                    }
                    TxnOp::put(key, encode_value(value), Some(put))
                }
                Op::Delete { .. } => TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key())),
            });
        }
        let txn = Txn::new().when(compares).and_then(success).or_else(failure);
        let result = self
            .inner
            .members
            .call("txn", Retry::IfNotSent, |mut m| {
                let txn = txn.clone();
                async move { m.kv.txn(txn).await }
            })
            .await;
        let response = match result {
            Ok(response) => response,
            Err(f) if f.says("lease not found") => return Err(self.missing_lease(&ops).await),
            Err(f) => return Err(f.into_store_error("transaction")),
        };
        // (`op_responses` assumes every result is set; a malformed answer must not panic.)
        if response.0.responses.iter().any(|r| r.response.is_none()) {
            return Err(StoreError::Internal("etcd answered a transaction with an empty result".to_owned()));
        }
        let responses = response.op_responses();
        if !response.succeeded() {
            return Err(Self::conflict(&ops, &responses));
        }
        let revision = response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Internal("etcd answered a transaction without a header".to_owned()))?;
        if responses.len() != ops.len() {
            return Err(StoreError::Internal(format!(
                "etcd answered {} results to a transaction of {} ops",
                responses.len(),
                ops.len()
            )));
        }
        let mut prev = Vec::with_capacity(ops.len());
        for (op, response) in ops.iter().zip(&responses) {
            let before = match response {
                TxnOpResponse::Put(put) => put.prev_key(),
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first(),
                _ => None,
            };
            prev.push(before.map(|kv| decode_kv(op.key().clone(), kv)).transpose()?);
        }
        Ok(TxnResult { revision, prev })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease, StoreError> {
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).unwrap_or(i64::MAX).max(1);
        let response = self
            .inner
            .members
            .call("lease grant", Retry::IfNotSent, |mut m| async move { m.lease.grant(seconds, None).await })
            .await
            .map_err(|f| f.into_store_error("lease grant"))?;
        if !response.error().is_empty() {
            return Err(StoreError::Internal(format!("etcd lease grant: {}", response.error())));
        }
        let granted = u64::try_from(response.ttl()).unwrap_or(0);
        Ok(Lease { id: LeaseId(response.id()), ttl: Duration::from_secs(granted) })
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease, StoreError> {
        let members = &self.inner.members;
        let renewed = members
            .call("lease keep-alive", Retry::Always, |mut m| async move { m.lease.keep_alive(id.0).await.map(|_| ()) })
            .await;
        match renewed {
            Ok(()) => {}
            Err(Failure::Etcd(etcd_client::Error::LeaseKeepAliveError(e))) if e.contains("not found") => {
                return Err(StoreError::LeaseNotFound(id.0));
            }
            Err(f) if f.says("lease not found") => return Err(StoreError::LeaseNotFound(id.0)),
            Err(f) => return Err(f.into_store_error("lease keep-alive")),
        }
        // The granted TTL, which a renewal restores in full.
        let info = members
            .call("lease time-to-live", Retry::Always, |mut m| async move { m.lease.time_to_live(id.0, None).await })
            .await
            .map_err(|f| f.into_store_error("lease time-to-live"))?;
        if info.ttl() < 0 {
            return Err(StoreError::LeaseNotFound(id.0));
        }
        Ok(Lease { id, ttl: Duration::from_secs(u64::try_from(info.granted_ttl()).unwrap_or(0)) })
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<(), StoreError> {
        let result = self
            .inner
            .members
            .call("lease revoke", Retry::IfNotSent, |mut m| async move { m.lease.revoke(id.0).await })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(f) if f.says("lease not found") => Err(StoreError::LeaseNotFound(id.0)),
            Err(f) => Err(f.into_store_error("lease revoke")),
        }
    }

    async fn watch(&self, prefix: &Prefix, from: Revision) -> Result<WatchStream, StoreError> {
        Ok(watch::spawn(self.inner.clone(), prefix.clone(), from))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let result = self
            .inner
            .members
            .call("compact", Retry::Always, |mut m| async move { m.kv.compact(revision, None).await })
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already compacted at least that far: nothing to do.
            Err(f) if f.says("required revision has been compacted") => Ok(()),
            Err(f) if f.says("required revision is a future revision") => {
                Err(StoreError::FutureRevision { requested: revision, current: self.revision().await.unwrap_or(0) })
            }
            Err(f) => Err(f.into_store_error("compaction")),
        }
    }

    async fn close(&self) {
        self.inner.closed.send_replace(true);
    }
}
