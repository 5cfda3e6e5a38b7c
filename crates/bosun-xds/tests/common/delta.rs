//! A Delta (incremental) discovery stream seen from the client, every wait bounded, and
//! helpers to read its responses.

use std::collections::HashMap;

use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
use envoy_types::pb::envoy::service::route::v3::virtual_host_discovery_service_client::VirtualHostDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{QUIET, RECV_TIMEOUT, TestServer, strings};

/// One delta stream seen from the client; every wait is bounded.
pub struct DeltaStream {
    node_sent: bool,
    node_id: String,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

pub enum Kind {
    Ads,
    Cds,
    Eds,
    Vhds,
}

impl DeltaStream {
    pub async fn open(server: &TestServer, node_id: &str, kind: Kind) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let rx = ReceiverStream::new(rx);
        let channel = server.channel().await;
        let call = async move {
            match kind {
                Kind::Ads => AggregatedDiscoveryServiceClient::new(channel).delta_aggregated_resources(rx).await,
                Kind::Cds => ClusterDiscoveryServiceClient::new(channel).delta_clusters(rx).await,
                Kind::Eds => EndpointDiscoveryServiceClient::new(channel).delta_endpoints(rx).await,
                Kind::Vhds => VirtualHostDiscoveryServiceClient::new(channel).delta_virtual_hosts(rx).await,
            }
        };
        let responses =
            tokio::time::timeout(RECV_TIMEOUT, call).await.expect("open: timed out").expect("open").into_inner();
        Self { node_sent: false, node_id: node_id.into(), tx, responses }
    }

    pub async fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        if !self.node_sent {
            req.node =
                Some(envoy_types::pb::envoy::config::core::v3::Node { id: self.node_id.clone(), ..Default::default() });
            self.node_sent = true;
        }
        tokio::time::timeout(RECV_TIMEOUT, self.tx.send(req)).await.expect("send: timed out").expect("send");
    }

    /// Subscribes to `sub`, unsubscribes from `unsub`, answering `nonce`.
    pub async fn request(&mut self, type_url: &str, sub: &[&str], unsub: &[&str], nonce: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: strings(sub),
            resource_names_unsubscribe: strings(unsub),
            response_nonce: nonce.into(),
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&mut self, resp: &DeltaDiscoveryResponse) {
        self.request(&resp.type_url, &[], &[], &resp.nonce).await;
    }

    pub async fn nack(&mut self, resp: &DeltaDiscoveryResponse, message: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            error_detail: Some(RpcStatus { code: 3, message: message.into(), details: vec![] }),
            ..Default::default()
        })
        .await;
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        self.try_recv(RECV_TIMEOUT).await.unwrap_or_else(|| panic!("no delta response within {RECV_TIMEOUT:?}"))
    }

    pub async fn try_recv(&mut self, within: std::time::Duration) -> Option<DeltaDiscoveryResponse> {
        match tokio::time::timeout(within, self.responses.message()).await {
            Err(_) => None,
            Ok(Err(status)) => panic!("stream failed: {status:?}"),
            Ok(Ok(None)) => panic!("stream ended"),
            Ok(Ok(Some(resp))) => Some(resp),
        }
    }

    pub async fn expect_quiet(&mut self) {
        if let Some(resp) = self.try_recv(QUIET).await {
            panic!(
                "expected no response, got {} {:?} removed {:?}",
                resp.type_url,
                sent(&resp),
                resp.removed_resources
            );
        }
    }
}

/// The names of the resources in `resp`, sorted, checking each entry's name, version and type.
pub fn sent(resp: &DeltaDiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = resp
        .resources
        .iter()
        .map(|r| {
            let any = r.resource.as_ref().expect("resource set");
            assert_eq!(any.type_url, resp.type_url);
            assert_eq!(r.version.len(), 16, "content-hash version");
            r.name.clone()
        })
        .collect();
    names.sort();
    names
}

pub fn removed(resp: &DeltaDiscoveryResponse) -> Vec<String> {
    let mut names = resp.removed_resources.clone();
    names.sort();
    names
}

pub fn versions(resp: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    resp.resources.iter().map(|r| (r.name.clone(), r.version.clone())).collect()
}
