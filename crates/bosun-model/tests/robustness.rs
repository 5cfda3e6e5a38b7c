//! Bad input never panics: every field of good documents replaced by values of every JSON type.

use bosun_model::Document;
use serde_json::{Value, json};

const GOOD: &[&str] = &[
    "
kind: FaultToleranceRule
metadata: { name: r, labels: { app: a } }
spec:
  selector: { app: a }
  targets: [ { targetResourceName: /foo } ]
  strategies: [ { name: s, kind: RateLimitStrategy } ]
  fallbackAction: { name: f, kind: HttpRequestFallbackAction }
",
    "
kind: RateLimitStrategy
metadata: { name: s }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 10, statDurationSeconds: 1 }
",
    "
kind: ThrottlingStrategy
metadata: { name: t }
spec: { minIntervalOfRequests: 20ms, queueTimeout: 1s }
",
    "
kind: ConcurrencyLimitStrategy
metadata: { name: c }
spec: { maxConcurrency: 8, limitMode: Global }
",
    "
kind: CircuitBreakerStrategy
metadata: { name: b }
spec: { strategy: SlowRequestRatio, triggerRatio: 60%, statDuration: 1s, recoveryTimeout: 1s, minRequestAmount: 1, slowConditions: { maxAllowedRt: 1s } }
",
    "
kind: HttpRequestFallbackAction
metadata: { name: f }
spec: { behaviorDesc: { responseStatusCode: 429, responseContentBody: no, responseAdditionalHeaders: [ { key: a, value: b } ] } }
",
    "
kind: TrafficRouter
metadata: { name: r }
spec:
  hosts: [ a ]
  http:
    - name: n
      match: [ { headers: { h: { exact: v } }, uri: { prefix: / }, queryParams: { q: { regex: x } }, method: { exact: GET } } ]
      route:
        - { destination: { host: a, subset: v1, port: { number: 80 }, fallback: { host: b, subset: v2 } }, weight: 50 }
        - { destination: { host: b }, weight: 50 }
      timeout: 1s
      retries: { attempts: 1, perTryTimeout: 1s, retryOn: 5xx }
      fault: { delay: { fixedDelay: 1s, percentage: { value: 1 } }, abort: { httpStatus: 500, percentage: { value: 1 } } }
      rewrite: { uri: /, authority: a }
",
    "
kind: TrafficLane
metadata: { name: l }
spec: { selector: { app: a }, rules: { traffic: { http: [ { uri: { exact: / } } ] } }, lane: { name: gray } }
",
];

/// Every path to a value inside `value`, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_of_every_type_is_refused_or_accepted_without_panicking() {
    let replacements = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!("1s"),
        json!("60%"),
        json!("x y"),
        json!([]),
        json!([1]),
        json!({}),
        json!({"exact": 1}),
    ];
    let mut checked = 0;
    for yaml in GOOD {
        let good: Value = serde_yaml::from_str(yaml).expect("test YAML");
        assert!(Document::parse(good.clone()).is_ok(), "{yaml}");
        let mut paths = Vec::new();
        pointers(&good, String::new(), &mut paths);
        for path in paths {
            for replacement in &replacements {
                let mut bad = good.clone();
                if let Some(slot) = bad.pointer_mut(&path) {
                    *slot = replacement.clone();
                }
                match Document::parse(bad) {
                    Ok(doc) => {
                        // What is accepted reads back the same.
                        assert_eq!(Document::parse(doc.to_json()).as_ref(), Ok(&doc), "{path} = {replacement}");
                    }
                    Err(invalid) => assert!(!invalid.errors.is_empty()),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
