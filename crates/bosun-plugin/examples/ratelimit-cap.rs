//! An example transform plugin: caps `spec.threshold` of rate-limit rules at the
//! configured `max_threshold` (default 100) and rejects negative thresholds.
//!
//! Run by Bosun (or the tests); run by hand it says it is a plugin and exits 1.

use std::sync::atomic::{AtomicU64, Ordering};

use bosun_plugin::HandshakeConfig;
use bosun_plugin::proto::bosun::transform_server::{Transform, TransformServer};
use bosun_plugin::proto::bosun::{
    ConfigureRequest, ConfigureResponse, TransformRequest, TransformResponse, transform_response,
};
use bosun_plugin::sdk::Listen;
use serde_json::Value;
use tonic::{Request, Response, Status};

struct Cap {
    max: AtomicU64,
}

#[tonic::async_trait]
impl Transform for Cap {
    async fn configure(&self, req: Request<ConfigureRequest>) -> Result<Response<ConfigureResponse>, Status> {
        let config: Value = serde_json::from_str(&req.into_inner().config_json)
            .map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let max = config
            .get("max_threshold")
            .and_then(Value::as_u64)
            .ok_or_else(|| Status::invalid_argument("config needs max_threshold, a non-negative integer"))?;
        self.max.store(max, Ordering::Relaxed);
        eprintln!(r#"{{"@level":"info","@message":"configured","max_threshold":{max}}}"#);
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn transform(&self, req: Request<TransformRequest>) -> Result<Response<TransformResponse>, Status> {
        let req = req.into_inner();
        let mut doc: Value = serde_json::from_slice(&req.document_json)
            .map_err(|e| Status::invalid_argument(format!("document is not JSON: {e}")))?;
        let max = self.max.load(Ordering::Relaxed);
        let result = match doc.pointer("/spec/threshold").and_then(Value::as_f64) {
            None => transform_response::Result::Unchanged(true),
            Some(t) if t < 0.0 => transform_response::Result::RejectedReason(format!(
                "{}/{}: threshold {t} is negative",
                req.namespace, req.name
            )),
            Some(t) if t <= max as f64 => transform_response::Result::Unchanged(true),
            Some(_) => {
                if let Some(t) = doc.pointer_mut("/spec/threshold") {
                    *t = Value::from(max);
                }
                let bytes = serde_json::to_vec(&doc).map_err(|e| Status::internal(e.to_string()))?;
                transform_response::Result::ChangedJson(bytes)
            }
        };
        Ok(Response::new(TransformResponse { result: Some(result) }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let service = TransformServer::new(Cap { max: AtomicU64::new(100) });
    // `--tcp` listens on TCP instead of a unix socket (the tests use it).
    let listen = if std::env::args().any(|a| a == "--tcp") { Listen::Tcp } else { Listen::Unix };
    bosun_plugin::sdk::serve_on(&HandshakeConfig::bosun(), tonic::service::Routes::new(service), listen).await
}
