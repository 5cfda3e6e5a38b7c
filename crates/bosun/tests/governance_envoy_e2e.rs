//! Governance rules enforced by a real Envoy: a Service and TrafficRouter route requests (a
//! header match, an 80/20 split), a local rate limit of 5 per second answers 429 to the sixth of
//! requests sent at once, a fallback action replaces that answer, and deleting a rule puts things back. Each
//! document's status shows in `/status` and in `bosun get -o yaml`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::start_envoy;
use common::{Backend, Bosun, Proc, eventually, free_port, http_request};
use serde_json::Value;

const NAMESPACE: &str = "edge"; // the node cluster of the test's Envoy

fn service(port: u16, v1: u16, v2: u16) -> String {
    format!(
        "
apiVersion: bosun.io/v1alpha1
kind: Service
metadata: {{ name: cart, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  ports: [ {{ name: http, port: {port} }} ]
  endpoints:
    - {{ address: 127.0.0.1, port: {v1}, labels: {{ version: v1 }} }}
    - {{ address: 127.0.0.1, port: {v2}, labels: {{ version: v2 }} }}
  subsets: [ {{ name: v1, labels: {{ version: v1 }} }}, {{ name: v2, labels: {{ version: v2 }} }} ]
"
    )
}

fn router() -> String {
    format!(
        "
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: {{ name: cart, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  hosts: [ cart ]
  http:
    - name: canary
      match: [ {{ headers: {{ x-canary: {{ exact: 'yes' }} }} }} ]
      route: [ {{ destination: {{ host: cart, subset: v2 }} }} ]
    - name: split
      route:
        - {{ destination: {{ host: cart, subset: v1 }}, weight: 80 }}
        - {{ destination: {{ host: cart, subset: v2 }}, weight: 20 }}
"
    )
}

fn rate_limit(fallback: bool) -> String {
    let fallback_ref =
        if fallback { "  fallbackAction: { name: slow-down, kind: HttpRequestFallbackAction }\n" } else { "" };
    format!(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: {{ name: five-per-second, namespace: {NAMESPACE} }}
spec: {{ metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }}
---
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: HttpRequestFallbackAction
metadata: {{ name: slow-down, namespace: {NAMESPACE} }}
spec:
  behaviorDesc:
    responseStatusCode: 418
    responseContentBody: slow down
    responseAdditionalHeaders: [ {{ key: x-fallback, value: slow-down }} ]
---
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: {{ name: split-limit, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  targets: [ {{ targetResourceName: split }} ]
  strategies: [ {{ name: five-per-second, kind: RateLimitStrategy }} ]
{fallback_ref}"
    )
}

/// `GET /` through Envoy as `Host: cart`, with extra headers: (status, body).
fn call(ingress: SocketAddr, headers: &[&str]) -> (u16, String) {
    let mut all = vec!["Host: cart"];
    all.extend_from_slice(headers);
    http_request(ingress, "GET", "/", &all, "").unwrap_or((0, String::new()))
}

/// The versions the test's Envoy has accepted, once it has accepted every version sent.
fn settled(bosun: &Bosun) -> Option<Value> {
    let status = bosun.status();
    let node = status["nodes"].as_array()?.iter().find(|n| n["node_id"] == "envoy-e2e")?.clone();
    let types = node["types"].as_object()?;
    let settled = types.len() == 4
        && types.values().all(|t| t["acked_version"].is_string() && t["acked_version"] == t["sent_version"]);
    settled.then(|| bosun.acked_versions("envoy-e2e")).flatten()
}

/// Applies `yaml` and waits (at most 10 s) until Envoy has accepted a new configuration.
fn apply_and_wait(bosun: &Bosun, envoy: &Proc, yaml: &str) {
    let before = settled(bosun);
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(yaml));
    assert!(ok, "apply: {err}");
    wait_for_new_config(bosun, envoy, before);
}

fn wait_for_new_config(bosun: &Bosun, envoy: &Proc, before: Option<Value>) {
    let applied = eventually(Duration::from_secs(10), || settled(bosun).filter(|now| Some(now) != before.as_ref()));
    assert!(
        applied.is_some(),
        "Envoy did not accept a new configuration: {}\n--- envoy ---\n{}",
        bosun.status(),
        envoy.output()
    );
}

/// Ten requests at once (ten connections) on a full token bucket: the answers, sorted. Envoy
/// refills its bucket continuously (5 per second: one token every 200 ms), so the burst is
/// retried, up to three times, when the requests took long enough for a token to come back.
fn burst(ingress: SocketAddr, expect_limited: bool) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for _ in 0..3 {
        // A full bucket: no request in the last second.
        std::thread::sleep(Duration::from_millis(1100));
        let start = std::sync::Barrier::new(10);
        answers = std::thread::scope(|scope| {
            let calls: Vec<_> = (0..10)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        call(ingress, &[])
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().expect("request thread")).collect::<Vec<_>>()
        });
        answers.sort();
        if !expect_limited || answers.iter().filter(|(s, _)| *s == 200).count() == 5 {
            break;
        }
    }
    answers
}

#[test]
fn envoy_enforces_routes_rate_limits_and_fallbacks() {
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = Backend::start("v1");
    let v2 = Backend::start("v2");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    let bosun = Bosun::start(work.path(), &[]);
    let envoy = start_envoy(work.path(), bosun.xds_port);

    // A Service alone: a listener on its port, both instances behind it.
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&service(port, v1.port, v2.port)));
    assert!(ok, "{err}");
    let first = eventually(Duration::from_secs(30), || Some(call(ingress, &[])).filter(|(s, _)| *s == 200));
    assert!(first.is_some(), "no answer through Envoy: {}\n--- envoy ---\n{}", bosun.status(), envoy.output());

    // A header match to v2; the rest split 80/20.
    apply_and_wait(&bosun, &envoy, &router());
    for _ in 0..20 {
        assert_eq!(call(ingress, &["x-canary: yes"]), (200, "v2".to_owned()));
    }
    let mut to_v1 = 0;
    for _ in 0..1000 {
        match call(ingress, &[]) {
            (200, body) if body == "v1" => to_v1 += 1,
            (200, body) if body == "v2" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!((750..=850).contains(&to_v1), "{to_v1} of 1000 requests went to v1, not 80±5 %");

    // Five requests per second on the split route: of ten at once, five get 429.
    apply_and_wait(&bosun, &envoy, &rate_limit(false));
    let statuses: Vec<u16> = burst(ingress, true).into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
    // The canary route is not limited.
    for _ in 0..10 {
        assert_eq!(call(ingress, &["x-canary: yes"]).0, 200);
    }

    // With a fallback action, the refused requests get its status and body.
    apply_and_wait(&bosun, &envoy, &rate_limit(true));
    let answers = burst(ingress, true);
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 5, "{answers:?}");
    assert!(answers[5..].iter().all(|(s, b)| *s == 418 && b == "slow down"), "{answers:?}");

    // Statuses: in /status and with the document.
    let status = bosun.status();
    let governance = &status["resources"]["governance"];
    assert_eq!(governance[format!("FaultToleranceRule/{NAMESPACE}/split-limit")]["state"], "Enforced", "{governance}");
    assert_eq!(governance[format!("TrafficRouter/{NAMESPACE}/cart")]["state"], "Enforced", "{governance}");
    assert_eq!(governance[format!("Service/{NAMESPACE}/cart")]["state"], "Enforced", "{governance}");
    let (ok, yaml, _) = bosun.cli(&["get", "ftr", "split-limit", "-n", NAMESPACE, "-o", "yaml"], None);
    assert!(ok && yaml.contains("status:") && yaml.contains("state: Enforced"), "{yaml}");
    // `get` output, status included, applies back unchanged.
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(&yaml));
    assert!(ok, "{err}");
    assert_eq!(out, format!("FaultToleranceRule/{NAMESPACE}/split-limit unchanged\n"));

    // Deleting the rule lifts the limit.
    let before = settled(&bosun);
    let (ok, _, err) = bosun.cli(&["delete", "ftr", "split-limit", "-n", NAMESPACE], None);
    assert!(ok, "{err}");
    wait_for_new_config(&bosun, &envoy, before);
    let statuses: Vec<u16> = burst(ingress, false).into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, [200; 10]);
    let status = bosun.status();
    assert_eq!(
        status["resources"]["governance"][format!("RateLimitStrategy/{NAMESPACE}/five-per-second")]["state"],
        "SdkOnly"
    );

    // Deleting the router: the header no longer picks v2.
    let before = settled(&bosun);
    let (ok, _, err) = bosun.cli(&["delete", "tr", "cart", "-n", NAMESPACE], None);
    assert!(ok, "{err}");
    wait_for_new_config(&bosun, &envoy, before);
    let bodies: Vec<String> = (0..20).map(|_| call(ingress, &["x-canary: yes"]).1).collect();
    assert!(bodies.iter().any(|b| b == "v1"), "{bodies:?}");
}

#[test]
fn envoy_injects_faults_and_fails_over_to_a_fallback_destination() {
    let work = tempfile::tempdir().expect("tempdir");
    let v1 = Backend::start("v1");
    let v2 = Backend::start("v2");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    let bosun = Bosun::start(work.path(), &[]);
    let envoy = start_envoy(work.path(), bosun.xds_port);
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&service(port, v1.port, v2.port)));
    assert!(ok, "{err}");
    let first = eventually(Duration::from_secs(30), || Some(call(ingress, &[])).filter(|(s, _)| *s == 200));
    assert!(first.is_some(), "no answer through Envoy: {}\n--- envoy ---\n{}", bosun.status(), envoy.output());

    // `empty` selects no instance, so its requests fail over to v2; `/broken` is aborted.
    let router = format!(
        "
apiVersion: bosun.io/v1alpha1
kind: Service
metadata: {{ name: cart, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  ports: [ {{ name: http, port: {port} }} ]
  endpoints:
    - {{ address: 127.0.0.1, port: {v1}, labels: {{ version: v1 }} }}
    - {{ address: 127.0.0.1, port: {v2}, labels: {{ version: v2 }} }}
  subsets:
    - {{ name: v2, labels: {{ version: v2 }} }}
    - {{ name: empty, labels: {{ version: none }} }}
---
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: {{ name: cart, namespace: {NAMESPACE} }}
spec:
  hosts: [ cart ]
  http:
    - match: [ {{ uri: {{ exact: /broken }} }} ]
      fault: {{ abort: {{ httpStatus: 503 }} }}
      route: [ {{ destination: {{ host: cart }} }} ]
    - route: [ {{ destination: {{ host: cart, subset: empty, fallback: {{ host: cart, subset: v2 }} }} }} ]
",
        v1 = v1.port,
        v2 = v2.port
    );
    apply_and_wait(&bosun, &envoy, &router);
    for _ in 0..10 {
        assert_eq!(call(ingress, &[]), (200, "v2".to_owned()));
    }
    let broken = http_request(ingress, "GET", "/broken", &["Host: cart"], "").expect("request");
    assert_eq!(broken.0, 503, "{broken:?}");
    let status = bosun.status();
    assert_eq!(status["resources"]["governance"][format!("TrafficRouter/{NAMESPACE}/cart")]["state"], "Enforced");
}

/// `n` requests at once (one connection each): the answers, sorted.
fn at_once(ingress: SocketAddr, n: usize) -> Vec<(u16, String)> {
    let start = std::sync::Barrier::new(n);
    let mut answers = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    call(ingress, &[])
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("request thread")).collect::<Vec<_>>()
    });
    answers.sort();
    answers
}

#[test]
fn envoy_limits_concurrency_with_a_fallback_response() {
    let work = tempfile::tempdir().expect("tempdir");
    let slow = Backend::slow("slow", Duration::from_millis(300));
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    let bosun = Bosun::start(work.path(), &[]);
    let envoy = start_envoy(work.path(), bosun.xds_port);
    let service = format!(
        "
apiVersion: bosun.io/v1alpha1
kind: Service
metadata: {{ name: cart, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  ports: [ {{ name: http, port: {port} }} ]
  endpoints: [ {{ address: 127.0.0.1, port: {} }} ]
",
        slow.port
    );
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&service));
    assert!(ok, "{err}");
    let first = eventually(Duration::from_secs(30), || Some(call(ingress, &[])).filter(|(s, _)| *s == 200));
    assert!(first.is_some(), "no answer through Envoy: {}\n--- envoy ---\n{}", bosun.status(), envoy.output());
    // Without a limit, requests at once all get through (the backend takes them in turn).
    assert_eq!(at_once(ingress, 3), vec![(200, "slow".to_owned()); 3]);

    let rule = format!(
        "
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: ConcurrencyLimitStrategy
metadata: {{ name: one-at-a-time, namespace: {NAMESPACE} }}
spec: {{ maxConcurrency: 1, limitMode: Local }}
---
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: HttpRequestFallbackAction
metadata: {{ name: busy, namespace: {NAMESPACE} }}
spec: {{ behaviorDesc: {{ responseStatusCode: 503, responseContentBody: busy }} }}
---
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: {{ name: cart-concurrency, namespace: {NAMESPACE}, labels: {{ app: cart }} }}
spec:
  targets: [ {{ targetResourceName: cart }} ]
  strategies: [ {{ name: one-at-a-time, kind: ConcurrencyLimitStrategy }} ]
  fallbackAction: {{ name: busy, kind: HttpRequestFallbackAction }}
"
    );
    apply_and_wait(&bosun, &envoy, &rule);
    let answers = at_once(ingress, 4);
    let served = answers.iter().filter(|a| **a == (200, "slow".to_owned())).count();
    let refused = answers.iter().filter(|a| **a == (503, "busy".to_owned())).count();
    assert!(served >= 1 && refused >= 1 && served + refused == 4, "{answers:?}");
    let status = bosun.status();
    let rule_status = &status["resources"]["governance"][format!("FaultToleranceRule/{NAMESPACE}/cart-concurrency")];
    assert_eq!(rule_status["state"], "Enforced", "{rule_status}");
}
