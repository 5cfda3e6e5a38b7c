//! One simulated Envoy speaking Delta ADS: CDS and LDS wildcard, then EDS and RDS by name, an
//! ACK for every response. It measures what an update costs it: the bytes and the resources of
//! the responses that carry the change.

use std::collections::HashSet;
use std::time::Instant;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::client::{ClientResult, route_names};
use crate::server::{Change, cluster_name};

fn subscribe(node: Option<&Node>, type_url: &str, names: Vec<String>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node.cloned(),
        type_url: type_url.into(),
        resource_names_subscribe: names,
        ..Default::default()
    }
}

fn ack(resp: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest { type_url: resp.type_url.clone(), response_nonce: resp.nonce.clone(), ..Default::default() }
}

/// Runs one delta client until `stop` fires. `expected_clusters` tells when EDS is complete;
/// after convergence, the first response of the `change`d type that carries cluster 0 is the
/// update.
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
    tx.send(subscribe(Some(&node), CLUSTER, vec![])).await?;
    tx.send(subscribe(None, LISTENER, vec![])).await?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client.delta_aggregated_resources(ReceiverStream::new(rx)).await?.into_inner();
    let (mut cds, mut lds, mut rds) = (false, false, false);
    let mut endpoints: HashSet<String> = HashSet::new();
    let mut result = ClientResult::default();
    let changed_type = match change {
        Change::Endpoints => ENDPOINT,
        Change::Cluster => CLUSTER,
    };
    let changed_name = cluster_name(0);
    loop {
        let resp = tokio::select! {
            _ = stop.changed() => break,
            r = responses.message() => match r? { Some(r) => r, None => break },
        };
        if result.converged.is_some() && result.updated_at.is_none() {
            result.update_bytes += resp.encoded_len();
            if resp.type_url == changed_type && resp.resources.iter().any(|r| r.name == changed_name) {
                result.updated_at = Some(Instant::now());
                result.update_resources = resp.resources.len();
                let _ = report.send((id, result));
            }
        }
        tx.send(ack(&resp)).await?;
        match resp.type_url.as_str() {
            CLUSTER if !cds => {
                cds = true;
                let names = resp.resources.iter().map(|r| r.name.clone()).collect();
                tx.send(subscribe(None, ENDPOINT, names)).await?;
            }
            LISTENER if !lds => {
                lds = true;
                let listeners = resp.resources.iter().filter_map(|r| r.resource.as_ref()).map(|a| a.value.as_slice());
                tx.send(subscribe(None, ROUTE, route_names(listeners)?)).await?;
            }
            ENDPOINT => endpoints.extend(resp.resources.iter().map(|r| r.name.clone())),
            ROUTE => rds = true,
            CLUSTER | LISTENER => {}
            other => anyhow::bail!("unexpected type {other}"),
        }
        if result.converged.is_none() && cds && lds && rds && endpoints.len() >= expected_clusters {
            result.converged = Some(start.elapsed());
            let _ = report.send((id, result));
        }
    }
    Ok(())
}
