//! One simulated Envoy: an ADS stream on its own HTTP/2 connection that subscribes as Envoy
//! does (CDS and LDS wildcard, then EDS and RDS by name) and ACKs every response.

use std::time::{Duration, Instant};

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// What one client measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientResult {
    /// From opening the stream to having ACKed clusters, endpoints, listeners and routes.
    pub converged: Option<Duration>,
    /// When the changed endpoints arrived.
    pub updated_at: Option<Instant>,
}

fn request(
    node: Option<&Node>,
    type_url: &str,
    names: Vec<String>,
    ack: Option<&DiscoveryResponse>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node.cloned(),
        type_url: type_url.into(),
        resource_names: names,
        version_info: ack.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: ack.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

fn cluster_names(resp: &DiscoveryResponse) -> anyhow::Result<Vec<String>> {
    resp.resources.iter().map(|a| Ok(Cluster::decode(a.value.as_slice())?.name)).collect()
}

fn route_names(resp: &DiscoveryResponse) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for any in &resp.resources {
        let listener = Listener::decode(any.value.as_slice())?;
        for f in listener.filter_chains.iter().flat_map(|c| &c.filters) {
            if let Some(filter::ConfigType::TypedConfig(tc)) = &f.config_type {
                let hcm = HttpConnectionManager::decode(tc.value.as_slice())?;
                if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                    names.push(rds.route_config_name);
                }
            }
        }
    }
    Ok(names)
}

/// Runs one client until `stop` fires. `expected_clusters` tells when EDS is complete; the
/// first EDS version seen after convergence that differs is the update.
pub async fn run(
    endpoint: Endpoint,
    id: usize,
    expected_clusters: usize,
    mut stop: watch::Receiver<bool>,
    report: mpsc::UnboundedSender<(usize, ClientResult)>,
) -> anyhow::Result<()> {
    let channel = endpoint.connect().await?;
    let node = Node { id: format!("bench-{id}"), cluster: crate::server::GROUP.into(), ..Default::default() };
    let (tx, rx) = mpsc::channel(8);
    let start = Instant::now();
    tx.send(request(Some(&node), CLUSTER, vec![], None)).await?;
    tx.send(request(None, LISTENER, vec![], None)).await?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await?.into_inner();
    let (mut cds, mut eds, mut lds, mut rds) = (false, false, false, false);
    let mut eds_names = Vec::new();
    let mut rds_names = Vec::new();
    let mut converged_eds_version: Option<String> = None;
    let mut result = ClientResult::default();
    loop {
        let resp = tokio::select! {
            _ = stop.changed() => break,
            r = responses.message() => match r? { Some(r) => r, None => break },
        };
        match resp.type_url.as_str() {
            CLUSTER => {
                eds_names = cluster_names(&resp)?;
                tx.send(request(None, CLUSTER, vec![], Some(&resp))).await?;
                if !cds {
                    cds = true;
                    tx.send(request(None, ENDPOINT, eds_names.clone(), None)).await?;
                }
            }
            LISTENER => {
                rds_names = route_names(&resp)?;
                tx.send(request(None, LISTENER, vec![], Some(&resp))).await?;
                if !lds {
                    lds = true;
                    tx.send(request(None, ROUTE, rds_names.clone(), None)).await?;
                }
            }
            ENDPOINT => {
                if resp.resources.len() >= expected_clusters {
                    eds = true;
                }
                match &converged_eds_version {
                    Some(v) if *v != resp.version_info && result.updated_at.is_none() => {
                        result.updated_at = Some(Instant::now());
                        let _ = report.send((id, result));
                    }
                    _ => {}
                }
                tx.send(request(None, ENDPOINT, eds_names.clone(), Some(&resp))).await?;
                if result.converged.is_none() && eds {
                    converged_eds_version = Some(resp.version_info.clone());
                }
            }
            ROUTE => {
                rds = true;
                tx.send(request(None, ROUTE, rds_names.clone(), Some(&resp))).await?;
            }
            other => anyhow::bail!("unexpected type {other}"),
        }
        if result.converged.is_none() && cds && eds && lds && rds {
            result.converged = Some(start.elapsed());
            if converged_eds_version.is_none() {
                anyhow::bail!("converged without endpoints");
            }
            let _ = report.send((id, result));
        }
    }
    Ok(())
}
