//! Route tables: one per HTTP port, a virtual host per service on that port, with the default
//! route to the service or a TrafficRouter's routes.

use std::collections::BTreeMap;

use bosun_model::spec::{Destination, HttpMatch, HttpRoute, Service, StringMatch, TrafficRouter};
use bosun_model::{Document, Kind};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{ClusterSpecifier, HostRewriteSpecifier};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::Any;

use crate::clusters::{Clusters, cluster_name};
use crate::status::Report;
use crate::{FAULT_FILTER, proto};

/// `retryOn` when a TrafficRouter gives none.
const DEFAULT_RETRY_ON: &str = "5xx,connect-failure,refused-stream";

/// The name of the route table (and listener) of an HTTP port: `bosun_http_8080`.
pub fn route_table_name(port: u16) -> String {
    format!("bosun_http_{port}")
}

/// The Services of a namespace, found by the hosts that name them.
pub(crate) struct Services<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) by_name: BTreeMap<&'a str, (&'a Document, &'a Service)>,
}

impl<'a> Services<'a> {
    /// The service a host names: `cart`, `cart.shop`, or `cart.shop.<anything>`.
    pub(crate) fn find(&self, host: &str) -> Option<(&'a Document, &'a Service)> {
        let name = match host.split_once('.') {
            None => host,
            Some((name, rest)) if rest == self.namespace || rest.starts_with(&format!("{}.", self.namespace)) => name,
            Some(_) => return None,
        };
        self.by_name.get(name).copied()
    }
}

/// One service's virtual host on one port.
#[derive(Debug)]
pub(crate) struct VirtualHostPlan {
    /// The service's name (the virtual host's name, which rules may target).
    pub(crate) service: String,
    /// The service's `app` label.
    pub(crate) app: Option<String>,
    pub(crate) domains: Vec<String>,
    pub(crate) routes: Vec<Route>,
    /// Per-filter configuration for the whole virtual host.
    pub(crate) filters: BTreeMap<String, Any>,
    /// The TrafficRouter whose routes these are, if one.
    routed_by: Option<String>,
}

/// The route tables of a namespace: by port, the virtual hosts by service name.
#[derive(Debug, Default)]
pub(crate) struct RouteTables {
    pub(crate) tables: BTreeMap<u16, BTreeMap<String, VirtualHostPlan>>,
    /// By port, the service each domain names.
    owners: BTreeMap<u16, BTreeMap<String, String>>,
}

impl RouteTables {
    /// A virtual host per HTTP port of a service, with one route to the service.
    pub(crate) fn add_service(&mut self, doc: &Document, service: &Service) {
        let (name, namespace) = (&doc.metadata.name, &doc.metadata.namespace);
        for port in service.ports.iter().filter(|p| p.protocol.is_http()) {
            let route = Route {
                name: format!("{name}-default"),
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster_name(name, namespace, port.port, None))),
                    ..Default::default()
                })),
                ..Default::default()
            };
            let domains = vec![name.clone(), format!("{name}.{namespace}")];
            let owners = self.owners.entry(port.port).or_default();
            owners.extend(domains.iter().map(|d| (d.clone(), name.clone())));
            let vhost = VirtualHostPlan {
                service: name.clone(),
                app: doc.metadata.app().map(str::to_owned),
                domains,
                routes: vec![route],
                filters: BTreeMap::new(),
                routed_by: None,
            };
            self.tables.entry(port.port).or_default().insert(name.clone(), vhost);
        }
    }

    /// A TrafficRouter's routes replace the default route of the services its hosts name.
    pub(crate) fn add_router(
        &mut self,
        doc: &Document,
        router: &TrafficRouter,
        services: &Services,
        clusters: &mut Clusters,
        report: &mut Report,
    ) {
        let router_name = &doc.metadata.name;
        for host in &router.hosts {
            let Some((service_doc, _)) = services.find(host) else {
                report
                    .left_out(format!("host {host:?}: no Service of that name in namespace {:?}", services.namespace));
                continue;
            };
            let service = service_doc.metadata.name.as_str();
            for (&port, vhosts) in &mut self.tables {
                let Some(vhost) = vhosts.get_mut(service) else { continue };
                let owners = self.owners.entry(port).or_default();
                if let Some(other) = vhost.routed_by.as_ref().filter(|o| *o != router_name) {
                    report.left_out(format!(
                        "host {host:?}: the routes of Service/{service} are TrafficRouter/{other}'s (first by name)"
                    ));
                    continue;
                }
                let mut routes = Vec::new();
                for (i, http) in router.http.iter().enumerate() {
                    match http_routes(router_name, i, http, port, services, clusters) {
                        Ok(more) => routes.extend(more),
                        Err(Refused::Unknown(why)) => report.left_out(format!("spec.http[{i}]: {why}")),
                        Err(Refused::Invalid(why)) => report.invalid(format!("spec.http[{i}]: {why}")),
                    }
                }
                if routes.is_empty() {
                    continue;
                }
                if vhost.routed_by.is_none() {
                    vhost.routes = routes;
                    vhost.routed_by = Some(router_name.clone());
                }
                match owners.get(host) {
                    Some(owner) if owner == service => {}
                    Some(_) => {
                        report.left_out(format!("host {host:?}: already a name of another service on port {port}"))
                    }
                    None => {
                        owners.insert(host.clone(), service.to_owned());
                        vhost.domains.push(host.clone());
                    }
                }
                report.enforced(format!("routes of Service/{service} on port {port}"));
            }
        }
    }

    /// Every route name: where routes of that name are (port, service, their indices).
    pub(crate) fn route_names(&self) -> BTreeMap<&str, BTreeMap<(u16, &str), Vec<usize>>> {
        let mut names: BTreeMap<&str, BTreeMap<(u16, &str), Vec<usize>>> = BTreeMap::new();
        for (&port, vhosts) in &self.tables {
            for (service, vhost) in vhosts {
                for (i, route) in vhost.routes.iter().enumerate() {
                    let at = names.entry(route.name.as_str()).or_default();
                    at.entry((port, service.as_str())).or_default().push(i);
                }
            }
        }
        names
    }

    /// The route tables as Envoy resources, by port.
    pub(crate) fn render(&self) -> Vec<(u16, RouteConfiguration)> {
        self.tables
            .iter()
            .map(|(&port, vhosts)| {
                let virtual_hosts = vhosts
                    .values()
                    .map(|v| VirtualHost {
                        name: v.service.clone(),
                        domains: v.domains.clone(),
                        routes: v.routes.clone(),
                        typed_per_filter_config: v.filters.clone().into_iter().collect(),
                        ..Default::default()
                    })
                    .collect();
                let table = RouteConfiguration {
                    name: route_table_name(port),
                    virtual_hosts,
                    ignore_port_in_host_matching: true,
                    ..Default::default()
                };
                (port, table)
            })
            .collect()
    }
}

/// Why a TrafficRouter route has no Envoy form.
enum Refused {
    /// It names a service, subset or port that does not exist (yet).
    Unknown(String),
    /// Envoy would refuse it (a regular expression RE2 does not take).
    Invalid(String),
}

/// The Envoy routes of one TrafficRouter route (one per match), on `port`.
fn http_routes(
    router: &str,
    index: usize,
    http: &HttpRoute,
    port: u16,
    services: &Services,
    clusters: &mut Clusters,
) -> Result<Vec<Route>, Refused> {
    let mut destinations = Vec::new();
    for (i, rd) in http.route.iter().enumerate() {
        let cluster = destination_cluster(&rd.destination, port, services, clusters)
            .map_err(|why| Refused::Unknown(format!("route[{i}].destination: {why}")))?;
        destinations.push((cluster, rd.weight.unwrap_or(100)));
    }
    let cluster_specifier = match destinations.as_slice() {
        [(cluster, _)] => ClusterSpecifier::Cluster(cluster.clone()),
        several => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: several
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: Some(proto::uint32(*weight)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let mut action = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        timeout: http.timeout.map(proto::duration),
        retry_policy: http.retries.as_ref().map(|r| RetryPolicy {
            retry_on: r.retry_on.clone().unwrap_or_else(|| DEFAULT_RETRY_ON.to_owned()),
            num_retries: Some(proto::uint32(r.attempts)),
            per_try_timeout: r.per_try_timeout.map(proto::duration),
            ..Default::default()
        }),
        host_rewrite_specifier: http
            .rewrite
            .as_ref()
            .and_then(|r| r.authority.clone())
            .map(HostRewriteSpecifier::HostRewriteLiteral),
        ..Default::default()
    };
    let mut filters = std::collections::HashMap::new();
    if let Some(fault) = &http.fault {
        let whole = |p: Option<f64>| Some(proto::percent(p.unwrap_or(100.0)));
        let config = HttpFault {
            delay: fault.delay.as_ref().map(|d| FaultDelay {
                percentage: whole(d.percentage),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(proto::duration(d.fixed_delay))),
            }),
            abort: fault.abort.as_ref().map(|a| FaultAbort {
                percentage: whole(a.percentage),
                error_type: Some(ErrorType::HttpStatus(u32::from(a.http_status))),
                ..Default::default()
            }),
            ..Default::default()
        };
        filters.insert(FAULT_FILTER.to_owned(), proto::any(&config));
    }
    let name = http.name.clone().unwrap_or_else(|| format!("{router}-{index}"));
    let every = [HttpMatch::default()];
    let matches = if http.matches.is_empty() { &every[..] } else { &http.matches[..] };
    let mut routes = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let route_match = route_match(m).map_err(|why| Refused::Invalid(format!("match[{i}]: {why}")))?;
        if let Some(uri) = http.rewrite.as_ref().and_then(|r| r.uri.as_ref()) {
            match &m.uri {
                Some(StringMatch::Regex(pattern)) => {
                    action.prefix_rewrite.clear();
                    action.regex_rewrite = Some(RegexMatchAndSubstitute {
                        pattern: Some(proto::regex(pattern).map_err(Refused::Invalid)?),
                        substitution: uri.clone(),
                    });
                }
                _ => {
                    action.regex_rewrite = None;
                    action.prefix_rewrite = uri.clone();
                }
            }
        }
        routes.push(Route {
            name: name.clone(),
            r#match: Some(route_match),
            action: Some(Action::Route(action.clone())),
            typed_per_filter_config: filters.clone(),
            ..Default::default()
        });
    }
    Ok(routes)
}

fn route_match(m: &HttpMatch) -> Result<RouteMatch, String> {
    let path = match &m.uri {
        None => PathSpecifier::Prefix("/".into()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Regex(p)) => PathSpecifier::SafeRegex(proto::regex(p).map_err(|e| format!("uri: {e}"))?),
    };
    let header = |name: &str, matcher: &StringMatch| -> Result<HeaderMatcher, String> {
        Ok(HeaderMatcher {
            name: name.to_owned(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(
                proto::string_matcher(matcher).map_err(|e| format!("headers.{name}: {e}"))?,
            )),
            ..Default::default()
        })
    };
    let mut headers = m.headers.iter().map(|(name, matcher)| header(name, matcher)).collect::<Result<Vec<_>, _>>()?;
    if let Some(method) = &m.method {
        headers.push(header(":method", method).map_err(|e| e.replace("headers.:method", "method"))?);
    }
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, matcher)| {
            Ok(QueryParameterMatcher {
                name: name.clone(),
                query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                    proto::string_matcher(matcher).map_err(|e| format!("queryParams.{name}: {e}"))?,
                )),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RouteMatch { path_specifier: Some(path), headers, query_parameters, ..Default::default() })
}

/// The cluster a destination names, on `port` (the destination's port, else the service's port
/// of that number, else its first HTTP port); with a fallback, a failover cluster.
fn destination_cluster(
    destination: &Destination,
    port: u16,
    services: &Services,
    clusters: &mut Clusters,
) -> Result<String, String> {
    let primary = service_cluster(
        &destination.host,
        destination.subset.as_deref(),
        destination.port.as_ref().map(|p| p.number),
        port,
        services,
    )?;
    match &destination.fallback {
        None => Ok(primary),
        Some(fallback) => {
            let secondary = service_cluster(&fallback.host, fallback.subset.as_deref(), None, port, services)
                .map_err(|why| format!("fallback: {why}"))?;
            Ok(clusters.add_failover(&primary, &secondary))
        }
    }
}

fn service_cluster(
    host: &str,
    subset: Option<&str>,
    port: Option<u16>,
    listener_port: u16,
    services: &Services,
) -> Result<String, String> {
    let Some((doc, service)) = services.find(host) else {
        return Err(format!("host {host:?}: no Service of that name in namespace {:?}", services.namespace));
    };
    let name = &doc.metadata.name;
    let number = match port {
        Some(n) if service.port(n).is_some_and(|p| p.protocol.is_http()) => n,
        Some(n) => return Err(format!("port {n}: not an HTTP port of {}/{name}", Kind::Service)),
        None if service.port(listener_port).is_some_and(|p| p.protocol.is_http()) => listener_port,
        None => match service.ports.iter().find(|p| p.protocol.is_http()) {
            Some(p) => p.port,
            None => return Err(format!("{}/{name} has no HTTP port", Kind::Service)),
        },
    };
    if let Some(subset) = subset
        && service.subset(subset).is_none()
    {
        return Err(format!("subset {subset:?}: not one of {}/{name}'s subsets", Kind::Service));
    }
    Ok(cluster_name(name, &doc.metadata.namespace, number, subset))
}
