//! {{name}}: a Bosun stream plugin.
//!
//! Bosun calls `configure` with the `config` table of the plugin's `[[plugin]]` entry (as JSON)
//! and the broker id of `StreamHost`, Bosun's service for writing documents back; the answer
//! names the kinds (and namespaces) whose events the plugin wants. `events` then receives the
//! current documents, `SYNCED`, and every change, for as long as both run.
//!
//! This one copies each document labelled `mirror-to: <namespace>` into that namespace
//! (config: `{"kinds": ["Cluster"]}`, the kinds to watch), and logs every event.

use std::sync::Arc;

use bosun_plugin::proto::bosun::stream_event::Type as EventType;
use bosun_plugin::proto::bosun::stream_host_client::StreamHostClient;
use bosun_plugin::proto::bosun::stream_server::{Stream, StreamServer};
use bosun_plugin::proto::bosun::{
    HostApplyRequest, StreamConfigureRequest, StreamConfigureResponse, StreamEvent, StreamEventsResponse,
};
use bosun_plugin::sdk::{self, Listen};
use bosun_plugin::{Broker, HandshakeConfig};
use serde_json::Value;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

struct Plugin {
    broker: Broker,
    host: Mutex<Option<StreamHostClient<Channel>>>,
}

#[tonic::async_trait]
impl Stream for Plugin {
    async fn configure(
        &self,
        req: Request<StreamConfigureRequest>,
    ) -> Result<Response<StreamConfigureResponse>, Status> {
        let req = req.into_inner();
        let config: Value = serde_json::from_str(&req.config_json)
            .map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let kinds = match config.get("kinds") {
            None => vec!["Cluster".to_owned()],
            Some(Value::Array(kinds)) => kinds
                .iter()
                .map(|k| k.as_str().map(str::to_owned).ok_or_else(|| Status::invalid_argument("kinds: must be strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Status::invalid_argument("kinds: must be a list of kind names")),
        };
        let channel = self.broker.dial(req.host_service_id).await.map_err(|e| Status::unavailable(e.to_string()))?;
        *self.host.lock().await = Some(StreamHostClient::new(channel));
        Ok(Response::new(StreamConfigureResponse { kinds, namespaces: Vec::new() }))
    }

    async fn events(&self, req: Request<Streaming<StreamEvent>>) -> Result<Response<StreamEventsResponse>, Status> {
        let Some(mut host) = self.host.lock().await.clone() else {
            return Err(Status::failed_precondition("not configured"));
        };
        let mut events = req.into_inner();
        while let Some(event) = events.message().await? {
            eprintln!(
                r#"{{"@level":"info","@message":"event","type":"{:?}","key":"{}/{}/{}"}}"#,
                event.r#type(),
                event.kind,
                event.namespace,
                event.name
            );
            if event.r#type() != EventType::Put {
                continue;
            }
            let Ok(mut doc) = serde_json::from_slice::<Value>(&event.document_json) else { continue };
            let Some(target) = doc.pointer("/metadata/labels/mirror-to").and_then(Value::as_str).map(str::to_owned)
            else {
                continue;
            };
            if target == event.namespace {
                continue;
            }
            doc["metadata"]["namespace"] = Value::from(target);
            if let Some(labels) = doc.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
                labels.remove("mirror-to");
            }
            if let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("resourceVersion");
            }
            let documents_json = vec![serde_json::to_vec(&doc).map_err(|e| Status::internal(e.to_string()))?];
            if let Err(e) = host.apply(HostApplyRequest { documents_json }).await {
                eprintln!(r#"{{"@level":"error","@message":"bosun refused the copy","error":{}}}"#, Value::from(e.message()));
            }
        }
        Ok(Response::new(StreamEventsResponse {}))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    sdk::serve_with(&HandshakeConfig::bosun(), Listen::Unix, |broker| {
        let plugin = Arc::new(Plugin { broker, host: Mutex::new(None) });
        tonic::service::Routes::new(StreamServer::from_arc(plugin))
    })
    .await
}
