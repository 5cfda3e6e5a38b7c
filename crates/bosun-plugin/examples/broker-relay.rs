//! An example plugin that calls back into its host through the broker: its `Transform`
//! dials the `Transform` service the host offers on the broker (service id 1, or the
//! `service_id` of its configuration) and relays the request there, renamed to
//! `relayed:<name>`, returning the host's answer.
//!
//! Run by Bosun's tests; run by hand it says it is a plugin and exits 1.

use std::sync::atomic::{AtomicU32, Ordering};

use bosun_plugin::proto::bosun::transform_client::TransformClient;
use bosun_plugin::proto::bosun::transform_server::{Transform, TransformServer};
use bosun_plugin::proto::bosun::{ConfigureRequest, ConfigureResponse, TransformRequest, TransformResponse};
use bosun_plugin::sdk::Listen;
use bosun_plugin::{Broker, HandshakeConfig};
use serde_json::Value;
use tonic::{Request, Response, Status};

struct Relay {
    broker: Broker,
    service_id: AtomicU32,
}

#[tonic::async_trait]
impl Transform for Relay {
    async fn configure(&self, req: Request<ConfigureRequest>) -> Result<Response<ConfigureResponse>, Status> {
        let config: Value = serde_json::from_str(&req.into_inner().config_json)
            .map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let id = config
            .get("service_id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| Status::invalid_argument("config needs service_id, a 32-bit unsigned integer"))?;
        self.service_id.store(id, Ordering::Relaxed);
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn transform(&self, req: Request<TransformRequest>) -> Result<Response<TransformResponse>, Status> {
        let id = self.service_id.load(Ordering::Relaxed);
        let channel = self.broker.dial(id).await.map_err(|e| Status::unavailable(e.to_string()))?;
        let mut req = req.into_inner();
        req.name = format!("relayed:{}", req.name);
        TransformClient::new(channel).transform(req).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    bosun_plugin::sdk::serve_with(&HandshakeConfig::bosun(), Listen::Unix, |broker| {
        tonic::service::Routes::new(TransformServer::new(Relay { broker, service_id: AtomicU32::new(1) }))
    })
    .await
}
