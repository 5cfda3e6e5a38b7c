//! The document around the spec: apiVersion, kind, metadata; unknown fields; JSON in and out.

mod common;

use bosun_model::{Document, Kind, Spec};
use common::{bad, good, parse, round_trips};

const RLS_SPEC: &str = "spec: { metricType: RequestAmount, limitMode: Local, threshold: 10, statDurationSeconds: 1 }";

#[test]
fn metadata_defaults_and_labels() {
    let doc = good(&format!(
        "apiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: RateLimitStrategy\nmetadata: {{ name: rls, labels: {{ app: foo, tier: web }} }}\n{RLS_SPEC}"
    ));
    assert_eq!(doc.metadata.name, "rls");
    assert_eq!(doc.metadata.namespace, "default");
    assert_eq!(doc.metadata.app(), Some("foo"));
    assert_eq!(doc.metadata.labels.len(), 2);
    assert_eq!(doc.key().map(|k| k.to_string()), Ok("RateLimitStrategy/default/rls".to_owned()));
    let json = doc.to_json();
    assert_eq!(json["apiVersion"], "fault-tolerance.opensergo.io/v1alpha1");
    assert_eq!(json["kind"], "RateLimitStrategy");
    assert_eq!(
        json["metadata"],
        serde_json::json!({"name": "rls", "namespace": "default", "labels": {"app": "foo", "tier": "web"}})
    );
    assert_eq!(
        json["spec"],
        serde_json::json!({"metricType": "RequestAmount", "limitMode": "Local", "threshold": 10, "statDurationSeconds": 1})
    );
    round_trips(&doc);
}

#[test]
fn kind_aliases_no_api_version_and_get_output_are_accepted() {
    let doc = good(&format!(
        "kind: rls\nmetadata: {{ name: a, namespace: prod, resourceVersion: '7', generation: 2 }}\n\
         status: {{ state: Enforced, how: [ local rate limit ] }}\n{RLS_SPEC}"
    ));
    assert!(doc.to_json().get("status").is_none(), "the status shown is not part of the document");
    assert_eq!(doc.kind(), Kind::RateLimitStrategy);
    assert_eq!(doc.metadata.resource_version, Some(7));
    assert_eq!(doc.to_json()["metadata"]["resourceVersion"], "7");
    round_trips(&doc);
}

#[test]
fn document_errors_come_together() {
    assert_eq!(
        bad(&format!(
            "apiVersion: traffic.opensergo.io/v1alpha1\nkind: RateLimitStrategy\nstate: {{}}\nmetadata: {{ namespace: 'a b', labels: {{ app: 'x y', n: 1 }}, uid: u, resourceVersion: '-1' }}\n{RLS_SPEC}"
        )),
        [
            "apiVersion: must be \"fault-tolerance.opensergo.io/v1alpha1\" for RateLimitStrategy",
            "metadata.name: missing",
            "metadata.labels.app: label value \"x y\": must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            "metadata.labels.n: must be a string",
            "metadata.resourceVersion: must be a positive integer, as `bosun get` shows it",
            "metadata.uid: unknown field (expected name, namespace, labels, resourceVersion, generation)",
            "state: unknown field (expected apiVersion, kind, metadata, spec, status)",
        ]
    );
    assert_eq!(
        bad("kind: Widget\nmetadata: { name: ' a', namespace: 'a b' }\nspec: { x: 1 }"),
        [
            "kind: unknown kind \"Widget\" (expected one of FaultToleranceRule, RateLimitStrategy, ThrottlingStrategy, ConcurrencyLimitStrategy, CircuitBreakerStrategy, HttpRequestFallbackAction, TrafficRouter, TrafficLane, Service)",
            "metadata.namespace: \"a b\" must contain only letters, digits, '.', '-' and '_'",
        ]
    );
    assert_eq!(
        bad("metadata: []\nspec: 3"),
        ["kind: missing", "metadata: must be a mapping, not a list", "spec: must be a mapping, not a number"]
    );
    assert_eq!(bad("kind: rls\nmetadata: { name: a }\nspec: 3"), ["spec: must be a mapping, not a number"]);
    assert_eq!(bad("kind: rls\nmetadata: { name: a }"), ["spec: missing"]);
    assert_eq!(
        bad("kind: rls\nspec: {}"),
        [
            "metadata: missing",
            "spec.metricType: missing",
            "spec.limitMode: missing",
            "spec.threshold: missing",
            "spec.statDurationSeconds: missing",
        ]
    );
    assert_eq!(bad("[1, 2]"), ["document: must be a mapping"]);
    assert_eq!(
        bad("kind: 3\nmetadata: { name: 4 }\nspec: {}"),
        ["kind: must be a string, not a number", "metadata.name: must be a string, not a number"]
    );
}

#[test]
fn invalid_is_an_error_and_deserialize_reports_every_problem() {
    let value: serde_json::Value = serde_yaml::from_str("kind: rls\nspec: {}").expect("yaml");
    let err = Document::parse(value.clone()).expect_err("invalid");
    assert_eq!(err.errors.len(), 5);
    assert!(err.to_string().starts_with("invalid document: metadata: missing; spec.metricType: missing"), "{err}");
    let err = serde_json::from_value::<Document>(value).expect_err("invalid");
    assert!(err.to_string().contains("spec.statDurationSeconds: missing"), "{err}");
    let doc: Document = serde_json::from_str(
        r#"{"kind":"ThrottlingStrategy","metadata":{"name":"t"},"spec":{"minIntervalOfRequests":"1m30s","queueTimeout":"1.5s"}}"#,
    )
    .expect("valid");
    assert_eq!(doc.to_json()["spec"], serde_json::json!({"minIntervalOfRequests": "90s", "queueTimeout": "1500ms"}));
}

#[test]
fn null_fields_count_as_absent() {
    let doc = parse(&format!("kind: rls\nmetadata: {{ name: a, namespace: null, labels: null }}\n{RLS_SPEC}"));
    assert_eq!(doc.map(|d| d.metadata.namespace), Ok("default".to_owned()));
}

#[test]
fn a_stored_spec_reads_back_alone() {
    let doc = good(&format!("kind: rls\nmetadata: {{ name: a }}\n{RLS_SPEC}"));
    let stored = serde_json::to_value(&doc.spec).expect("json");
    assert_eq!(Spec::parse(Kind::RateLimitStrategy, stored), Ok(doc.spec));
    let err =
        Spec::parse(Kind::ThrottlingStrategy, serde_json::json!({"queueTimeout": "1s", "x": 1})).expect_err("bad");
    let errors: Vec<_> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["spec.minIntervalOfRequests: missing", "spec.x: unknown field (expected minIntervalOfRequests, queueTimeout)"]
    );
}
