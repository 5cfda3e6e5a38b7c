//! {{name}}: a Bosun transform plugin.
//!
//! Bosun calls `configure` with the `config` table of the plugin's `[[plugin]]` entry (as JSON)
//! before any other call, and `transform` with every document written of the kinds the entry
//! names, after validation. Answer `Unchanged`, `ChangedJson(new document)` or
//! `RejectedReason(why)`; a rejection is reported to the writer like a validation error.
//!
//! This one refuses documents without an `app` label when `require_app_label = true`, and adds
//! the labels of `add_labels` (a table of strings) to every document.

use std::sync::Mutex;

use bosun_plugin::HandshakeConfig;
use bosun_plugin::proto::bosun::transform_server::{Transform, TransformServer};
use bosun_plugin::proto::bosun::{
    ConfigureRequest, ConfigureResponse, TransformRequest, TransformResponse, transform_response,
};
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

#[derive(Default, Clone)]
struct Config {
    require_app_label: bool,
    add_labels: Map<String, Value>,
}

#[derive(Default)]
struct Plugin {
    config: Mutex<Config>,
}

#[tonic::async_trait]
impl Transform for Plugin {
    async fn configure(&self, req: Request<ConfigureRequest>) -> Result<Response<ConfigureResponse>, Status> {
        let raw: Value = serde_json::from_str(&req.into_inner().config_json)
            .map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let mut config = Config::default();
        if let Some(v) = raw.get("require_app_label") {
            config.require_app_label =
                v.as_bool().ok_or_else(|| Status::invalid_argument("require_app_label: must be true or false"))?;
        }
        if let Some(v) = raw.get("add_labels") {
            let labels = v.as_object().ok_or_else(|| Status::invalid_argument("add_labels: must be a table"))?;
            if let Some((k, _)) = labels.iter().find(|(_, v)| !v.is_string()) {
                return Err(Status::invalid_argument(format!("add_labels.{k}: must be a string")));
            }
            config.add_labels = labels.clone();
        }
        *self.config.lock().map_err(|_| Status::internal("poisoned"))? = config;
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn transform(&self, req: Request<TransformRequest>) -> Result<Response<TransformResponse>, Status> {
        let req = req.into_inner();
        let config = self.config.lock().map_err(|_| Status::internal("poisoned"))?.clone();
        let mut doc: Value = serde_json::from_slice(&req.document_json)
            .map_err(|e| Status::invalid_argument(format!("document is not JSON: {e}")))?;
        let has_app = doc.pointer("/metadata/labels/app").is_some_and(Value::is_string);
        if config.require_app_label && !has_app {
            let reason = format!("{} {}/{} has no app label", req.kind, req.namespace, req.name);
            return Ok(Response::new(TransformResponse { result: Some(transform_response::Result::RejectedReason(reason)) }));
        }
        let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(Status::invalid_argument("document has no metadata"));
        };
        let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        let Some(labels) = labels.as_object_mut() else {
            return Err(Status::invalid_argument("metadata.labels is not a mapping"));
        };
        let mut changed = false;
        for (k, v) in &config.add_labels {
            if labels.get(k) != Some(v) {
                labels.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        let result = if changed {
            let bytes = serde_json::to_vec(&doc).map_err(|e| Status::internal(e.to_string()))?;
            transform_response::Result::ChangedJson(bytes)
        } else {
            transform_response::Result::Unchanged(true)
        };
        Ok(Response::new(TransformResponse { result: Some(result) }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let service = TransformServer::new(Plugin::default());
    bosun_plugin::sdk::serve(&HandshakeConfig::bosun(), tonic::service::Routes::new(service)).await
}
