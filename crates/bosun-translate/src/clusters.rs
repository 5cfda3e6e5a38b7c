//! Services → clusters (one per service port, and per port and subset) and their endpoints,
//! with the limits and outlier detection rules add to them.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_model::Document;
use bosun_model::spec::{Service, ServicePort};
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Http2ProtocolOptions, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig as AggregateConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};

use crate::proto;

/// The name of the cluster of a service port (and subset): `outbound|8080|v1|cart.shop`, as
/// Istio names them (`outbound|8080||cart.shop` without a subset).
pub fn cluster_name(service: &str, namespace: &str, port: u16, subset: Option<&str>) -> String {
    format!("outbound|{port}|{}|{service}.{namespace}", subset.unwrap_or_default())
}

/// A cluster that fails over from `primary` to `fallback` when `primary` has no healthy
/// instance: `failover|<primary>|<fallback>`.
pub fn failover_name(primary: &str, fallback: &str) -> String {
    format!("failover|{primary}|{fallback}")
}

/// A cluster to be written: where it sends requests, and what rules added to it.
#[derive(Debug)]
pub(crate) struct ClusterPlan {
    /// Its instances (address, port); empty for a failover cluster.
    endpoints: Vec<(String, u16)>,
    /// HTTP/2 to the instances.
    http2: bool,
    /// For a failover cluster: the clusters it tries, in order.
    failover: Option<[String; 2]>,
    /// At most this many requests at once (a ConcurrencyLimitStrategy).
    pub(crate) max_concurrency: Option<u32>,
    /// Outlier detection (a CircuitBreakerStrategy), and the rule it came from.
    pub(crate) outlier: Option<(OutlierDetection, String)>,
}

/// Every cluster of a namespace, by name.
#[derive(Debug, Default)]
pub(crate) struct Clusters {
    pub(crate) plans: BTreeMap<String, ClusterPlan>,
}

impl Clusters {
    /// The clusters of one service: per port, and per port and subset.
    pub(crate) fn add_service(&mut self, doc: &Document, service: &Service) {
        for port in &service.ports {
            let instances = |selected: &dyn Fn(&bosun_model::spec::Endpoint) -> bool| {
                service
                    .endpoints
                    .iter()
                    .filter(|e| selected(e))
                    .map(|e| (e.address.clone(), e.port.unwrap_or(port.port)))
                    .collect::<Vec<_>>()
            };
            let name = cluster_name(&doc.metadata.name, &doc.metadata.namespace, port.port, None);
            self.plans.insert(name, ClusterPlan::new(instances(&|_| true), port));
            for subset in &service.subsets {
                let name = cluster_name(&doc.metadata.name, &doc.metadata.namespace, port.port, Some(&subset.name));
                self.plans.insert(name, ClusterPlan::new(instances(&|e| subset.selects(e)), port));
            }
        }
    }

    /// A failover cluster from `primary` to `fallback` (both existing); its name.
    pub(crate) fn add_failover(&mut self, primary: &str, fallback: &str) -> String {
        let name = failover_name(primary, fallback);
        let http2 = self.plans.get(primary).is_some_and(|p| p.http2);
        self.plans.entry(name.clone()).or_insert(ClusterPlan {
            endpoints: Vec::new(),
            http2,
            failover: Some([primary.to_owned(), fallback.to_owned()]),
            max_concurrency: None,
            outlier: None,
        });
        name
    }

    /// The clusters that serve requests sent to `name`: itself, or what it fails over to.
    pub(crate) fn serving(&self, name: &str) -> Vec<String> {
        match self.plans.get(name).and_then(|p| p.failover.as_ref()) {
            Some(members) => members.to_vec(),
            None => vec![name.to_owned()],
        }
    }

    /// The clusters and their endpoints, as Envoy resources (sorted by name).
    pub(crate) fn render(&self, connect_timeout: Duration) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
        let mut clusters = Vec::new();
        let mut endpoints = Vec::new();
        for (name, plan) in &self.plans {
            let mut cluster = Cluster {
                name: name.clone(),
                connect_timeout: Some(proto::duration(connect_timeout)),
                ..Default::default()
            };
            if let Some(members) = &plan.failover {
                cluster.lb_policy = LbPolicy::ClusterProvided as i32;
                cluster.cluster_discovery_type = Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
                    name: "envoy.clusters.aggregate".to_owned(),
                    typed_config: Some(proto::any(&AggregateConfig { clusters: members.to_vec() })),
                }));
            } else {
                cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
                cluster.eds_cluster_config =
                    Some(EdsClusterConfig { eds_config: Some(proto::ads()), ..Default::default() });
                endpoints.push(load_assignment(name, &plan.endpoints));
            }
            if plan.http2 && plan.failover.is_none() {
                let options = HttpProtocolOptions {
                    upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                        protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())),
                    })),
                    ..Default::default()
                };
                cluster
                    .typed_extension_protocol_options
                    .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(), proto::any(&options));
            }
            if let Some(max) = plan.max_concurrency {
                cluster.circuit_breakers = Some(CircuitBreakers {
                    thresholds: vec![Thresholds {
                        max_requests: Some(proto::uint32(max)),
                        max_pending_requests: Some(proto::uint32(max)),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
            cluster.outlier_detection = plan.outlier.as_ref().map(|(o, _)| o.clone());
            clusters.push(cluster);
        }
        (clusters, endpoints)
    }
}

impl ClusterPlan {
    fn new(endpoints: Vec<(String, u16)>, port: &ServicePort) -> Self {
        Self { endpoints, http2: port.protocol.is_http2(), failover: None, max_concurrency: None, outlier: None }
    }
}

fn load_assignment(name: &str, instances: &[(String, u16)]) -> ClusterLoadAssignment {
    let lb_endpoints = instances
        .iter()
        .map(|(address, port)| LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: address.clone(),
                        port_specifier: Some(PortSpecifier::PortValue(u32::from(*port))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }],
        ..Default::default()
    }
}
