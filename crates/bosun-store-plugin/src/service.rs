//! The plugin side: the `Storage` gRPC service over any [`Store`], and the one call that makes a
//! process a storage plugin ([`serve_store`], [`serve_storage`]).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bosun_plugin::HandshakeConfig;
use bosun_store::{ListOptions, Prefix, Selector, Store, validate};
use futures::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::proto::storage_server::{Storage, StorageServer};
use crate::proto::{
    CompactRequest, CompactResponse, GetRequest, GetResponse, GrantLeaseRequest, KeepAliveRequest, LeaseResponse,
    ListRequest, ListResponse, PrevValue, RevisionRequest, RevisionResponse, RevokeLeaseRequest, RevokeLeaseResponse,
    StorageConfigureRequest, StorageConfigureResponse, TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use crate::status::{not_configured, to_status};

/// Opens the store a storage plugin serves, from the plugin's configuration (the JSON the host
/// sends in `Configure`, once per start of the plugin process).
#[async_trait]
pub trait OpenStore: Send + Sync + 'static {
    /// Opens the store `config_json` describes. A bad configuration is
    /// [`StoreError::InvalidArgument`](bosun_store::StoreError::InvalidArgument) naming the field
    /// (`config.path`), and nothing is opened.
    async fn open(&self, config_json: &str) -> bosun_store::Result<Arc<dyn Store>>;
}

/// A store that is already open serves whatever the configuration says.
#[async_trait]
impl OpenStore for Arc<dyn Store> {
    async fn open(&self, _config_json: &str) -> bosun_store::Result<Arc<dyn Store>> {
        Ok(self.clone())
    }
}

/// The store a configured plugin serves, and the configuration it was opened with.
struct Configured {
    config_json: String,
    store: Arc<dyn Store>,
}

/// The `bosun.plugin.v1.Storage` service: every call delegates to the configured store, after
/// the checks of [`bosun_store::validate`]. Calls before `Configure` fail with a status that
/// tells the host to configure the plugin and call again.
pub struct StorageService {
    opener: Box<dyn OpenStore>,
    configured: OnceLock<Configured>,
    /// Serializes `Configure` calls, so a store is opened once.
    configuring: tokio::sync::Mutex<()>,
}

impl StorageService {
    /// The service over the store `opener` opens when the host configures the plugin.
    pub fn new(opener: impl OpenStore) -> Self {
        Self { opener: Box::new(opener), configured: OnceLock::new(), configuring: tokio::sync::Mutex::new(()) }
    }

    fn store(&self) -> Result<&Arc<dyn Store>, Status> {
        self.configured.get().map(|c| &c.store).ok_or_else(not_configured)
    }
}

/// The tonic server of the service, accepting messages up to
/// [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
pub fn storage_server(opener: impl OpenStore) -> StorageServer<StorageService> {
    StorageServer::new(StorageService::new(opener))
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES)
}

/// Serves the store `opener` opens as a storage plugin, with Bosun's handshake, until the host
/// stops the plugin; then exits the process. Never returns.
pub async fn serve_storage(opener: impl OpenStore) -> ! {
    let routes = tonic::service::Routes::new(storage_server(opener));
    bosun_plugin::sdk::serve(&HandshakeConfig::bosun(), routes).await
}

/// Serves `store` as a storage plugin (any configuration is accepted). Never returns.
pub async fn serve_store(store: Arc<dyn Store>) -> ! {
    serve_storage(store).await
}

/// The stream of a `Watch` call.
type WatchResponses = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Storage for StorageService {
    async fn configure(
        &self,
        request: Request<StorageConfigureRequest>,
    ) -> Result<Response<StorageConfigureResponse>, Status> {
        let config_json = request.into_inner().config_json;
        let _one_at_a_time = self.configuring.lock().await;
        if let Some(configured) = self.configured.get() {
            if configured.config_json != config_json {
                return Err(Status::failed_precondition(
                    "the storage plugin is already configured with another configuration; restart it to change it",
                ));
            }
            return Ok(Response::new(StorageConfigureResponse { backend: configured.store.backend().to_owned() }));
        }
        let store = self.opener.open(&config_json).await.map_err(to_status)?;
        let backend = store.backend().to_owned();
        // Cannot be set already: the lock is held and it was not set above.
        let _ = self.configured.set(Configured { config_json, store });
        Ok(Response::new(StorageConfigureResponse { backend }))
    }

    async fn revision(&self, _: Request<RevisionRequest>) -> Result<Response<RevisionResponse>, Status> {
        let revision = self.store()?.revision().await.map_err(to_status)?;
        Ok(Response::new(RevisionResponse { revision }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let store = self.store()?;
        let key = convert::key(&request.into_inner().key, None).map_err(to_status)?;
        let kv = store.get(&key).await.map_err(to_status)?;
        Ok(Response::new(GetResponse { kv: kv.map(convert::kv_to_proto) }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let store = self.store()?;
        let request = request.into_inner();
        let options = ListOptions {
            prefix: Prefix::parse(&request.prefix).map_err(to_status)?,
            selector: Selector::parse(&request.selector).map_err(to_status)?,
            limit: (request.limit > 0).then_some(request.limit),
            continue_token: (!request.continue_token.is_empty()).then_some(request.continue_token),
        };
        let page = store.list(&options).await.map_err(to_status)?;
        Ok(Response::new(ListResponse {
            items: page.items.into_iter().map(convert::kv_to_proto).collect(),
            revision: page.revision,
            continue_token: page.continue_token.unwrap_or_default(),
        }))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let store = self.store()?;
        let ops = convert::ops_from_proto(request.into_inner().ops).map_err(to_status)?;
        validate::txn(&ops).map_err(to_status)?;
        let result = store.txn(ops).await.map_err(to_status)?;
        let prev = result.prev.into_iter().map(|kv| PrevValue { kv: kv.map(convert::kv_to_proto) }).collect();
        Ok(Response::new(TxnResponse { revision: result.revision, prev }))
    }

    async fn grant_lease(&self, request: Request<GrantLeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        let ttl = std::time::Duration::from_millis(request.into_inner().ttl_millis);
        let lease = self.store()?.grant_lease(ttl).await.map_err(to_status)?;
        Ok(Response::new(convert::lease_to_proto(lease)))
    }

    async fn keep_alive(&self, request: Request<KeepAliveRequest>) -> Result<Response<LeaseResponse>, Status> {
        let id = bosun_store::LeaseId(request.into_inner().id);
        let lease = self.store()?.keep_alive(id).await.map_err(to_status)?;
        Ok(Response::new(convert::lease_to_proto(lease)))
    }

    async fn revoke_lease(
        &self,
        request: Request<RevokeLeaseRequest>,
    ) -> Result<Response<RevokeLeaseResponse>, Status> {
        let id = bosun_store::LeaseId(request.into_inner().id);
        self.store()?.revoke_lease(id).await.map_err(to_status)?;
        Ok(Response::new(RevokeLeaseResponse {}))
    }

    type WatchStream = WatchResponses;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let store = self.store()?;
        let request = request.into_inner();
        let prefix = Prefix::parse(&request.prefix).map_err(to_status)?;
        let watch = store.watch(&prefix, request.from).await.map_err(to_status)?;
        let responses = watch.map(|batch| batch.map(convert::batch_to_proto).map_err(to_status));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn compact(&self, request: Request<CompactRequest>) -> Result<Response<CompactResponse>, Status> {
        self.store()?.compact(request.into_inner().revision).await.map_err(to_status)?;
        Ok(Response::new(CompactResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use bosun_store::LocalStore;

    use super::*;
    use crate::status::{Failure, from_status};

    /// Opens a fresh in-memory store for `{}` and refuses anything else.
    struct Memory;

    #[async_trait]
    impl OpenStore for Memory {
        async fn open(&self, config_json: &str) -> bosun_store::Result<Arc<dyn Store>> {
            if config_json != "{}" {
                return Err(bosun_store::StoreError::invalid("config", "must be {}"));
            }
            Ok(Arc::new(LocalStore::memory()?))
        }
    }

    fn configure_request(config_json: &str) -> Request<StorageConfigureRequest> {
        Request::new(StorageConfigureRequest { config_json: config_json.to_owned() })
    }

    #[tokio::test]
    async fn calls_wait_for_configure_and_configure_is_once() {
        let service = StorageService::new(Memory);
        let status = service.revision(Request::new(RevisionRequest {})).await.unwrap_err();
        assert_eq!(from_status(&status), Failure::NotConfigured);

        let status = service.configure(configure_request("[]")).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(service.configured.get().is_none(), "a refused configuration opens nothing");

        let backend = service.configure(configure_request("{}")).await.unwrap().into_inner().backend;
        assert_eq!(backend, "memory");
        // Again with the same configuration: the same store; with another: refused.
        service.configure(configure_request("{}")).await.unwrap();
        let status = service.configure(configure_request(r#"{"other": 1}"#)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(service.revision(Request::new(RevisionRequest {})).await.unwrap().into_inner().revision, 0);
    }

    #[tokio::test]
    async fn malformed_requests_name_the_field() {
        let service = StorageService::new(Memory);
        service.configure(configure_request("{}")).await.unwrap();
        let status = service.get(Request::new(GetRequest { key: "no-slashes".into() })).await.unwrap_err();
        assert!(matches!(
            from_status(&status),
            Failure::Store(bosun_store::StoreError::InvalidArgument { ref field, .. }) if field == "key"
        ));
        let list = ListRequest { selector: "app in (".into(), ..Default::default() };
        let status = service.list(Request::new(list)).await.unwrap_err();
        assert!(matches!(
            from_status(&status),
            Failure::Store(bosun_store::StoreError::InvalidArgument { ref field, .. }) if field == "selector"
        ));
    }
}
