//! Governance documents (OpenSergo's kinds) through `bosun serve`: written with the CLI and the
//! REST API next to Envoy resources, kept in the store, read back.

mod common;

use common::{Bosun, http_get, http_request};
use serde_json::Value;

const RULE: &str = "\
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: FaultToleranceRule
metadata: { name: cart-limits, namespace: shop, labels: { app: cart } }
spec:
  targets: [ { targetResourceName: /checkout } ]
  strategies: [ { name: five-per-second, kind: RateLimitStrategy } ]
";

const STRATEGY: &str = "\
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: { name: five-per-second, namespace: shop, labels: { app: cart } }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }
";

#[test]
fn cli_applies_gets_and_deletes_governance_documents() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &[]);

    // A rule before its strategy: accepted, with a warning naming the missing strategy.
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(RULE));
    assert!(ok, "{err}");
    assert_eq!(out, "FaultToleranceRule/shop/cart-limits created\n");
    assert!(
        err.contains("warning: FaultToleranceRule/shop/cart-limits: spec.strategies[0]: RateLimitStrategy/five-per-second does not exist"),
        "{err}"
    );
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(&format!("{STRATEGY}---\n{RULE}")));
    assert!(ok, "{err}");
    assert_eq!(out, "RateLimitStrategy/shop/five-per-second created\nFaultToleranceRule/shop/cart-limits unchanged\n");
    assert!(!err.contains("warning"), "the strategy now exists: {err}");

    let (ok, table, _) = bosun.cli(&["get", "rls", "-n", "shop"], None);
    assert!(ok);
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("five-per-second") && l.contains("app=cart")), "{table}");
    // The table's STATUS column: the rule targets no Envoy route, so the strategy is for SDKs.
    let status = common::eventually(std::time::Duration::from_secs(10), || {
        let (_, table, _) = bosun.cli(&["get", "rls", "-n", "shop"], None);
        table.lines().nth(1).filter(|l| l.split_whitespace().nth(4) == Some("SdkOnly")).map(str::to_owned)
    });
    assert!(status.is_some(), "no SdkOnly status in the table");
    let (ok, yaml, _) = bosun.cli(&["get", "ratelimitstrategies", "five-per-second", "-n", "shop", "-o", "yaml"], None);
    assert!(ok);
    assert!(
        yaml.contains("apiVersion: fault-tolerance.opensergo.io/v1alpha1") && yaml.contains("threshold: 5"),
        "{yaml}"
    );
    // `get -o yaml` output applies back unchanged.
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(&yaml));
    assert!(ok, "{err}");
    assert_eq!(out, "RateLimitStrategy/shop/five-per-second unchanged\n");

    // Bad documents are refused whole, every field named, nothing written.
    let bad = STRATEGY.replace("threshold: 5", "threshold: -1").replace("limitMode: Local", "limitMode: Cluster");
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&format!("{bad}---\n{RULE}")));
    assert!(!ok);
    assert!(err.contains("spec.limitMode") && err.contains("spec.threshold: must be >= 0"), "{err}");
    let (_, yaml_after, _) =
        bosun.cli(&["get", "ratelimitstrategies", "five-per-second", "-n", "shop", "-o", "yaml"], None);
    // The status is derived (translation runs after each change), so it may appear in between.
    let stored = |yaml: &str| yaml.split("\nstatus:").next().unwrap_or_default().to_owned();
    assert_eq!(stored(&yaml_after), stored(&yaml), "nothing was written");

    let (ok, out, _) = bosun.cli(&["delete", "rls", "five-per-second", "-n", "shop"], None);
    assert!(ok);
    assert_eq!(out, "RateLimitStrategy/shop/five-per-second deleted\n");
}

#[test]
fn the_rest_api_lists_governance_kinds_and_checks_their_documents() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &[]);
    let admin = bosun.admin;

    let (status, body) = http_get(admin, "/api/v1/kinds").expect("GET");
    assert_eq!(status, 200);
    let kinds: Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> =
        kinds["kinds"].as_array().expect("kinds").iter().filter_map(|k| k["kind"].as_str()).collect();
    for kind in ["Cluster", "FaultToleranceRule", "RateLimitStrategy", "TrafficRouter", "HttpRequestFallbackAction"] {
        assert!(names.contains(&kind), "{kind} missing from {names:?}");
    }

    let doc = serde_json::json!({
        "apiVersion": "traffic.opensergo.io/v1alpha1",
        "kind": "TrafficRouter",
        "metadata": {"name": "cart", "namespace": "shop", "labels": {"app": "cart"}},
        "spec": {"hosts": ["cart"], "http": [{"route": [
            {"destination": {"host": "cart", "subset": "v1"}, "weight": 70},
            {"destination": {"host": "cart", "subset": "v2"}, "weight": 20},
        ]}]},
    });
    let (status, body) =
        http_request(admin, "PUT", "/api/v1/resources/tr/shop/cart", &[], &doc.to_string()).expect("PUT");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("spec.http[0].route") && body.contains("100"), "weights must add up to 100: {body}");

    let mut good = doc.clone();
    good["spec"]["http"][0]["route"][0]["weight"] = 80.into();
    let path = "/api/v1/resources/trafficrouters/shop/cart";
    let (status, body) = http_request(admin, "PUT", path, &[], &good.to_string()).expect("PUT");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(admin, "/api/v1/resources/TrafficRouter/shop").expect("GET");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list["items"][0]["apiVersion"], "traffic.opensergo.io/v1alpha1");
    assert_eq!(list["items"][0]["spec"]["http"][0]["route"][0]["weight"], 80);
}
