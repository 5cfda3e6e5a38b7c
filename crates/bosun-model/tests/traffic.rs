//! The traffic kinds: good documents, and bad ones with their exact error lists.

mod common;

use std::time::Duration;

use bosun_model::spec::{Spec, StringMatch};
use common::{bad, good, round_trips};

const ROUTER: &str = "
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: { name: service-provider, labels: { app: service-provider } }
spec:
  hosts: [ service-provider ]
  http:
    - name: gray
      match:
        - headers: { tag: { exact: v2 }, x-user: { regex: 'u[0-9]+' } }
          uri: { prefix: /api }
          queryParams: { debug: { exact: '1' } }
          method: { exact: GET }
      route:
        - destination: { host: service-provider, subset: v2, port: { number: 8080 }, fallback: { host: service-provider, subset: v1 } }
      timeout: 2s
      retries: { attempts: 3, perTryTimeout: 500ms, retryOn: '5xx,connect-failure' }
      fault:
        delay: { fixedDelay: 100ms, percentage: { value: 10 } }
        abort: { httpStatus: 503, percentage: { value: 0.5 } }
      rewrite: { uri: /v2/api, authority: provider.internal }
    - route:
        - destination: { host: service-provider, subset: v1 }
          weight: 80
        - destination: { host: service-provider, subset: v2 }
          weight: 20
";

#[test]
fn traffic_router() {
    let doc = good(ROUTER);
    let Spec::TrafficRouter(router) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(router.hosts, ["service-provider"]);
    let gray = &router.http[0];
    assert_eq!(gray.name.as_deref(), Some("gray"));
    assert_eq!(gray.matches[0].headers["tag"], StringMatch::Exact("v2".into()));
    assert_eq!(gray.matches[0].headers["x-user"], StringMatch::Regex("u[0-9]+".into()));
    assert_eq!(gray.matches[0].uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(gray.matches[0].query_params["debug"], StringMatch::Exact("1".into()));
    assert_eq!(gray.matches[0].method, Some(StringMatch::Exact("GET".into())));
    assert_eq!(gray.route[0].destination.port.as_ref().map(|p| p.number), Some(8080));
    assert_eq!(gray.route[0].destination.fallback.as_ref().and_then(|f| f.subset.as_deref()), Some("v1"));
    assert_eq!(gray.timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        gray.retries.as_ref().map(|r| (r.attempts, r.per_try_timeout)),
        Some((3, Some(Duration::from_millis(500))))
    );
    let fault = gray.fault.as_ref().expect("fault");
    assert_eq!(
        fault.delay.as_ref().map(|d| (d.fixed_delay, d.percentage)),
        Some((Duration::from_millis(100), Some(10.0)))
    );
    assert_eq!(fault.abort.as_ref().map(|a| (a.http_status, a.percentage)), Some((503, Some(0.5))));
    assert_eq!(gray.rewrite.as_ref().and_then(|r| r.authority.as_deref()), Some("provider.internal"));
    let weights: Vec<_> = router.http[1].route.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [Some(80), Some(20)]);
    round_trips(&doc);
    let json = doc.to_json();
    assert_eq!(json["spec"]["http"][0]["match"][0]["uri"], serde_json::json!({"prefix": "/api"}));
    assert_eq!(json["spec"]["http"][0]["fault"]["abort"]["percentage"], serde_json::json!({"value": 0.5}));
}

#[test]
fn bad_traffic_routers() {
    assert_eq!(
        bad("
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: { name: r }
spec:
  hosts: [ '', 3 ]
  http:
    - match:
        - headers: { tag: { exact: v2, prefix: v }, 'bad header': { exact: x } }
          uri: { suffix: /x }
          method: { exact: 1 }
      route:
        - destination: { host: a }
          weight: 120
        - destination: { subset: v2 }
          weight: -1
      timeout: soon
      retries: { perTryTimeout: 1s, retryOnStatus: 5xx }
      fault: {}
    - route:
        - destination: { host: a }
          weight: 70
        - destination: { host: b }
          weight: 20
    - route:
        - destination: { host: a }
          weight: 70
        - destination: { host: b }
    - route: []
    - name: nothing
"),
        [
            "spec.hosts[0]: must not be empty",
            "spec.hosts[1]: must be a string, not a number",
            "spec.http[0].match[0].headers.bad header: \"bad header\" is not an HTTP header name",
            "spec.http[0].match[0].headers.tag: must have only one of exact, prefix, regex",
            "spec.http[0].match[0].uri: needs one of exact, prefix, regex",
            "spec.http[0].match[0].uri.suffix: unknown field (expected exact, prefix, regex)",
            "spec.http[0].match[0].method.exact: must be a string",
            "spec.http[0].route[0].weight: must be between 0 and 100",
            "spec.http[0].route[1].destination.host: missing",
            "spec.http[0].route[1].weight: must be between 0 and 100",
            "spec.http[0].timeout: \"soon\" is not a duration like \"20ms\", \"1s\" or \"1m\"",
            "spec.http[0].retries.attempts: missing",
            "spec.http[0].retries.retryOnStatus: unknown field (expected attempts, perTryTimeout, retryOn)",
            "spec.http[0].fault: needs a delay or an abort",
            "spec.http[1].route: the weights must add up to 100, not 90",
            "spec.http[2].route[1].weight: missing (required with several destinations)",
            "spec.http[3].route: must have at least one destination",
            "spec.http[4].route: missing",
        ]
    );
    assert_eq!(
        bad("
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: { name: r }
spec:
  hosts: []
  http: []
  tcp: []
"),
        [
            "spec.hosts: must name at least one host",
            "spec.http: must have at least one route",
            "spec.tcp: unknown field (expected hosts, http)",
        ]
    );
    assert_eq!(
        bad("
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: { name: r }
spec:
  hosts: [ a ]
  http:
    - route:
        - destination: { host: a, port: { number: 0 }, fallback: { subset: v1 } }
      fault:
        delay: { percentage: { value: 101 } }
        abort: { httpStatus: 100, percentage: 5 }
"),
        [
            "spec.http[0].route[0].destination.port.number: must be between 1 and 65535",
            "spec.http[0].route[0].destination.fallback.host: missing",
            "spec.http[0].fault.delay.fixedDelay: missing",
            "spec.http[0].fault.delay.percentage.value: must be between 0 and 100",
            "spec.http[0].fault.abort.httpStatus: must be between 200 and 599",
            "spec.http[0].fault.abort.percentage: must be a mapping, not a number",
        ]
    );
}

#[test]
fn a_single_destination_needs_no_weight() {
    let doc = good(
        "
kind: TrafficRouter
metadata: { name: r }
spec: { hosts: [ a ], http: [ { route: [ { destination: { host: a } } ] } ] }
",
    );
    round_trips(&doc);
}

#[test]
fn traffic_lane() {
    let doc = good(
        "
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficLane
metadata: { name: gray-lane }
spec:
  selector: { app: foo-app }
  rules:
    traffic:
      http:
        - headers: { x-lane: { exact: gray } }
        - uri: { prefix: /gray }
  lane: { name: gray }
",
    );
    let Spec::TrafficLane(lane) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(lane.lane.name, "gray");
    assert_eq!(lane.rules.traffic.http.len(), 2);
    assert_eq!(doc.app(), Some("foo-app"));
    round_trips(&doc);
    assert_eq!(
        bad("
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficLane
metadata: { name: gray-lane }
spec:
  selector: {}
  rules: { traffic: { http: [] } }
  lane: { name: '' }
"),
        [
            "spec.selector.app: missing",
            "spec.rules.traffic.http: must have at least one match",
            "spec.lane.name: must not be empty",
        ]
    );
    assert_eq!(
        bad("
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficLane
metadata: { name: gray-lane }
spec: { rules: {} }
"),
        ["spec.selector: missing", "spec.rules.traffic: missing", "spec.lane: missing"]
    );
}
