//! Bosun's governance rules and services, translated into Envoy resources.
//!
//! [`translate`] is a pure function of the documents of one namespace: it returns the Envoy
//! resources that enforce what Envoy can enforce, and a [`Status`] for every document that says
//! what Envoy does with it (`Enforced`), with part of it (`Partial`, each part left out with
//! why), or nothing (`SdkOnly`: the OpenSergo SDKs still receive every rule). The output is
//! sorted, so the same documents always give the same resources.
//!
//! # What becomes what
//!
//! - A **Service** becomes a cluster per port (`outbound|8080||cart.shop`) and per port and
//!   subset (`outbound|8080|v1|cart.shop`), each with its endpoints over EDS (HTTP/2 to the
//!   instances for `HTTP2` and `GRPC` ports), and, per HTTP port, a virtual host named after the
//!   service (domains `cart` and `cart.shop`, any port) whose one route sends everything to the
//!   service. Each HTTP port has a route table and a listener, both named `bosun_http_<port>`,
//!   on [`Options::listen_address`]: Envoy is the services' local proxy, and a client calls
//!   `http://cart:8080/` through `127.0.0.1:8080` with `Host: cart`.
//! - A **TrafficRouter**'s routes replace the default route of each service its `hosts` name
//!   (`cart`, `cart.shop`, `cart.shop.svc.cluster.local`; a host that is neither a service's name
//!   nor of this namespace is left out), on each of the service's HTTP ports. Matches on the path
//!   (exact, prefix, regex), headers, query parameters and method become route matches (several
//!   matches: one Envoy route each); destinations become a cluster or weighted clusters; timeout,
//!   retries (`retryOn` defaults to `5xx,connect-failure,refused-stream`), rewrites and faults
//!   (delay, abort, through the fault filter) are set per route. A destination's `fallback`
//!   becomes an aggregate cluster (`failover|<primary>|<fallback>`): Envoy sends to the fallback
//!   when the primary has no healthy instance (none at all, or all ejected by outlier detection)
//!   — it does not retry a failed request there. Routes are named by `http[].name`, else
//!   `<router>-<index>`. The first TrafficRouter by name owns a service's routes. A route Envoy
//!   would refuse (a regular expression RE2 does not take: Envoy would reject the whole route
//!   table) is left out; a router with nothing else is `Invalid`.
//! - A **FaultToleranceRule** applies its strategies to its targets: a `targetResourceName` names
//!   a route (as above) or a service (its whole virtual host). With an app (`labels.app` or
//!   `selector.app`), only services of that app (or without one) are targets. Targets that name
//!   nothing on Envoy (an SDK's resource such as `com.shop.Cart:checkout`) are left to the SDKs.
//!   - **RateLimitStrategy** `Local`: Envoy's local rate limit on those routes, a token bucket of
//!     `threshold` tokens refilled at `threshold` per `statDurationSeconds` (429 when empty).
//!     Envoy refills continuously: `threshold` requests at once, then one every
//!     `statDurationSeconds / threshold`. A later rule's limit on a route that has one is left
//!     out; a route's limit overrides its service's. `Global` needs a rate limit service and is
//!     left to the SDKs; so is `threshold: 0` (no token bucket has no tokens).
//!   - **ConcurrencyLimitStrategy** `Local`: circuit breaker thresholds (`max_requests`,
//!     `max_pending_requests`) on the clusters behind those routes (the lowest limit wins);
//!     `Global` is left to the SDKs.
//!   - **CircuitBreakerStrategy** `ErrorRequestRatio`: outlier detection on those clusters by
//!     failure percentage (`triggerRatio` over `statDuration`, at least `minRequestAmount`
//!     requests, ejection for `recoveryTimeout`). Envoy ejects instances one by one rather than
//!     opening one breaker for all; the status says so. `SlowRequestRatio` is left to the SDKs.
//!   - **ThrottlingStrategy**: left to the SDKs (Envoy cannot queue requests to space them out).
//!   - **HttpRequestFallbackAction** (the rule's `fallbackAction`): the answers Envoy gives for
//!     the rule's enforced strategies (429 for a rate limit, 503 for a concurrency limit or
//!     circuit breaker) are replaced, on those routes, by the fallback's status, body and
//!     headers (Envoy's custom response filter, which Envoy marks work-in-progress). The same
//!     statuses from the service itself are replaced too.
//! - A **TrafficLane** is left to the SDKs.
//!
//! A rule naming a strategy or fallback action that does not exist is `Waiting` for it. A
//! strategy or fallback action gets the status of what rules did with it, each line naming the
//! rule.
//!
//! # Golden tests
//!
//! `tests/golden/<case>.yaml` holds the documents of one namespace and `<case>.json` the exact
//! output (canonical proto3 JSON of each resource, and every status). After a deliberate change,
//! `BOSUN_UPDATE_GOLDEN=1 cargo test -p bosun-translate --test golden` rewrites the JSON files;
//! review their diff.

#![warn(missing_docs)]

mod clusters;
pub mod envoy_json;
mod listeners;
mod proto;
mod routes;
mod rules;
mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_model::spec::Spec;
use bosun_model::{DEFAULT_NAMESPACE, Document, Kind, ObjectRef};
use bosun_xds::Resource;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Name;

pub use clusters::{cluster_name, failover_name};
pub use routes::route_table_name;
pub use status::Status;

use crate::clusters::Clusters;
use crate::routes::{RouteTables, Services};
use crate::rules::Usage;
use crate::status::Report;

/// The fault injection filter's name.
pub(crate) const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The local rate limit filter's name.
pub(crate) const RATE_LIMIT_FILTER: &str = "envoy.filters.http.local_ratelimit";
/// The custom response filter's name.
pub(crate) const CUSTOM_RESPONSE_FILTER: &str = "envoy.filters.http.custom_response";

/// How the resources are made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address the listeners bind (`127.0.0.1`).
    pub listen_address: String,
    /// The clusters' connection timeout (1 s).
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { listen_address: "127.0.0.1".to_owned(), connect_timeout: Duration::from_secs(1) }
    }
}

/// The Envoy resources of a namespace's documents, and each document's status; sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// One per HTTP port.
    pub listeners: Vec<Listener>,
    /// One per HTTP port.
    pub route_configurations: Vec<RouteConfiguration>,
    /// Per service port and subset, and failover clusters.
    pub clusters: Vec<Cluster>,
    /// The endpoints of each cluster but the failover ones.
    pub load_assignments: Vec<ClusterLoadAssignment>,
    /// Every governance document's and Service's status.
    pub statuses: BTreeMap<ObjectRef, Status>,
}

/// Translates the documents of one namespace (documents of other namespaces are ignored).
pub fn translate(documents: &[Document], options: &Options) -> Output {
    let namespace = documents.first().map_or(DEFAULT_NAMESPACE, |d| d.metadata.namespace.as_str());
    let by_ref: BTreeMap<ObjectRef, &Document> =
        documents.iter().filter(|d| d.metadata.namespace == namespace).map(|d| (d.object_ref(), d)).collect();
    let of_kind = |kind: Kind| by_ref.values().copied().filter(move |d| d.kind() == kind);
    let mut statuses = BTreeMap::new();
    let mut clusters = Clusters::default();
    let mut tables = RouteTables::default();
    let mut services = Services { namespace, by_name: BTreeMap::new() };

    for doc in of_kind(Kind::Service) {
        let Spec::Service(service) = &doc.spec else { continue };
        clusters.add_service(doc, service);
        tables.add_service(doc, service);
        services.by_name.insert(doc.metadata.name.as_str(), (doc, service));
        let mut report = Report::default();
        for port in &service.ports {
            let cluster = cluster_name(&doc.metadata.name, namespace, port.port, None);
            if port.protocol.is_http() {
                report.enforced(format!(
                    "port {}: cluster {cluster}, routes in {}",
                    port.port,
                    route_table_name(port.port)
                ));
            } else {
                report.enforced(format!("port {}: cluster {cluster}", port.port));
                report.left_out(format!("port {}: TCP, so no routes (Bosun routes HTTP)", port.port));
            }
        }
        statuses.insert(doc.object_ref(), report.status());
    }
    for doc in of_kind(Kind::TrafficRouter) {
        let Spec::TrafficRouter(router) = &doc.spec else { continue };
        let mut report = Report::default();
        tables.add_router(doc, router, &services, &mut clusters, &mut report);
        statuses.insert(doc.object_ref(), report.status());
    }
    let mut usage = Usage::default();
    let names = rules::route_names(&tables);
    for doc in of_kind(Kind::FaultToleranceRule) {
        let Spec::FaultToleranceRule(rule) = &doc.spec else { continue };
        let status = rules::apply(doc, rule, &by_ref, (&mut tables, &names), &mut clusters, &mut usage);
        statuses.insert(doc.object_ref(), status);
    }
    for doc in by_ref.values() {
        let why = match doc.kind() {
            kind if kind.is_strategy() || kind == Kind::HttpRequestFallbackAction => {
                "no FaultToleranceRule applies it to an Envoy route or Service"
            }
            Kind::TrafficLane => "lanes are served to SDKs; Envoy routes by TrafficRouters",
            _ => continue,
        };
        let status = match usage.reports.remove(&doc.object_ref()) {
            Some(report) => report.status(),
            None => Status::SdkOnly { why: why.to_owned() },
        };
        statuses.insert(doc.object_ref(), status);
    }

    let (clusters, load_assignments) = clusters.render(options.connect_timeout);
    let routes = tables.render();
    let listeners = routes.iter().map(|(port, _)| listeners::http_listener(&options.listen_address, *port)).collect();
    Output {
        listeners,
        route_configurations: routes.into_iter().map(|(_, table)| table).collect(),
        clusters,
        load_assignments,
        statuses,
    }
}

impl Output {
    /// The resources, encoded for xDS: clusters, endpoints, listeners, routes. A resource's
    /// version is a hash of its bytes, except for route tables: their per-filter configurations
    /// are maps, which encode in a random order, so their version is a hash of their canonical
    /// JSON (clusters have at most one protocol options entry, and the rest no maps).
    pub fn resources(&self) -> Result<Vec<Resource>, String> {
        let mut out: Vec<Resource> = self.clusters.iter().map(Resource::new).collect();
        out.extend(self.load_assignments.iter().map(Resource::new));
        out.extend(self.listeners.iter().map(Resource::new));
        for table in &self.route_configurations {
            out.push(envoy_json::resource(&RouteConfiguration::type_url(), &table.name, table)?);
        }
        Ok(out)
    }

    /// The output as JSON: `{"resources": [...], "statuses": {"Kind/name": ...}}`, each resource
    /// in canonical proto3 JSON (proto field names) with its `@type`; what the golden tests
    /// compare.
    pub fn to_json(&self) -> Result<serde_json::Value, String> {
        let mut resources = Vec::new();
        for resource in self.resources()? {
            let mut json = envoy_json::canonical_json(resource.type_url(), resource.value())?;
            if let Some(object) = json.as_object_mut() {
                object.insert("@type".to_owned(), resource.type_url().into());
            }
            resources.push(json);
        }
        let statuses: serde_json::Map<String, serde_json::Value> =
            self.statuses.iter().map(|(r, s)| (r.to_string(), serde_json::to_value(s).unwrap_or_default())).collect();
        Ok(serde_json::json!({ "resources": resources, "statuses": statuses }))
    }
}
