use bosun_model::Document;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route, route_action, route_match};
use prost::Message;
use serde_json::json;

use super::*;

fn doc(kind: &str, spec: serde_json::Value) -> Document {
    Document::parse(json!({"kind": kind, "metadata": {"name": "r1", "labels": {"app": "cart"}}, "spec": spec}))
        .expect("valid document")
}

fn decode<M: Message + Default>(kind: Kind, doc: &Document) -> M {
    let any = to_any(doc).expect("converts");
    assert_eq!(any.type_url, type_url(kind));
    M::decode(any.value.as_slice()).expect("decodes")
}

#[test]
fn type_urls_name_the_upstream_messages() {
    assert_eq!(
        type_url(Kind::RateLimitStrategy),
        "type.googleapis.com/io.opensergo.proto.fault_tolerance.v1.RateLimitStrategy"
    );
    assert_eq!(type_url(Kind::TrafficRouter), "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
    let mut unserved: Vec<Kind> = Kind::ALL.into_iter().filter(|k| !served(*k)).collect();
    unserved.sort_by_key(|k| k.name());
    assert_eq!(unserved, [Kind::Service, Kind::TrafficLane]);
}

#[test]
fn rate_limit_enums_are_not_zero() {
    let local = doc(
        "RateLimitStrategy",
        json!({"metricType": "RequestAmount", "limitMode": "Local", "threshold": 10, "statDurationSeconds": 2}),
    );
    let m: ft::RateLimitStrategy = decode(Kind::RateLimitStrategy, &local);
    assert_eq!(m.name, "r1");
    assert_eq!(m.metric_type, 1, "TYPE_REQUEST_AMOUNT");
    assert_eq!(m.limit_mode, 1, "MODE_LOCAL");
    assert_eq!(m.threshold, 10);
    assert_eq!(m.stat_duration, 2);
    assert_eq!(m.stat_duration_time_unit, 2, "SECOND");
    let global = doc(
        "RateLimitStrategy",
        json!({"metricType": "RequestAmount", "limitMode": "Global", "threshold": 0, "statDurationSeconds": 1}),
    );
    let m: ft::RateLimitStrategy = decode(Kind::RateLimitStrategy, &global);
    assert_eq!(m.limit_mode, 2, "MODE_GLOBAL");
    assert_eq!(m.threshold, 0);
}

#[test]
fn throttling_durations_are_milliseconds_rounded_up() {
    let d = doc("ThrottlingStrategy", json!({"minIntervalOfRequests": "20ms", "queueTimeout": "1.5s"}));
    let m: ft::ThrottlingStrategy = decode(Kind::ThrottlingStrategy, &d);
    assert_eq!((m.min_interval_millis_of_requests, m.queue_timeout_millis), (20, 1500));
    let d = doc("ThrottlingStrategy", json!({"minIntervalOfRequests": "250us", "queueTimeout": "0s"}));
    let m: ft::ThrottlingStrategy = decode(Kind::ThrottlingStrategy, &d);
    assert_eq!((m.min_interval_millis_of_requests, m.queue_timeout_millis), (1, 0), "never 0 when above 0");
}

#[test]
fn concurrency_limit() {
    let d = doc("ConcurrencyLimitStrategy", json!({"maxConcurrency": 8, "limitMode": "Global"}));
    let m: ft::ConcurrencyLimitStrategy = decode(Kind::ConcurrencyLimitStrategy, &d);
    assert_eq!((m.name.as_str(), m.max_concurrency, m.limit_mode), ("r1", 8, 2));
}

#[test]
fn circuit_breakers_of_both_strategies() {
    let slow = doc(
        "CircuitBreakerStrategy",
        json!({"strategy": "SlowRequestRatio", "triggerRatio": "60%", "statDuration": "30s",
               "recoveryTimeout": "5s", "minRequestAmount": 5, "slowConditions": {"maxAllowedRt": "500ms"}}),
    );
    let m: ft::CircuitBreakerStrategy = decode(Kind::CircuitBreakerStrategy, &slow);
    assert_eq!(m.strategy, 1, "STRATEGY_SLOW_REQUEST_RATIO");
    assert!((m.trigger_ratio - 0.6).abs() < 1e-9);
    assert_eq!((m.stat_duration, m.stat_duration_time_unit), (30_000, 1), "milliseconds");
    assert_eq!((m.recovery_timeout, m.recovery_timeout_time_unit), (5_000, 1));
    assert_eq!(m.min_request_amount, 5);
    assert_eq!(m.slow_condition.map(|s| s.max_allowed_rt_millis), Some(500));
    assert!(m.error_condition.is_none());

    let errors = doc(
        "CircuitBreakerStrategy",
        json!({"strategy": "ErrorRequestRatio", "triggerRatio": "12.5%", "statDuration": "1m",
               "recoveryTimeout": "1s", "minRequestAmount": 1}),
    );
    let m: ft::CircuitBreakerStrategy = decode(Kind::CircuitBreakerStrategy, &errors);
    assert_eq!(m.strategy, 2, "STRATEGY_ERROR_REQUEST_RATIO");
    assert!((m.trigger_ratio - 0.125).abs() < 1e-9);
    assert_eq!(m.stat_duration, 60_000);
    assert!(m.slow_condition.is_none() && m.error_condition.is_some());
}

#[test]
fn numbers_the_wire_cannot_hold_name_their_field() {
    let long = doc(
        "CircuitBreakerStrategy",
        json!({"strategy": "ErrorRequestRatio", "triggerRatio": "50%", "statDuration": "1s",
               "recoveryTimeout": "1000h", "minRequestAmount": 1}),
    );
    let err = to_any(&long).expect_err("1000h in ms overflows int32");
    assert_eq!(err.field, "spec.recoveryTimeout");
    assert!(err.reason.contains("3600000000 is too large"), "{err}");
    let many = doc(
        "RateLimitStrategy",
        json!({"metricType": "RequestAmount", "limitMode": "Local", "threshold": 1, "statDurationSeconds": 4_000_000_000u64}),
    );
    assert_eq!(to_any(&many).expect_err("int32").field, "spec.statDurationSeconds");
}

#[test]
fn fault_tolerance_rule_and_fallback_action() {
    let rule = doc(
        "FaultToleranceRule",
        json!({"targets": [{"targetResourceName": "/checkout"}],
               "strategies": [{"name": "rl", "kind": "RateLimitStrategy"}, {"name": "cb", "kind": "CircuitBreakerStrategy"}],
               "fallbackAction": {"name": "fb", "kind": "HttpRequestFallbackAction"}}),
    );
    let m: ft::FaultToleranceRule = decode(Kind::FaultToleranceRule, &rule);
    assert_eq!(m.targets[0].target_resource_name, "/checkout");
    let strategies: Vec<_> = m.strategies.iter().map(|s| (s.name.as_str(), s.kind.as_str())).collect();
    assert_eq!(strategies, [("rl", "RateLimitStrategy"), ("cb", "CircuitBreakerStrategy")]);
    let action = m.action.expect("fallback action");
    assert_eq!((action.name.as_str(), action.kind.as_str()), ("fb", "HttpRequestFallbackAction"));

    let fallback = doc(
        "HttpRequestFallbackAction",
        json!({"behaviorDesc": {"responseStatusCode": 429, "responseContentBody": "slow down",
               "responseAdditionalHeaders": [{"key": "Retry-After", "value": "1"}]}}),
    );
    let m: ft::HttpRequestFallbackAction = decode(Kind::HttpRequestFallbackAction, &fallback);
    let behavior = m.behavior_desc.expect("behavior");
    assert_eq!((behavior.response_status_code, behavior.response_content_body.as_str()), (429, "slow down"));
    assert_eq!(behavior.response_additional_headers[0].key, "Retry-After");
}

#[test]
fn traffic_router_is_a_route_configuration() {
    let router = doc(
        "TrafficRouter",
        json!({"hosts": ["reviews"], "http": [
            {"match": [{"headers": {"x-lane": {"exact": "gray"}}, "uri": {"prefix": "/api"}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}}],
             "timeout": "1.5s", "retries": {"attempts": 3, "perTryTimeout": "500ms"}},
            {"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                       {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20}]}]}),
    );
    let m: RouteConfiguration = decode(Kind::TrafficRouter, &router);
    assert_eq!(m.name, "r1");
    let host = &m.virtual_hosts[0];
    assert_eq!(host.domains, ["reviews"]);
    assert_eq!(host.routes.len(), 2);
    let first = &host.routes[0];
    let matched = first.r#match.as_ref().expect("match");
    assert_eq!(matched.path_specifier, Some(route_match::PathSpecifier::Prefix("/api".into())));
    assert_eq!(matched.headers[0].name, "x-lane");
    let Some(route::Action::Route(action)) = &first.action else { panic!("a route action") };
    assert_eq!(
        action.cluster_specifier,
        Some(route_action::ClusterSpecifier::Cluster("outbound|9080|v2|reviews".into()))
    );
    assert_eq!(action.timeout.as_ref().map(|t| (t.seconds, t.nanos)), Some((1, 500_000_000)));
    let retry = action.retry_policy.as_ref().expect("retries");
    assert_eq!(retry.num_retries.as_ref().map(|n| n.value), Some(3));
    let Some(route::Action::Route(action)) = &host.routes[1].action else { panic!("a route action") };
    let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) = &action.cluster_specifier else {
        panic!("weighted clusters")
    };
    let weights: Vec<_> =
        weighted.clusters.iter().map(|c| (c.name.as_str(), c.weight.as_ref().map(|w| w.value))).collect();
    assert_eq!(weights, [("outbound||v1|reviews", Some(80)), ("outbound||v2|reviews", Some(20))]);
    let matched = host.routes[1].r#match.as_ref().expect("match");
    assert_eq!(matched.path_specifier, Some(route_match::PathSpecifier::Prefix("/".into())), "matches everything");
}

#[test]
fn traffic_lanes_are_not_served() {
    let lane = doc(
        "TrafficLane",
        json!({"selector": {"app": "cart"}, "rules": {"traffic": {"http": [{"headers": {"x-lane": {"exact": "gray"}}}]}},
               "lane": {"name": "gray"}}),
    );
    assert_eq!(to_any(&lane).expect_err("no wire format").field, "kind");
}
