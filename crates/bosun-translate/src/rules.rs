//! FaultToleranceRules: their strategies and fallback action, put on the routes, virtual hosts
//! and clusters their targets name.

use std::collections::{BTreeMap, BTreeSet};

use bosun_model::spec::{
    CircuitBreakerStrategy, ConcurrencyLimitStrategy, FaultToleranceRule, HttpRequestFallbackAction, LimitMode,
    RateLimitStrategy, Spec, TripStrategy,
};
use bosun_model::units::format_duration;
use bosun_model::{Document, ObjectRef};
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::http::custom_response::local_response_policy::v3::LocalResponsePolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::HttpResponseStatusCodeMatchInput;
use envoy_types::pb::envoy::r#type::v3::TokenBucket;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::single_predicate::Matcher as ValueMatcher;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{MatchType, SinglePredicate};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::{FieldMatcher, Predicate};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch as OnMatchKind;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{MatcherList, MatcherType, OnMatch};
use envoy_types::pb::xds::r#type::matcher::v3::{Matcher, StringMatcher, string_matcher::MatchPattern};

use crate::clusters::Clusters;
use crate::routes::RouteTables;
use crate::status::{Report, Status};
use crate::{CUSTOM_RESPONSE_FILTER, RATE_LIMIT_FILTER, proto};

/// The status Envoy answers a request its local rate limit refuses.
const RATE_LIMITED: u16 = 429;
/// The status Envoy answers when a circuit breaker or outlier ejection leaves no instance.
const OVERLOADED: u16 = 503;

/// Where a rule applies: a virtual host (a Service) or some routes of one, on one port.
struct Place {
    port: u16,
    /// The virtual host's service.
    service: String,
    /// The routes of the virtual host; `None` for all of it.
    routes: Option<Vec<usize>>,
    /// `route "checkout" on port 8080`, `Service/cart on port 8080`.
    label: String,
}

/// What the rules did to each strategy and fallback action, for their own statuses.
#[derive(Default)]
pub(crate) struct Usage {
    pub(crate) reports: BTreeMap<ObjectRef, Report>,
}

/// Where each route name is: (port, service) → the routes' indices ([`RouteTables::route_names`],
/// owned, so that rules can change the tables).
pub(crate) type RouteNames = BTreeMap<String, BTreeMap<(u16, String), Vec<usize>>>;

/// The route names of `tables`, for [`apply`].
pub(crate) fn route_names(tables: &RouteTables) -> RouteNames {
    tables
        .route_names()
        .into_iter()
        .map(|(name, at)| (name.to_owned(), at.into_iter().map(|((p, s), i)| ((p, s.to_owned()), i)).collect()))
        .collect()
}

/// Applies one rule; returns its status.
pub(crate) fn apply(
    doc: &Document,
    rule: &FaultToleranceRule,
    documents: &BTreeMap<ObjectRef, &Document>,
    (tables, names): (&mut RouteTables, &RouteNames),
    clusters: &mut Clusters,
    usage: &mut Usage,
) -> Status {
    let missing: Vec<String> = doc
        .references()
        .into_iter()
        .filter(|(_, to)| !documents.contains_key(to))
        .map(|(_, to)| to.to_string())
        .collect();
    if !missing.is_empty() {
        return Status::Waiting { on: missing };
    }
    let mut report = Report::default();
    let places = places(rule, doc.app(), tables, names, &mut report);
    if places.is_empty() {
        return report.status();
    }
    let mut refused_with = BTreeSet::new();
    // In a strategy's own status, each line says which rule it comes from.
    let from_rule = format!("{}: ", doc.object_ref());
    for strategy in &rule.strategies {
        let to =
            ObjectRef { kind: strategy.kind, namespace: doc.metadata.namespace.clone(), name: strategy.name.clone() };
        let Some(strategy_doc) = documents.get(&to) else { continue };
        let mut part = Report::default();
        let refused = match &strategy_doc.spec {
            Spec::RateLimitStrategy(s) => rate_limit(&to, s, &places, tables, &mut part),
            Spec::ConcurrencyLimitStrategy(s) => concurrency_limit(&to, s, &places, tables, clusters, &mut part),
            Spec::CircuitBreakerStrategy(s) => circuit_breaker(&to, s, &places, tables, clusters, &mut part),
            Spec::ThrottlingStrategy(_) => {
                part.left_out(format!("{to}: Envoy cannot space requests out and queue them; served to SDKs only"));
                None
            }
            _ => None,
        };
        if part.any_enforced() {
            refused_with.extend(refused);
        }
        part.merge_into(&mut report, "");
        part.merge_into(usage.reports.entry(to).or_default(), &from_rule);
    }
    if let Some(action) = &rule.fallback_action {
        let to = ObjectRef { kind: action.kind, namespace: doc.metadata.namespace.clone(), name: action.name.clone() };
        if let Some(Spec::HttpRequestFallbackAction(fallback)) = documents.get(&to).map(|d| &d.spec) {
            let mut part = Report::default();
            fallback_response(&to, fallback, &refused_with, &places, tables, &mut part);
            part.merge_into(&mut report, "");
            part.merge_into(usage.reports.entry(to).or_default(), &from_rule);
        }
    }
    report.status()
}

/// The routes and virtual hosts the rule's targets name (of its app's services, if it has an
/// app): the routes of that name, else the virtual host of the service of that name.
fn places(
    rule: &FaultToleranceRule,
    app: Option<&str>,
    tables: &RouteTables,
    names: &RouteNames,
    report: &mut Report,
) -> Vec<Place> {
    let mut places = Vec::new();
    for target in &rule.targets {
        let name = &target.target_resource_name;
        let mut found: BTreeMap<(u16, String), Option<Vec<usize>>> =
            names.get(name).into_iter().flatten().map(|(at, routes)| (at.clone(), Some(routes.clone()))).collect();
        for (&port, vhosts) in &tables.tables {
            if vhosts.contains_key(name) {
                found.entry((port, name.clone())).or_insert(None);
            }
        }
        let before = places.len();
        for ((port, service), routes) in found {
            let vhost_app = tables.tables.get(&port).and_then(|v| v.get(&service)).and_then(|v| v.app.as_deref());
            if app.is_some() && vhost_app.is_some() && vhost_app != app {
                continue;
            }
            let label = match routes {
                Some(_) => format!("route {name:?} on port {port}"),
                None => format!("Service/{service} on port {port}"),
            };
            places.push(Place { port, service, routes, label });
        }
        if places.len() == before {
            let of_app = app.map(|app| format!(" (of app {app:?})")).unwrap_or_default();
            report.left_out(format!("target {name:?}: no Envoy route or Service of that name{of_app}; SDKs guard it"));
        }
    }
    places
}

/// Sets a per-filter configuration on a place, unless another rule set one there first.
fn configure(tables: &mut RouteTables, place: &Place, filter: &str, config: &Any) -> Result<(), String> {
    let Some(vhost) = tables.tables.get_mut(&place.port).and_then(|v| v.get_mut(&place.service)) else {
        return Err(format!("{}: gone", place.label));
    };
    match &place.routes {
        None if vhost.filters.contains_key(filter) => {
            Err(format!("{}: already configured by an earlier rule", place.label))
        }
        None => {
            vhost.filters.insert(filter.to_owned(), config.clone());
            Ok(())
        }
        Some(routes) => {
            if routes
                .iter()
                .any(|&r| vhost.routes.get(r).is_some_and(|r| r.typed_per_filter_config.contains_key(filter)))
            {
                return Err(format!("{}: already configured by an earlier rule", place.label));
            }
            for &r in routes {
                if let Some(route) = vhost.routes.get_mut(r) {
                    route.typed_per_filter_config.insert(filter.to_owned(), config.clone());
                }
            }
            Ok(())
        }
    }
}

/// The clusters that serve a place's requests.
fn clusters_of(tables: &RouteTables, clusters: &Clusters, place: &Place) -> BTreeSet<String> {
    let Some(vhost) = tables.tables.get(&place.port).and_then(|v| v.get(&place.service)) else {
        return BTreeSet::new();
    };
    let routes: Vec<_> = match &place.routes {
        None => vhost.routes.iter().collect(),
        Some(indices) => indices.iter().filter_map(|&i| vhost.routes.get(i)).collect(),
    };
    let mut out = BTreeSet::new();
    for route in routes {
        let Some(Action::Route(action)) = &route.action else { continue };
        let named: Vec<&String> = match &action.cluster_specifier {
            Some(ClusterSpecifier::Cluster(name)) => vec![name],
            Some(ClusterSpecifier::WeightedClusters(w)) => w.clusters.iter().map(|c| &c.name).collect(),
            _ => Vec::new(),
        };
        out.extend(named.into_iter().flat_map(|n| clusters.serving(n)));
    }
    out
}

fn rate_limit(
    to: &ObjectRef,
    s: &RateLimitStrategy,
    places: &[Place],
    tables: &mut RouteTables,
    report: &mut Report,
) -> Option<u16> {
    if s.limit_mode == LimitMode::Global {
        report.left_out(format!("{to}: served to SDKs only: Envoy's global rate limit needs a rate limit service"));
        return None;
    }
    let Some(tokens) = u32::try_from(s.threshold).ok().filter(|&t| t > 0) else {
        report.left_out(format!(
            "{to}: threshold {} has no token bucket form (1 to {}); served to SDKs only",
            s.threshold,
            u32::MAX
        ));
        return None;
    };
    let config = LocalRateLimit {
        stat_prefix: format!("bosun_rate_limit_{}", to.name),
        token_bucket: Some(TokenBucket {
            max_tokens: tokens,
            tokens_per_fill: Some(proto::uint32(tokens)),
            fill_interval: Some(proto::duration(std::time::Duration::from_secs(u64::from(s.stat_duration_seconds)))),
        }),
        filter_enabled: Some(proto::always("bosun.rate_limit.enabled")),
        filter_enforced: Some(proto::always("bosun.rate_limit.enforced")),
        ..Default::default()
    };
    let config = proto::any(&config);
    for place in places {
        match configure(tables, place, RATE_LIMIT_FILTER, &config) {
            Ok(()) => report.enforced(format!(
                "{to}: local rate limit of {} per {}s on {}",
                s.threshold, s.stat_duration_seconds, place.label
            )),
            Err(why) => report.left_out(format!("{to}: {why}")),
        }
    }
    Some(RATE_LIMITED)
}

fn concurrency_limit(
    to: &ObjectRef,
    s: &ConcurrencyLimitStrategy,
    places: &[Place],
    tables: &RouteTables,
    clusters: &mut Clusters,
    report: &mut Report,
) -> Option<u16> {
    if s.limit_mode == LimitMode::Global {
        report.left_out(format!("{to}: served to SDKs only: Envoy limits concurrency per instance of Envoy"));
        return None;
    }
    let max = u32::try_from(s.max_concurrency).unwrap_or(u32::MAX);
    for place in places {
        for name in clusters_of(tables, clusters, place) {
            if let Some(plan) = clusters.plans.get_mut(&name) {
                plan.max_concurrency = Some(plan.max_concurrency.map_or(max, |m| m.min(max)));
                report.enforced(format!("{to}: at most {max} requests at once to cluster {name} ({})", place.label));
            }
        }
    }
    Some(OVERLOADED)
}

fn circuit_breaker(
    to: &ObjectRef,
    s: &CircuitBreakerStrategy,
    places: &[Place],
    tables: &RouteTables,
    clusters: &mut Clusters,
    report: &mut Report,
) -> Option<u16> {
    if s.strategy == TripStrategy::SlowRequestRatio {
        report.left_out(format!(
            "{to}: SlowRequestRatio: Envoy's outlier detection does not count slow requests; served to SDKs only"
        ));
        return None;
    }
    let outlier = OutlierDetection {
        interval: Some(proto::duration(s.stat_duration)),
        base_ejection_time: Some(proto::duration(s.recovery_timeout)),
        max_ejection_percent: Some(proto::uint32(100)),
        // Only the failure percentage ejects.
        enforcing_consecutive_5xx: Some(proto::uint32(0)),
        enforcing_success_rate: Some(proto::uint32(0)),
        failure_percentage_threshold: Some(proto::uint32(s.trigger_ratio.percent().round() as u32)),
        enforcing_failure_percentage: Some(proto::uint32(100)),
        failure_percentage_minimum_hosts: Some(proto::uint32(1)),
        failure_percentage_request_volume: Some(proto::uint32(u32::try_from(s.min_request_amount).unwrap_or(u32::MAX))),
        ..Default::default()
    };
    for place in places {
        for name in clusters_of(tables, clusters, place) {
            let Some(plan) = clusters.plans.get_mut(&name) else { continue };
            match &plan.outlier {
                Some((_, owner)) if owner != &to.name => {
                    report.left_out(format!("{to}: cluster {name} already has CircuitBreakerStrategy/{owner}'s"));
                }
                _ => {
                    plan.outlier = Some((outlier.clone(), to.name.clone()));
                    report.enforced(format!(
                        "{to}: outlier detection on cluster {name} ({}): an instance with {} or more errors over {} \
                         (at least {} requests) is ejected for {} (Envoy ejects per instance)",
                        place.label,
                        s.trigger_ratio,
                        format_duration(s.stat_duration),
                        s.min_request_amount,
                        format_duration(s.recovery_timeout),
                    ));
                }
            }
        }
    }
    Some(OVERLOADED)
}

fn fallback_response(
    to: &ObjectRef,
    fallback: &HttpRequestFallbackAction,
    refused_with: &BTreeSet<u16>,
    places: &[Place],
    tables: &mut RouteTables,
    report: &mut Report,
) {
    let behavior = &fallback.behavior_desc;
    if refused_with.is_empty() {
        report.left_out(format!("{to}: Envoy refuses no request for this rule, so it never answers the fallback"));
        return;
    }
    if behavior.response_status_code < 200 {
        report.left_out(format!(
            "{to}: Envoy answers with a status of 200 or more, not {}",
            behavior.response_status_code
        ));
        return;
    }
    let policy = LocalResponsePolicy {
        body: Some(DataSource {
            specifier: Some(Specifier::InlineString(behavior.response_content_body.clone())),
            ..Default::default()
        }),
        status_code: Some(proto::uint32(u32::from(behavior.response_status_code))),
        response_headers_to_add: behavior
            .response_additional_headers
            .iter()
            .map(|h| proto::header(&h.key, &h.value))
            .collect(),
        ..Default::default()
    };
    let matchers = refused_with
        .iter()
        .map(|status| FieldMatcher {
            predicate: Some(Predicate {
                match_type: Some(MatchType::SinglePredicate(SinglePredicate {
                    input: Some(TypedExtensionConfig {
                        name: "status".to_owned(),
                        typed_config: Some(proto::any(&HttpResponseStatusCodeMatchInput {})),
                    }),
                    matcher: Some(ValueMatcher::ValueMatch(StringMatcher {
                        match_pattern: Some(MatchPattern::Exact(status.to_string())),
                        ignore_case: false,
                    })),
                })),
            }),
            on_match: Some(OnMatch {
                on_match: Some(OnMatchKind::Action(TypedExtensionConfig {
                    name: to.name.clone(),
                    typed_config: Some(proto::any(&policy)),
                })),
                keep_matching: false,
            }),
        })
        .collect();
    let config = CustomResponse {
        custom_response_matcher: Some(Matcher {
            matcher_type: Some(MatcherType::MatcherList(MatcherList { matchers })),
            on_no_match: None,
        }),
    };
    let config = proto::any(&config);
    let statuses = refused_with.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ");
    for place in places {
        match configure(tables, place, CUSTOM_RESPONSE_FILTER, &config) {
            Ok(()) => report.enforced(format!(
                "{to}: responses with status {statuses} on {} are replaced by status {}",
                place.label, behavior.response_status_code
            )),
            Err(why) => report.left_out(format!("{to}: {why}")),
        }
    }
}
