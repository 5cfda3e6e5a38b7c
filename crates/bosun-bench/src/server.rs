//! The benchmark's server: `bosun-xds` over a snapshot of C EDS clusters and L listeners with
//! RDS, in a process of its own so its memory and CPU can be measured alone.
//!
//! Protocol on stdio: it prints `listening <addr>`; each `update` line on stdin sets a new
//! snapshot in which one resource changed (the endpoints of one cluster, or one cluster), and it
//! prints `updated`.

use std::sync::Arc;

use bosun_xds::{ByNodeCluster, Resource, Snapshot, SnapshotCache, XdsServer};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost};
use envoy_types::pb::envoy::config::route::v3::{route, route_action, route_match};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpConnectionManager, Rds};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_stream::wrappers::TcpListenerStream;

/// Which resource an update changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Change {
    /// The endpoints (EDS) of cluster 0.
    Endpoints,
    /// The cluster (CDS) definition of cluster 0.
    Cluster,
}

/// The group every benchmark client belongs to (`node.cluster`).
pub const GROUP: &str = "bench";
const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

pub fn cluster_name(i: usize) -> String {
    format!("cluster-{i:04}")
}

fn endpoints(cluster: usize, generation: u32) -> ClusterLoadAssignment {
    let lb_endpoints = (0..4u32)
        .map(|e| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: format!("10.{}.{}.{e}", cluster / 250, cluster % 250),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(8000 + generation)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name(cluster),
        endpoints: vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }],
        ..Default::default()
    }
}

/// The resources of one snapshot; `generation` changes what `change` names of cluster 0.
pub fn resources(clusters: usize, listeners: usize, change: Change, generation: u32) -> Vec<Resource> {
    let mut out = Vec::with_capacity(2 * (clusters + listeners));
    for c in 0..clusters {
        let changed = if c == 0 { generation } else { 0 };
        let (cluster_gen, endpoints_gen) = match change {
            Change::Cluster => (changed, 0),
            Change::Endpoints => (0, changed),
        };
        out.push(Resource::new(&Cluster {
            name: cluster_name(c),
            alt_stat_name: if cluster_gen == 0 { String::new() } else { format!("generation-{cluster_gen}") },
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig::default()),
            ..Default::default()
        }));
        out.push(Resource::new(&endpoints(c, endpoints_gen)));
    }
    for l in 0..listeners {
        let route_name = format!("route-{l:03}");
        let hcm = HttpConnectionManager {
            stat_prefix: format!("listener-{l:03}"),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: route_name.clone(),
                config_source: None,
            })),
            ..Default::default()
        };
        out.push(Resource::new(&Listener {
            name: format!("listener-{l:03}"),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: HCM.into(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }));
        let routes = (0..clusters.min(10))
            .map(|c| Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix(format!("/{}", cluster_name(c)))),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster_name(c))),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .collect();
        out.push(Resource::new(&RouteConfiguration {
            name: route_name,
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes,
                ..Default::default()
            }],
            ..Default::default()
        }));
    }
    out
}

/// Serves until stdin closes.
pub async fn run(addr: std::net::SocketAddr, clusters: usize, listeners: usize, change: Change) -> anyhow::Result<()> {
    let cache = Arc::new(SnapshotCache::new(ByNodeCluster));
    cache.set_snapshot(GROUP, Snapshot::new(resources(clusters, listeners, change, 0)))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let routes = XdsServer::new(cache.clone()).routes();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(None)
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {local}\n").as_bytes()).await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut generation = 0;
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "update" {
            generation += 1;
            cache.set_snapshot(GROUP, Snapshot::new(resources(clusters, listeners, change, generation)))?;
            out.write_all(b"updated\n").await?;
            out.flush().await?;
        }
    }
    server.abort();
    Ok(())
}
