//! The fault-tolerance kinds: good documents, and bad ones with their exact error lists.

mod common;

use std::time::Duration;

use bosun_model::Kind;
use bosun_model::spec::{LimitMode, MetricType, Spec, TripStrategy};
use common::{bad, good, round_trips};

#[test]
fn fault_tolerance_rule() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule, namespace: prod, labels: { app: foo-app } }
spec:
  targets: [ { targetResourceName: /foo }, { targetResourceName: /bar } ]
  strategies:
    - { name: rate-limit-foo, kind: RateLimitStrategy }
    - { name: breaker, kind: CircuitBreakerStrategy }
  fallbackAction: { name: fallback-foo, kind: HttpRequestFallbackAction }
",
    );
    assert_eq!(doc.kind(), Kind::FaultToleranceRule);
    assert_eq!(doc.metadata.namespace, "prod");
    assert_eq!(doc.app(), Some("foo-app"));
    let Spec::FaultToleranceRule(rule) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(rule.targets[1].target_resource_name, "/bar");
    assert_eq!(rule.strategies[1].kind, Kind::CircuitBreakerStrategy);
    assert_eq!(rule.fallback_action.as_ref().map(|a| a.name.as_str()), Some("fallback-foo"));
    round_trips(&doc);

    // The application may be named by spec.selector.app instead of the label.
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule }
spec:
  selector: { app: foo-app }
  targets: [ { targetResourceName: /foo } ]
  strategies: [ { name: rls, kind: RateLimitStrategy } ]
",
    );
    assert_eq!(doc.metadata.namespace, "default");
    assert_eq!(doc.app(), Some("foo-app"));
    round_trips(&doc);
}

#[test]
fn bad_fault_tolerance_rules() {
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule, labels: { app: foo-app } }
spec:
  selector: { app: bar-app }
  targets: [ { targetResourceName: '' }, { name: /foo } ]
  strategies:
    - { name: a, kind: TrafficRouter }
    - { kind: RateLimitStrategy }
    - 3
  fallbackAction: { name: f, kind: RateLimitStrategy }
  priority: 1
"),
        [
            "spec.targets[0].targetResourceName: must not be empty",
            "spec.targets[1].targetResourceName: missing",
            "spec.targets[1].name: unknown field (expected targetResourceName)",
            "spec.strategies[0].kind: must be one of RateLimitStrategy, ThrottlingStrategy, ConcurrencyLimitStrategy, CircuitBreakerStrategy, not \"TrafficRouter\"",
            "spec.strategies[1].name: missing",
            "spec.strategies[2]: must be a mapping, not a number",
            "spec.fallbackAction.kind: must be one of HttpRequestFallbackAction, not \"RateLimitStrategy\"",
            "spec.priority: unknown field (expected selector, targets, strategies, fallbackAction)",
            "spec.selector.app: \"bar-app\" differs from metadata.labels.app \"foo-app\"",
        ]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule }
spec: { targets: [], strategies: [] }
"),
        ["spec.targets: must name at least one target", "spec.strategies: must name at least one strategy"]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule }
spec: { targets: /foo }
"),
        ["spec.targets: must be a list, not a string", "spec.strategies: missing"]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: my-rule }
spec:
  targets: [ { targetResourceName: /foo } ]
  strategies:
    - { name: a, kind: RateLimitStrategy }
    - { name: a, kind: ThrottlingStrategy }
    - { name: a, kind: RateLimitStrategy }
    - { name: b, kind: ratelimitstrategies }
"),
        [
            "spec.strategies[3].kind: must be one of RateLimitStrategy, ThrottlingStrategy, ConcurrencyLimitStrategy, CircuitBreakerStrategy, not \"ratelimitstrategies\"",
            "spec.strategies[2]: names RateLimitStrategy/a again",
        ]
    );
}

#[test]
fn rate_limit_strategy() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: { name: rate-limit-foo, labels: { app: foo-app } }
spec: { metricType: RequestAmount, limitMode: Global, threshold: 10, statDurationSeconds: 1 }
",
    );
    let Spec::RateLimitStrategy(s) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(
        (s.metric_type, s.limit_mode, s.threshold, s.stat_duration_seconds),
        (MetricType::RequestAmount, LimitMode::Global, 10, 1)
    );
    round_trips(&doc);
    // A threshold of 0 refuses every request, and is allowed.
    good(
        "
kind: RateLimitStrategy
metadata: { name: closed }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 0, statDurationSeconds: 60 }
",
    );
}

#[test]
fn bad_rate_limit_strategies() {
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: { name: rate-limit-foo }
spec: { metricType: Bytes, limitMode: local, threshold: -1, statDurationSeconds: 0 }
"),
        [
            "spec.metricType: must be one of RequestAmount, not \"Bytes\"",
            "spec.limitMode: must be one of Local, Global, not \"local\"",
            "spec.threshold: must be >= 0",
            "spec.statDurationSeconds: must be between 1 and 4294967295",
        ]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: { name: rate-limit-foo }
spec: { threshold: 1.5, statDurationSeconds: '1', statDuration: 1s }
"),
        [
            "spec.metricType: missing",
            "spec.limitMode: missing",
            "spec.threshold: must be a whole number",
            "spec.statDurationSeconds: must be a number, not a string",
            "spec.statDuration: unknown field (expected metricType, limitMode, threshold, statDurationSeconds)",
        ]
    );
}

#[test]
fn numbers_too_large_say_so() {
    assert_eq!(
        bad("
kind: RateLimitStrategy
metadata: { name: big }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 10000000000000000000, statDurationSeconds: 4294967296 }
"),
        [
            "spec.threshold: must be at most 9223372036854775807",
            "spec.statDurationSeconds: must be between 1 and 4294967295"
        ]
    );
}

#[test]
fn throttling_strategy() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ThrottlingStrategy
metadata: { name: throttling-foo }
spec: { minIntervalOfRequests: 20ms, queueTimeout: 1s }
",
    );
    let Spec::ThrottlingStrategy(s) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!((s.min_interval_of_requests, s.queue_timeout), (Duration::from_millis(20), Duration::from_secs(1)));
    assert_eq!(doc.to_json()["spec"], serde_json::json!({"minIntervalOfRequests": "20ms", "queueTimeout": "1s"}));
    round_trips(&doc);
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ThrottlingStrategy
metadata: { name: throttling-foo }
spec: { minIntervalOfRequests: 0s, queueTimeout: 20 }
"),
        ["spec.minIntervalOfRequests: must be longer than 0", "spec.queueTimeout: must be a string, not a number",]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ThrottlingStrategy
metadata: { name: throttling-foo }
spec: { minIntervalOfRequests: '20', queueTimeout: 1d }
"),
        [
            "spec.minIntervalOfRequests: \"20\" has no unit: write a duration like \"20ms\", \"1s\" or \"1m\"",
            "spec.queueTimeout: \"1d\": unknown unit \"d\" (expected ns, us, ms, s, m or h)",
        ]
    );
}

#[test]
fn concurrency_limit_strategy() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ConcurrencyLimitStrategy
metadata: { name: concurrency-foo }
spec: { maxConcurrency: 8, limitMode: Local }
",
    );
    let Spec::ConcurrencyLimitStrategy(s) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!((s.max_concurrency, s.limit_mode), (8, LimitMode::Local));
    round_trips(&doc);
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ConcurrencyLimitStrategy
metadata: { name: concurrency-foo }
spec: { maxConcurrency: 0 }
"),
        ["spec.maxConcurrency: must be >= 1", "spec.limitMode: missing"]
    );
}

#[test]
fn circuit_breaker_strategy() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec:
  strategy: SlowRequestRatio
  triggerRatio: '60%'
  statDuration: 30s
  recoveryTimeout: 5s
  minRequestAmount: 5
  slowConditions: { maxAllowedRt: 500ms }
",
    );
    let Spec::CircuitBreakerStrategy(s) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(s.strategy, TripStrategy::SlowRequestRatio);
    assert_eq!(s.trigger_ratio.ratio(), 0.6);
    assert_eq!(s.slow_conditions.as_ref().map(|c| c.max_allowed_rt), Some(Duration::from_millis(500)));
    assert_eq!(doc.to_json()["spec"]["triggerRatio"], "60%");
    round_trips(&doc);
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec: { strategy: ErrorRequestRatio, triggerRatio: 12.5%, statDuration: 1m, recoveryTimeout: 10s, minRequestAmount: 1 }
",
    );
    round_trips(&doc);
}

#[test]
fn bad_circuit_breaker_strategies() {
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec:
  strategy: SlowRequestRatio
  triggerRatio: 0.6
  statDuration: 30
  recoveryTimeout: 0ms
  minRequestAmount: 0
"),
        [
            "spec.triggerRatio: must be a string, not a number",
            "spec.statDuration: must be a string, not a number",
            "spec.recoveryTimeout: must be longer than 0",
            "spec.minRequestAmount: must be >= 1",
            "spec.slowConditions: missing (strategy is SlowRequestRatio)",
        ]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec:
  strategy: ErrorRatio
  triggerRatio: '60'
  statDuration: 30s
  recoveryTimeout: 5s
  minRequestAmount: 5
  slowConditions: { maxAllowedRt: fast }
"),
        [
            "spec.strategy: must be one of SlowRequestRatio, ErrorRequestRatio, not \"ErrorRatio\"",
            "spec.triggerRatio: must be a percentage like \"60%\"",
            "spec.slowConditions.maxAllowedRt: \"fast\" is not a duration like \"20ms\", \"1s\" or \"1m\"",
        ]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec:
  strategy: ErrorRequestRatio
  triggerRatio: 150%
  statDuration: 30s
  recoveryTimeout: 5s
  minRequestAmount: 5
  slowConditions: { maxAllowedRt: 1s }
"),
        [
            "spec.triggerRatio: \"150%\" must be between 0% and 100%",
            "spec.slowConditions: only for strategy SlowRequestRatio",
        ]
    );
}

#[test]
fn http_request_fallback_action() {
    let doc = good(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: HttpRequestFallbackAction
metadata: { name: fallback-foo }
spec:
  behaviorDesc:
    responseStatusCode: 429
    responseContentBody: Blocked by Sentinel
    responseAdditionalHeaders: [ { key: X-Sentinel-Limit, value: 'foo' } ]
",
    );
    let Spec::HttpRequestFallbackAction(a) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(a.behavior_desc.response_status_code, 429);
    assert_eq!(a.behavior_desc.response_additional_headers[0].key, "X-Sentinel-Limit");
    round_trips(&doc);
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: HttpRequestFallbackAction
metadata: { name: fallback-foo }
spec:
  behaviorDesc:
    responseStatusCode: 700
    responseContentBody: [ no ]
    responseAdditionalHeaders: [ { key: 'bad header', value: x }, { value: y } ]
"),
        [
            "spec.behaviorDesc.responseStatusCode: must be between 100 and 599",
            "spec.behaviorDesc.responseContentBody: must be a string, not a list",
            "spec.behaviorDesc.responseAdditionalHeaders[0].key: \"bad header\" is not an HTTP header name",
            "spec.behaviorDesc.responseAdditionalHeaders[1].key: missing",
        ]
    );
    assert_eq!(
        bad("
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: HttpRequestFallbackAction
metadata: { name: fallback-foo }
spec: { responseStatusCode: 429 }
"),
        ["spec.behaviorDesc: missing", "spec.responseStatusCode: unknown field (expected behaviorDesc)",]
    );
}
