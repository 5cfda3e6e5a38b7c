//! The host side: [`PluginStore`], a [`Store`] whose every call is one gRPC call to a supervised
//! storage plugin process.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bosun_plugin::{Executable, HostOptions, LaunchConfig, PluginHost, PluginStatus, RestartPolicy};
use bosun_store::{
    Key, KeyValue, Lease, LeaseId, ListOptions, ListPage, Op, Prefix, Result, Revision, Store, StoreError, TxnResult,
    WatchStream,
};
use futures::StreamExt as _;
use tonic::transport::Channel;
use tonic::{Response, Status, Streaming};

use crate::convert;
use crate::proto::storage_client::StorageClient;
use crate::proto::{
    CompactRequest, GetRequest, GrantLeaseRequest, KeepAliveRequest, ListRequest, RevisionRequest, RevokeLeaseRequest,
    StorageConfigureRequest, TxnRequest, WatchRequest, WatchResponse,
};
use crate::status::{Failure, from_status};

/// Tuning of a [`PluginStore`].
#[derive(Debug, Clone)]
pub struct PluginStoreOptions {
    /// When and how often the plugin process is restarted after it dies.
    pub restart: RestartPolicy,
    /// The binary, or a source directory built first. A storage plugin is never hot-reloaded:
    /// two processes would hold one database.
    pub executable: Executable,
    /// How long a call (and [`PluginStore::start`]) waits for the plugin process to be started
    /// or restarted before failing with [`StoreError::Unavailable`].
    pub wait: Duration,
}

impl Default for PluginStoreOptions {
    fn default() -> Self {
        Self { restart: RestartPolicy::default(), executable: Executable::Binary, wait: Duration::from_secs(10) }
    }
}

/// A [`Store`] served by a storage plugin process, which is restarted when it dies.
///
/// Each call is one gRPC call. Every process of the plugin is sent the configuration before its
/// first call (the host configures a restarted process when the process says it is not
/// configured, then makes the call again). A call made while the plugin is down waits for it at
/// most [`PluginStoreOptions::wait`]; a call or watch the plugin dies in fails with
/// [`StoreError::Unavailable`] (the caller lists and watches again, as with etcd).
pub struct PluginStore {
    backend: String,
    config_json: String,
    host: PluginHost,
    wait: Duration,
}

impl std::fmt::Debug for PluginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStore").field("backend", &self.backend).field("host", &self.host).finish()
    }
}

type Client = StorageClient<Channel>;

impl PluginStore {
    /// Launches the plugin `launch` describes and configures it with `config_json` (the JSON of
    /// the plugin's configuration). Fails with the plugin's error when it refuses the
    /// configuration (an [`StoreError::InvalidArgument`] naming the field), or with
    /// [`StoreError::Unavailable`] when it does not start; the process is stopped then.
    pub async fn start(launch: LaunchConfig, config_json: impl Into<String>) -> Result<Self> {
        Self::start_with(launch, config_json, PluginStoreOptions::default()).await
    }

    /// [`PluginStore::start`] with options.
    pub async fn start_with(
        launch: LaunchConfig,
        config_json: impl Into<String>,
        options: PluginStoreOptions,
    ) -> Result<Self> {
        let backend = format!("plugin:{}", launch.name);
        let host_options = HostOptions {
            policy: options.restart,
            executable: options.executable,
            reload_interval: None,
            ..HostOptions::default()
        };
        let host = PluginHost::start_with(launch, host_options);
        let store = Self { backend, config_json: config_json.into(), host, wait: options.wait };
        let configured = match store.client().await {
            Ok(mut client) => store.configure(&mut client).await,
            Err(e) => Err(e),
        };
        match configured {
            Ok(()) => Ok(store),
            Err(e) => {
                store.host.shutdown().await;
                Err(e)
            }
        }
    }

    /// The plugin process's status (state, pid, restarts, last error).
    pub fn status(&self) -> PluginStatus {
        self.host.status()
    }

    /// A client of the running plugin, waiting for it to be (re)started.
    async fn client(&self) -> Result<Client> {
        let channel = self
            .host
            .channel(self.wait)
            .await
            .map_err(|e| StoreError::Unavailable(format!("storage plugin {}: {e}", self.backend)))?;
        Ok(StorageClient::new(channel)
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES))
    }

    async fn configure(&self, client: &mut Client) -> Result<()> {
        let request = StorageConfigureRequest { config_json: self.config_json.clone() };
        let response = client.configure(request).await.map_err(|s| store_error(&s))?.into_inner();
        tracing::info!(plugin = %self.backend, backend = %response.backend, "storage plugin configured");
        Ok(())
    }

    /// Makes one call: `request()` builds the request, `rpc` sends it. A plugin process that is
    /// not configured yet is configured, and the call made once more.
    async fn call<Req, Resp, Fut>(&self, request: impl Fn() -> Req, rpc: impl Fn(Client, Req) -> Fut) -> Result<Resp>
    where
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut client = self.client().await?;
        match rpc(client.clone(), request()).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => match from_status(&status) {
                Failure::NotConfigured => {
                    self.configure(&mut client).await?;
                    rpc(client, request()).await.map(Response::into_inner).map_err(|s| store_error(&s))
                }
                Failure::Store(error) => Err(error),
            },
        }
    }
}

/// The store error of a failed call.
fn store_error(status: &Status) -> StoreError {
    match from_status(status) {
        Failure::Store(error) => error,
        Failure::NotConfigured => StoreError::Unavailable("the storage plugin lost its configuration".to_owned()),
    }
}

/// An answer of the plugin that does not decode is the plugin's bug.
fn bad_answer(error: StoreError) -> StoreError {
    StoreError::Internal(format!("invalid answer from the storage plugin: {error}"))
}

/// The store's watch stream over a `Watch` call: batches until the call fails, then that error
/// (the plugin's, or [`StoreError::Unavailable`] when the process or connection died, or when the
/// plugin ended the stream, which a watch never does on its own).
fn watch_stream(responses: Streaming<WatchResponse>) -> WatchStream {
    futures::stream::unfold(Some(responses), |responses| async move {
        let mut responses = responses?;
        loop {
            let item = match responses.message().await {
                Ok(Some(batch)) if batch.events.is_empty() => continue,
                Ok(Some(batch)) => match convert::batch_from_proto(batch) {
                    Ok(batch) => return Some((Ok(batch), Some(responses))),
                    Err(e) => Err(bad_answer(e)),
                },
                Ok(None) => Err(StoreError::Unavailable("the storage plugin ended the watch".to_owned())),
                Err(status) => Err(store_error(&status)),
            };
            return Some((item, None));
        }
    })
    .boxed()
}

#[async_trait]
impl Store for PluginStore {
    fn backend(&self) -> &str {
        &self.backend
    }

    async fn revision(&self) -> Result<Revision> {
        let response = self.call(|| RevisionRequest {}, |mut c, r| async move { c.revision(r).await }).await?;
        Ok(response.revision)
    }

    async fn get(&self, key: &Key) -> Result<Option<KeyValue>> {
        let request = || GetRequest { key: key.as_str().to_owned() };
        let response = self.call(request, |mut c, r| async move { c.get(r).await }).await?;
        response.kv.map(convert::kv_from_proto).transpose().map_err(bad_answer)
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let request = || ListRequest {
            prefix: options.prefix.as_str().to_owned(),
            selector: options.selector.as_str().to_owned(),
            limit: options.limit.unwrap_or(0),
            continue_token: options.continue_token.clone().unwrap_or_default(),
        };
        let response = self.call(request, |mut c, r| async move { c.list(r).await }).await?;
        let items =
            response.items.into_iter().map(convert::kv_from_proto).collect::<Result<_>>().map_err(bad_answer)?;
        let continue_token = (!response.continue_token.is_empty()).then_some(response.continue_token);
        Ok(ListPage { items, revision: response.revision, continue_token })
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<TxnResult> {
        let request = || TxnRequest { ops: ops.iter().map(convert::op_to_proto).collect() };
        let response = self.call(request, |mut c, r| async move { c.txn(r).await }).await?;
        if response.prev.len() != ops.len() {
            return Err(bad_answer(StoreError::invalid(
                "prev",
                format!("{} previous values for {} ops", response.prev.len(), ops.len()),
            )));
        }
        let prev = response
            .prev
            .into_iter()
            .map(|p| p.kv.map(convert::kv_from_proto).transpose())
            .collect::<Result<_>>()
            .map_err(bad_answer)?;
        Ok(TxnResult { revision: response.revision, prev })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        let request = || GrantLeaseRequest { ttl_millis: convert::ttl_to_millis(ttl) };
        let response = self.call(request, |mut c, r| async move { c.grant_lease(r).await }).await?;
        Ok(convert::lease_from_proto(response))
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease> {
        let request = || KeepAliveRequest { id: id.0 };
        let response = self.call(request, |mut c, r| async move { c.keep_alive(r).await }).await?;
        Ok(convert::lease_from_proto(response))
    }

    async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        let request = || RevokeLeaseRequest { id: id.0 };
        self.call(request, |mut c, r| async move { c.revoke_lease(r).await }).await?;
        Ok(())
    }

    async fn watch(&self, prefix: &Prefix, from: Revision) -> Result<WatchStream> {
        let request = || WatchRequest { prefix: prefix.as_str().to_owned(), from };
        let responses = self.call(request, |mut c, r| async move { c.watch(r).await }).await?;
        Ok(watch_stream(responses))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.call(|| CompactRequest { revision }, |mut c, r| async move { c.compact(r).await }).await?;
        Ok(())
    }

    /// Stops the plugin process (its graceful shutdown, then a kill).
    async fn close(&self) {
        self.host.shutdown().await;
    }
}
