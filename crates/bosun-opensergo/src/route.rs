//! A TrafficRouter as OpenSergo SDKs receive it: an Envoy `RouteConfiguration`.
//!
//! The configuration and its one virtual host are named after the router; the virtual host's
//! domains are the router's `hosts`. Each `http[]` route becomes one Envoy route per `match[]`
//! entry (one matching every request if it has none), in order, so the first match still wins.
//! A match's `uri` becomes the path match (`exact` → `path`, `prefix` → `prefix`, `regex` →
//! `safe_regex`; `/` when absent), `headers` and `method` (`:method`) header matchers,
//! `queryParams` query parameter matchers. Destinations become clusters named as Istio names
//! them, `outbound|PORT|SUBSET|HOST` (empty parts when not given), weighted when there are
//! several; `timeout`, `retries` and `rewrite` become the route action's. Fault injection and a
//! destination's `fallback` need Envoy filters and cluster plugins, which this conversion does
//! not set up: they are left out.

use std::time::Duration;

use bosun_model::FieldError;
use bosun_model::spec::{Destination, HttpMatch, HttpRoute, StringMatch, TrafficRouter};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster, header_matcher, query_parameter_matcher, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

use crate::convert::narrow;

/// The full name of the message a TrafficRouter goes on the wire as.
pub const ROUTE_CONFIGURATION: &str = "envoy.config.route.v3.RouteConfiguration";

/// Retried when a router's `retries` names no `retryOn` (Istio's default).
const DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The router `name` as an Envoy route configuration.
pub fn route_configuration(name: &str, router: &TrafficRouter) -> Result<RouteConfiguration, FieldError> {
    let mut routes = Vec::new();
    for (i, http) in router.http.iter().enumerate() {
        let action = route_action(&format!("spec.http[{i}]"), http)?;
        let all = [HttpMatch::default()];
        let matches = if http.matches.is_empty() { &all[..] } else { &http.matches[..] };
        for (j, m) in matches.iter().enumerate() {
            routes.push(Route {
                name: http.name.clone().unwrap_or_else(|| format!("{name}-{i}-{j}")),
                r#match: Some(route_match(m)),
                action: Some(route::Action::Route(action.clone())),
                ..Default::default()
            });
        }
    }
    Ok(RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: name.to_owned(),
            domains: router.hosts.clone(),
            routes,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The cluster of a destination: `outbound|PORT|SUBSET|HOST`.
pub fn cluster_name(destination: &Destination) -> String {
    let port = destination.port.as_ref().map(|p| p.number.to_string()).unwrap_or_default();
    let subset = destination.subset.as_deref().unwrap_or_default();
    format!("outbound|{port}|{subset}|{}", destination.host)
}

fn string_matcher(m: &StringMatch) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => string_matcher::MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => string_matcher::MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => string_matcher::MatchPattern::SafeRegex(regex(s)),
    };
    StringMatcher { match_pattern: Some(pattern), ..Default::default() }
}

fn regex(s: &str) -> RegexMatcher {
    RegexMatcher { regex: s.to_owned(), ..Default::default() }
}

fn header(name: &str, m: &StringMatch) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(string_matcher(m))),
        ..Default::default()
    }
}

fn route_match(m: &HttpMatch) -> RouteMatch {
    let path = match &m.uri {
        None => route_match::PathSpecifier::Prefix("/".to_owned()),
        Some(StringMatch::Exact(s)) => route_match::PathSpecifier::Path(s.clone()),
        Some(StringMatch::Prefix(s)) => route_match::PathSpecifier::Prefix(s.clone()),
        Some(StringMatch::Regex(s)) => route_match::PathSpecifier::SafeRegex(regex(s)),
    };
    let mut headers: Vec<HeaderMatcher> = m.headers.iter().map(|(name, m)| header(name, m)).collect();
    if let Some(method) = &m.method {
        headers.push(header(":method", method));
    }
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, m)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                string_matcher(m),
            )),
        })
        .collect();
    RouteMatch { path_specifier: Some(path), headers, query_parameters, ..Default::default() }
}

fn route_action(at: &str, http: &HttpRoute) -> Result<RouteAction, FieldError> {
    let cluster = match http.route.as_slice() {
        [one] => route_action::ClusterSpecifier::Cluster(cluster_name(&one.destination)),
        several => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: several
                .iter()
                .map(|d| weighted_cluster::ClusterWeight {
                    name: cluster_name(&d.destination),
                    weight: Some(UInt32Value { value: d.weight.unwrap_or_default() }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let timeout = http.timeout.map(|d| duration(&format!("{at}.timeout"), d)).transpose()?;
    let retry_policy = match &http.retries {
        None => None,
        Some(retries) => Some(RetryPolicy {
            retry_on: retries.retry_on.clone().unwrap_or_else(|| DEFAULT_RETRY_ON.to_owned()),
            num_retries: Some(UInt32Value { value: retries.attempts }),
            per_try_timeout: retries
                .per_try_timeout
                .map(|d| duration(&format!("{at}.retries.perTryTimeout"), d))
                .transpose()?,
            ..Default::default()
        }),
    };
    let rewrite = http.rewrite.as_ref();
    Ok(RouteAction {
        cluster_specifier: Some(cluster),
        timeout,
        retry_policy,
        prefix_rewrite: rewrite.and_then(|r| r.uri.clone()).unwrap_or_default(),
        host_rewrite_specifier: rewrite
            .and_then(|r| r.authority.clone())
            .map(route_action::HostRewriteSpecifier::HostRewriteLiteral),
        ..Default::default()
    })
}

fn duration(field: &str, d: Duration) -> Result<ProtoDuration, FieldError> {
    // Below 10^9, so it fits.
    let nanos = i32::try_from(d.subsec_nanos()).unwrap_or_default();
    Ok(ProtoDuration { seconds: narrow(field, d.as_secs())?, nanos })
}
