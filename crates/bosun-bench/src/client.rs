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

use crate::server::Change;

/// What one client measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientResult {
    /// From opening the stream to having ACKed clusters, endpoints, listeners and routes.
    pub converged: Option<Duration>,
    /// When the changed resource arrived.
    pub updated_at: Option<Instant>,
    /// Encoded bytes of the responses received after convergence, up to and including the one
    /// that carried the change.
    pub update_bytes: usize,
    /// Resources in the response that carried the change.
    pub update_resources: usize,
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

/// The RDS names the encoded listeners `listeners` use.
pub fn route_names<'a>(listeners: impl Iterator<Item = &'a [u8]>) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for bytes in listeners {
        let listener = Listener::decode(bytes)?;
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
/// first version of the `change`d type seen after convergence that differs is the update.
pub async fn run(
    endpoint: Endpoint,
    id: usize,
    expected_clusters: usize,
    change: Change,
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
    let mut converged_cds_version: Option<String> = None;
    let mut cds_version = String::new();
    let mut result = ClientResult::default();
    let changed_type = match change {
        Change::Endpoints => ENDPOINT,
        Change::Cluster => CLUSTER,
    };
    loop {
        let resp = tokio::select! {
            _ = stop.changed() => break,
            r = responses.message() => match r? { Some(r) => r, None => break },
        };
        if result.converged.is_some() && result.updated_at.is_none() {
            result.update_bytes += resp.encoded_len();
            let before = match change {
                Change::Endpoints => &converged_eds_version,
                Change::Cluster => &converged_cds_version,
            };
            if resp.type_url == changed_type && before.as_ref().is_some_and(|v| *v != resp.version_info) {
                result.updated_at = Some(Instant::now());
                result.update_resources = resp.resources.len();
                let _ = report.send((id, result));
            }
        }
        match resp.type_url.as_str() {
            CLUSTER => {
                cds_version = resp.version_info.clone();
                eds_names = cluster_names(&resp)?;
                tx.send(request(None, CLUSTER, vec![], Some(&resp))).await?;
                if !cds {
                    cds = true;
                    tx.send(request(None, ENDPOINT, eds_names.clone(), None)).await?;
                }
            }
            LISTENER => {
                rds_names = route_names(resp.resources.iter().map(|a| a.value.as_slice()))?;
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
            converged_cds_version = Some(cds_version.clone());
            if converged_eds_version.is_none() {
                anyhow::bail!("converged without endpoints");
            }
            let _ = report.send((id, result));
        }
    }
    Ok(())
}
