//! An example transform plugin: caps `spec.threshold` of rate-limit rules.
//!
//! Config (JSON, from the plugin's `[[plugin]]` entry):
//! - `max_threshold` (default 100): the cap;
//! - `namespaces` (optional): a table of caps per namespace, over `max_threshold`;
//! - `reject_global` (optional, default false): refuse `limitMode: Global` rules (say, where
//!   no global rate limit service runs).
//!
//! Negative thresholds are refused. Run by Bosun (or the tests); run by hand it says it is a
//! plugin and exits 1.

use std::collections::BTreeMap;
use std::sync::RwLock;

use bosun_plugin::HandshakeConfig;
use bosun_plugin::proto::bosun::transform_server::{Transform, TransformServer};
use bosun_plugin::proto::bosun::{
    ConfigureRequest, ConfigureResponse, TransformRequest, TransformResponse, transform_response,
};
use bosun_plugin::sdk::Listen;
use serde_json::Value;
use tonic::{Request, Response, Status};

/// The cap without configuration.
const DEFAULT_MAX: u64 = 100;

#[derive(Debug, Clone)]
struct Config {
    max: u64,
    namespaces: BTreeMap<String, u64>,
    reject_global: bool,
}

impl Config {
    fn parse(json: &str) -> Result<Self, Status> {
        let config: Value =
            serde_json::from_str(json).map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let max = match config.get("max_threshold") {
            None => DEFAULT_MAX,
            Some(v) => {
                v.as_u64().ok_or_else(|| Status::invalid_argument("max_threshold: must be a non-negative integer"))?
            }
        };
        let mut namespaces = BTreeMap::new();
        if let Some(table) = config.get("namespaces") {
            let table = table.as_object().ok_or_else(|| Status::invalid_argument("namespaces: must be a table"))?;
            for (ns, cap) in table {
                let cap = cap.as_u64().ok_or_else(|| {
                    Status::invalid_argument(format!("namespaces.{ns}: must be a non-negative integer"))
                })?;
                namespaces.insert(ns.clone(), cap);
            }
        }
        let reject_global = match config.get("reject_global") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| Status::invalid_argument("reject_global: must be true or false"))?,
        };
        Ok(Self { max, namespaces, reject_global })
    }
}

struct Cap {
    config: RwLock<Config>,
}

#[tonic::async_trait]
impl Transform for Cap {
    async fn configure(&self, req: Request<ConfigureRequest>) -> Result<Response<ConfigureResponse>, Status> {
        let config = Config::parse(&req.into_inner().config_json)?;
        eprintln!(r#"{{"@level":"info","@message":"configured","max_threshold":{}}}"#, config.max);
        *self.config.write().map_err(|_| Status::internal("config lock poisoned"))? = config;
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn transform(&self, req: Request<TransformRequest>) -> Result<Response<TransformResponse>, Status> {
        let req = req.into_inner();
        let mut doc: Value = serde_json::from_slice(&req.document_json)
            .map_err(|e| Status::invalid_argument(format!("document is not JSON: {e}")))?;
        let config = self.config.read().map_err(|_| Status::internal("config lock poisoned"))?.clone();
        let max = config.namespaces.get(&req.namespace).copied().unwrap_or(config.max);
        let global = doc.pointer("/spec/limitMode").and_then(Value::as_str) == Some("Global");
        let result = match doc.pointer("/spec/threshold").and_then(Value::as_f64) {
            _ if global && config.reject_global => transform_response::Result::RejectedReason(format!(
                "{}/{}: limitMode Global is not allowed here (no global rate limit service)",
                req.namespace, req.name
            )),
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
    let service = TransformServer::new(Cap {
        config: RwLock::new(Config { max: DEFAULT_MAX, namespaces: BTreeMap::new(), reject_global: false }),
    });
    // `--tcp` listens on TCP instead of a unix socket (the tests use it).
    let listen = if std::env::args().any(|a| a == "--tcp") { Listen::Tcp } else { Listen::Unix };
    bosun_plugin::sdk::serve_on(&HandshakeConfig::bosun(), tonic::service::Routes::new(service), listen).await
}
