//! References between documents: kinds checked by parse, existence reported as warnings.

mod common;

use bosun_model::references::{check, unresolved};
use bosun_model::{Document, Kind, ObjectRef};
use common::good;

fn rule(namespace: &str) -> Document {
    good(&format!(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: {{ name: my-rule, namespace: {namespace}, labels: {{ app: foo }} }}
spec:
  targets: [ {{ targetResourceName: /foo }} ]
  strategies:
    - {{ name: rate-limit-foo, kind: RateLimitStrategy }}
    - {{ name: breaker-foo, kind: CircuitBreakerStrategy }}
  fallbackAction: {{ name: fallback-foo, kind: HttpRequestFallbackAction }}
"
    ))
}

fn rate_limit(namespace: &str) -> Document {
    good(&format!(
        "
kind: RateLimitStrategy
metadata: {{ name: rate-limit-foo, namespace: {namespace} }}
spec: {{ metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }}
"
    ))
}

fn breaker() -> Document {
    good(
        "
kind: CircuitBreakerStrategy
metadata: { name: breaker-foo }
spec: { strategy: ErrorRequestRatio, triggerRatio: 50%, statDuration: 10s, recoveryTimeout: 5s, minRequestAmount: 10 }
",
    )
}

fn fallback() -> Document {
    good(
        "
kind: HttpRequestFallbackAction
metadata: { name: fallback-foo }
spec: { behaviorDesc: { responseStatusCode: 429, responseContentBody: slow down } }
",
    )
}

fn strings(errors: Vec<bosun_model::FieldError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn a_rule_lists_its_references() {
    let rule = rule("default");
    let to = |kind, name: &str| ObjectRef { kind, namespace: "default".into(), name: name.into() };
    assert_eq!(
        rule.references(),
        [
            ("spec.strategies[0]".to_owned(), to(Kind::RateLimitStrategy, "rate-limit-foo")),
            ("spec.strategies[1]".to_owned(), to(Kind::CircuitBreakerStrategy, "breaker-foo")),
            ("spec.fallbackAction".to_owned(), to(Kind::HttpRequestFallbackAction, "fallback-foo")),
        ]
    );
    assert!(rate_limit("default").references().is_empty());
}

#[test]
fn missing_targets_are_warnings_in_the_same_namespace_only() {
    let rule = rule("default");
    // Nothing stored yet: the rule is accepted, with one warning per missing document.
    assert_eq!(
        strings(check(&rule, [])),
        [
            "spec.strategies[0]: RateLimitStrategy/rate-limit-foo does not exist in namespace \"default\" (yet); the rule waits for it",
            "spec.strategies[1]: CircuitBreakerStrategy/breaker-foo does not exist in namespace \"default\" (yet); the rule waits for it",
            "spec.fallbackAction: HttpRequestFallbackAction/fallback-foo does not exist in namespace \"default\" (yet); the rule waits for it",
        ]
    );
    // A strategy of the same name in another namespace does not count.
    let stored = [rate_limit("prod"), breaker(), fallback()];
    assert_eq!(
        strings(check(&rule, &stored)),
        [
            "spec.strategies[0]: RateLimitStrategy/rate-limit-foo does not exist in namespace \"default\" (yet); the rule waits for it"
        ]
    );
    let stored = [rate_limit("default"), breaker(), fallback()];
    assert!(check(&rule, &stored).is_empty());
    // Strategies have no references of their own.
    assert!(check(&rate_limit("default"), []).is_empty());
}

#[test]
fn unresolved_references_of_stored_documents() {
    let stored = vec![rule("default"), breaker(), rate_limit("prod"), rule("prod")];
    let waiting = unresolved(&stored);
    let summary: Vec<_> =
        waiting.iter().map(|u| format!("{}/{} {}: {}", u.from.namespace, u.from, u.field, u.status())).collect();
    assert_eq!(
        summary,
        [
            "default/FaultToleranceRule/my-rule spec.strategies[0]: waiting for RateLimitStrategy/rate-limit-foo",
            "default/FaultToleranceRule/my-rule spec.fallbackAction: waiting for HttpRequestFallbackAction/fallback-foo",
            "prod/FaultToleranceRule/my-rule spec.strategies[1]: waiting for CircuitBreakerStrategy/breaker-foo",
            "prod/FaultToleranceRule/my-rule spec.fallbackAction: waiting for HttpRequestFallbackAction/fallback-foo",
        ]
    );
    assert_eq!(waiting[0].warning().field, "spec.strategies[0]");
    // Once everything exists, nothing waits; the order documents come in does not matter.
    let stored = vec![fallback(), rule("default"), breaker(), rate_limit("default")];
    assert!(unresolved(&stored).is_empty());
}
