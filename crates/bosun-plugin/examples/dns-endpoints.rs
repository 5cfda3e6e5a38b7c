//! An example stream plugin: endpoints from DNS. It subscribes to `Cluster` documents; for each
//! cluster labelled `bosun.io/dns-host` (and `bosun.io/dns-port`), it resolves the name with the
//! system resolver and writes the cluster's `ClusterLoadAssignment` back to Bosun through the
//! broker, again every `refresh_seconds` (default 30); when the cluster goes, so do its
//! endpoints. Config: `{"refresh_seconds": N}`.
//!
//! Run by Bosun (or the tests); run by hand it says it is a plugin and exits 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bosun_plugin::proto::bosun::stream_event::Type as EventType;
use bosun_plugin::proto::bosun::stream_host_client::StreamHostClient;
use bosun_plugin::proto::bosun::stream_server::{Stream, StreamServer};
use bosun_plugin::proto::bosun::{
    HostApplyRequest, HostDeleteRequest, StreamConfigureRequest, StreamConfigureResponse, StreamEvent,
    StreamEventsResponse,
};
use bosun_plugin::sdk::{self, Listen};
use bosun_plugin::{Broker, HandshakeConfig};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

const HOST_LABEL: &str = "bosun.io/dns-host";
const PORT_LABEL: &str = "bosun.io/dns-port";

/// A cluster to resolve: (namespace, name) → (host, port).
type Targets = BTreeMap<(String, String), (String, u16)>;

struct DnsEndpoints {
    broker: Broker,
    host: Mutex<Option<StreamHostClient<Channel>>>,
    targets: Arc<Mutex<Targets>>,
    refresh: Mutex<Duration>,
}

#[tonic::async_trait]
impl Stream for DnsEndpoints {
    async fn configure(
        &self,
        req: Request<StreamConfigureRequest>,
    ) -> Result<Response<StreamConfigureResponse>, Status> {
        let req = req.into_inner();
        let config: Value = serde_json::from_str(&req.config_json)
            .map_err(|e| Status::invalid_argument(format!("config is not JSON: {e}")))?;
        let refresh = match config.get("refresh_seconds") {
            None => 30,
            Some(v) => v
                .as_u64()
                .filter(|s| *s >= 1)
                .ok_or_else(|| Status::invalid_argument("refresh_seconds: must be an integer >= 1"))?,
        };
        *self.refresh.lock().await = Duration::from_secs(refresh);
        let channel = self
            .broker
            .dial(req.host_service_id)
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach bosun through the broker: {e}")))?;
        *self.host.lock().await = Some(StreamHostClient::new(channel));
        Ok(Response::new(StreamConfigureResponse { kinds: vec!["Cluster".to_owned()], namespaces: Vec::new() }))
    }

    async fn events(&self, req: Request<Streaming<StreamEvent>>) -> Result<Response<StreamEventsResponse>, Status> {
        let Some(host) = self.host.lock().await.clone() else {
            return Err(Status::failed_precondition("not configured"));
        };
        let mut events = req.into_inner();
        self.targets.lock().await.clear();
        while let Some(event) = events.message().await? {
            let key = (event.namespace.clone(), event.name.clone());
            match event.r#type() {
                EventType::Put => {
                    let doc: Value = serde_json::from_slice(&event.document_json)
                        .map_err(|e| Status::invalid_argument(format!("event document: {e}")))?;
                    let labels = &doc["metadata"]["labels"];
                    let target = labels[HOST_LABEL]
                        .as_str()
                        .zip(labels[PORT_LABEL].as_str().and_then(|p| p.parse::<u16>().ok()));
                    match target {
                        Some((h, p)) => {
                            self.targets.lock().await.insert(key.clone(), (h.to_owned(), p));
                            resolve_and_write(host.clone(), &key, h, p).await;
                        }
                        None => {
                            if self.targets.lock().await.remove(&key).is_some() {
                                remove(host.clone(), &key).await;
                            }
                        }
                    }
                }
                EventType::Delete => {
                    if self.targets.lock().await.remove(&key).is_some() {
                        remove(host.clone(), &key).await;
                    }
                }
                EventType::Synced => eprintln!(r#"{{"@level":"info","@message":"synced with bosun"}}"#),
            }
        }
        Ok(Response::new(StreamEventsResponse {}))
    }
}

async fn resolve_and_write(mut host: StreamHostClient<Channel>, key: &(String, String), name: &str, port: u16) {
    let addresses: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((name, port)).await {
        Ok(found) => found.filter(|a| a.is_ipv4()).collect(),
        Err(e) => {
            eprintln!(
                r#"{{"@level":"warn","@message":"cannot resolve","host":{},"error":{}}}"#,
                json!(name),
                json!(e.to_string())
            );
            return;
        }
    };
    let lb_endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"endpoint": {"address": {"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}}}}))
        .collect();
    let doc = json!({
        "kind": "ClusterLoadAssignment",
        "metadata": {"name": key.1, "namespace": key.0, "labels": {"bosun.io/generated-by": "dns-endpoints"}},
        "spec": {"cluster_name": key.1, "endpoints": [{"lb_endpoints": lb_endpoints}]},
    });
    let documents_json = vec![serde_json::to_vec(&doc).unwrap_or_default()];
    if let Err(e) = host.apply(HostApplyRequest { documents_json }).await {
        eprintln!(r#"{{"@level":"error","@message":"bosun refused the endpoints","error":{}}}"#, json!(e.message()));
    }
}

async fn remove(mut host: StreamHostClient<Channel>, key: &(String, String)) {
    let req =
        HostDeleteRequest { kind: "ClusterLoadAssignment".to_owned(), namespace: key.0.clone(), name: key.1.clone() };
    if let Err(e) = host.delete(req).await {
        eprintln!(r#"{{"@level":"error","@message":"cannot delete the endpoints","error":{}}}"#, json!(e.message()));
    }
}

/// Resolves every target again, every `refresh` (the plugin's "external source").
async fn refresh(plugin: Arc<DnsEndpoints>) {
    loop {
        let period = *plugin.refresh.lock().await;
        tokio::time::sleep(period).await;
        let Some(host) = plugin.host.lock().await.clone() else { continue };
        let targets = plugin.targets.lock().await.clone();
        for (key, (name, port)) in targets {
            resolve_and_write(host.clone(), &key, &name, port).await;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    sdk::serve_with(&HandshakeConfig::bosun(), Listen::Unix, |broker| {
        let plugin = Arc::new(DnsEndpoints {
            broker,
            host: Mutex::new(None),
            targets: Arc::new(Mutex::new(BTreeMap::new())),
            refresh: Mutex::new(Duration::from_secs(30)),
        });
        tokio::spawn(refresh(plugin.clone()));
        tonic::service::Routes::new(StreamServer::from_arc(plugin))
    })
    .await
}
