//! Properties of the translation beyond the golden files: the order of the input does not
//! matter, other namespaces are ignored, and the resources carry content versions.

use bosun_model::Document;
use bosun_translate::{Options, Status, translate};

fn documents(yaml: &str) -> Vec<Document> {
    yaml.split("\n---\n")
        .map(|doc| {
            let value: serde_json::Value = serde_yaml::from_str(doc).expect("YAML");
            Document::parse(value).expect("valid document")
        })
        .collect()
}

const DOCS: &str = "
kind: Service
metadata: { name: cart, namespace: shop }
spec:
  ports: [ { name: http, port: 8080 } ]
  endpoints: [ { address: 10.0.0.1, labels: { v: '1' } }, { address: 10.0.0.2, labels: { v: '2' } } ]
  subsets: [ { name: one, labels: { v: '1' } }, { name: two, labels: { v: '2' } } ]
---
kind: TrafficRouter
metadata: { name: cart, namespace: shop }
spec:
  hosts: [ cart ]
  http:
    - name: split
      fault: { abort: { httpStatus: 500, percentage: { value: 1 } } }
      route:
        - { destination: { host: cart, subset: one }, weight: 50 }
        - { destination: { host: cart, subset: two }, weight: 50 }
---
kind: RateLimitStrategy
metadata: { name: rl, namespace: shop }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }
---
kind: HttpRequestFallbackAction
metadata: { name: fb, namespace: shop }
spec: { behaviorDesc: { responseStatusCode: 429, responseContentBody: slow down } }
---
kind: FaultToleranceRule
metadata: { name: limit, namespace: shop }
spec:
  targets: [ { targetResourceName: split } ]
  strategies: [ { name: rl, kind: RateLimitStrategy } ]
  fallbackAction: { name: fb, kind: HttpRequestFallbackAction }";

#[test]
fn the_order_of_the_documents_does_not_matter() {
    let docs = documents(DOCS);
    let output = translate(&docs, &Options::default());
    let mut reversed = docs.clone();
    reversed.reverse();
    let again = translate(&reversed, &Options::default());
    assert_eq!(output, again);
    assert_eq!(output.to_json().expect("json"), again.to_json().expect("json"));
    let versions = |o: &bosun_translate::Output| {
        o.resources()
            .expect("resources")
            .iter()
            .map(|r| (r.name().to_owned(), r.version().to_owned()))
            .collect::<Vec<_>>()
    };
    // A route with two per-filter configurations (a map) still has one version.
    assert_eq!(versions(&output), versions(&again));
    assert!(output.statuses.values().all(|s| matches!(s, Status::Enforced { .. })), "{:#?}", output.statuses);
}

#[test]
fn documents_of_other_namespaces_are_ignored() {
    let mut docs = documents(DOCS);
    let other = documents(&DOCS.replace("namespace: shop", "namespace: other"));
    docs.extend(other);
    let output = translate(&docs, &Options::default());
    assert!(output.statuses.keys().all(|r| r.namespace == "shop"));
    assert_eq!(output, translate(&documents(DOCS), &Options::default()));
}

#[test]
fn options_set_the_listen_address_and_connect_timeout() {
    let options =
        Options { listen_address: "0.0.0.0".to_owned(), connect_timeout: std::time::Duration::from_millis(250) };
    let json = translate(&documents(DOCS), &options).to_json().expect("json");
    let resources = json["resources"].as_array().expect("resources");
    let listener =
        resources.iter().find(|r| r["@type"].as_str().is_some_and(|t| t.ends_with("Listener"))).expect("listener");
    assert_eq!(listener["address"]["socket_address"]["address"], "0.0.0.0");
    assert_eq!(listener["address"]["socket_address"]["port_value"], 8080);
    let cluster =
        resources.iter().find(|r| r["@type"].as_str().is_some_and(|t| t.ends_with("Cluster"))).expect("cluster");
    assert_eq!(cluster["connect_timeout"], "0.250s");
}

#[test]
fn nothing_translates_to_nothing() {
    let output = translate(&[], &Options::default());
    assert_eq!(output, bosun_translate::Output::default());
    assert!(output.resources().expect("resources").is_empty());
}
