//! The benchmark's server: `bosun-xds` over a snapshot of C EDS clusters and L listeners with
//! RDS, in a process of its own so its memory and CPU can be measured alone. With `linear`, the
//! endpoints come from a `LinearCache` instead (behind a `MuxCache`; the rest from snapshots).
//!
//! Protocol on stdio: it prints `listening <addr>`; each `update` line on stdin changes one
//! resource (the endpoints of one cluster, or one cluster) and it prints `updated <µs>`: how long
//! making the new set and waking the streams took. With snapshots, that is a new snapshot of
//! the already-encoded resources with the changed one re-encoded; with the linear cache, an
//! `update_resource` of the changed endpoints.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bosun_xds::type_url::ENDPOINT;
use bosun_xds::{ByNodeCluster, Cache, LinearCache, MuxCache, Resource, Snapshot, SnapshotCache, XdsServer};
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

fn cluster(c: usize, generation: u32) -> Cluster {
    Cluster {
        name: cluster_name(c),
        alt_stat_name: if generation == 0 { String::new() } else { format!("generation-{generation}") },
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig::default()),
        ..Default::default()
    }
}

/// The resource of cluster 0 that `change` names, at `generation`.
fn changed_resource(change: Change, generation: u32) -> Resource {
    match change {
        Change::Cluster => Resource::new(&cluster(0, generation)),
        Change::Endpoints => Resource::new(&endpoints(0, generation)),
    }
}

/// The resources of the first snapshot: C clusters with their endpoints, L listeners with
/// their route configurations.
pub fn resources(clusters: usize, listeners: usize) -> Vec<Resource> {
    let mut out = Vec::with_capacity(2 * (clusters + listeners));
    for c in 0..clusters {
        out.push(Resource::new(&cluster(c, 0)));
        out.push(Resource::new(&endpoints(c, 0)));
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

/// Where the server's resources live, and how an update changes one.
enum Source {
    /// Every type from snapshots: an update sets a new snapshot of the same resources (kept
    /// encoded) with the changed one replaced.
    Snapshots { cache: Arc<SnapshotCache>, resources: Vec<Resource>, changed_index: usize },
    /// Endpoints from a linear cache, the rest from a snapshot: an update replaces one resource.
    Linear { endpoints: Arc<LinearCache> },
}

impl Source {
    fn new(clusters: usize, listeners: usize, change: Change, linear: bool) -> anyhow::Result<(Self, Arc<dyn Cache>)> {
        let mut resources = resources(clusters, listeners);
        if !linear {
            let cache = Arc::new(SnapshotCache::new(ByNodeCluster));
            cache.set_snapshot(GROUP, Snapshot::new(resources.clone()))?;
            let first = changed_resource(change, 0);
            let changed_index = resources
                .iter()
                .position(|r| r.type_url() == first.type_url() && r.name() == first.name())
                .context("the changed resource is in the snapshot")?;
            return Ok((Source::Snapshots { cache: cache.clone(), resources, changed_index }, cache));
        }
        anyhow::ensure!(change == Change::Endpoints, "--linear serves endpoints: it changes endpoints only");
        let endpoints = Arc::new(LinearCache::new(ENDPOINT));
        let (eds, rest): (Vec<Resource>, Vec<Resource>) = resources.drain(..).partition(|r| r.type_url() == ENDPOINT);
        endpoints.set_resources(eds)?;
        let snapshots = Arc::new(SnapshotCache::new(ByNodeCluster).served_elsewhere([ENDPOINT]));
        snapshots.set_snapshot(GROUP, Snapshot::new(rest))?;
        let mux = MuxCache::new().route(ENDPOINT, endpoints.clone()).default_cache(snapshots);
        Ok((Source::Linear { endpoints }, Arc::new(mux)))
    }

    /// Applies `changed` (already encoded) and wakes the streams.
    fn update(&mut self, changed: Resource) -> anyhow::Result<()> {
        match self {
            Source::Snapshots { cache, resources, changed_index } => {
                resources[*changed_index] = changed;
                cache.set_snapshot(GROUP, Snapshot::new(resources.iter().cloned()))?;
            }
            Source::Linear { endpoints } => {
                endpoints.update_resource(changed)?;
            }
        }
        Ok(())
    }
}

/// Serves until stdin closes.
pub async fn run(
    addr: std::net::SocketAddr,
    clusters: usize,
    listeners: usize,
    change: Change,
    linear: bool,
) -> anyhow::Result<()> {
    let (mut source, cache) = Source::new(clusters, listeners, change, linear)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let routes = XdsServer::new(cache).routes();
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
            let changed = changed_resource(change, generation);
            let started = Instant::now();
            source.update(changed)?;
            let micros = started.elapsed().as_micros();
            out.write_all(format!("updated {micros}\n").as_bytes()).await?;
            out.flush().await?;
        }
    }
    server.abort();
    Ok(())
}
