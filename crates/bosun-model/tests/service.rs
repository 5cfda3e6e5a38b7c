//! The Service kind: a good document, and bad ones with their exact error lists.

mod common;

use bosun_model::Kind;
use bosun_model::spec::{Protocol, Spec};
use common::{bad, good, round_trips};

const SERVICE: &str = "
apiVersion: bosun.io/v1alpha1
kind: Service
metadata: { name: cart, namespace: shop, labels: { app: cart } }
spec:
  ports: [ { name: http, port: 8080 } ]
  endpoints:
    - { address: 127.0.0.1, port: 9001, labels: { version: v1 } }
    - { address: '::1', labels: { version: v2 } }
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
";

#[test]
fn service() {
    let doc = good(SERVICE);
    assert_eq!(doc.kind(), Kind::Service);
    assert_eq!(doc.app(), Some("cart"));
    let Spec::Service(service) = &doc.spec else { panic!("{doc:?}") };
    assert_eq!(service.ports[0].protocol, Protocol::Http);
    assert_eq!(service.endpoints[0].port, Some(9001));
    assert_eq!(service.endpoints[1].port, None);
    let v2 = service.subset("v2").expect("subset v2");
    assert!(!v2.selects(&service.endpoints[0]) && v2.selects(&service.endpoints[1]));
    assert_eq!(service.port(8080).map(|p| p.name.as_str()), Some("http"));
    round_trips(&doc);
    assert_eq!(doc.to_json()["apiVersion"], "bosun.io/v1alpha1");
    assert_eq!(doc.to_json()["spec"]["ports"][0]["protocol"], "HTTP");
}

#[test]
fn bad_services_name_every_field() {
    let errors = bad("
kind: Service
metadata: { name: cart }
spec:
  ports:
    - { name: http, port: 8080 }
    - { name: http, port: 8081 }
    - { name: grpc, port: 8080, protocol: GRPC }
    - { name: mail, port: 25, protocol: SMTP }
    - { name: big, port: 70000 }
  endpoints:
    - { address: cart.local, port: 9001, labels: { version: 2 } }
  subsets: [ { name: v1, labels: {} }, { name: v1, labels: { version: v1 } } ]
");
    assert_eq!(
        errors,
        [
            "spec.ports[3].protocol: must be one of HTTP, HTTP2, GRPC, TCP, not \"SMTP\"",
            "spec.ports[4].port: must be between 1 and 65535",
            "spec.ports[1].name: \"http\" repeats an earlier one's",
            "spec.ports[2].port: \"8080\" repeats an earlier one's",
            "spec.endpoints[0].address: \"cart.local\" is not an IP address",
            "spec.endpoints[0].port: only for a service with one port (with several, instances listen on the service ports)",
            "spec.endpoints[0].labels.version: must be a string, not a number",
            "spec.subsets[0].labels: must select on at least one label",
            "spec.subsets[1].name: \"v1\" repeats an earlier one's",
        ]
    );
    assert_eq!(
        bad("kind: Service\nmetadata: { name: a }\nspec: { ports: [] }"),
        ["spec.ports: must have at least one port"]
    );
    assert_eq!(
        bad(
            "apiVersion: traffic.opensergo.io/v1alpha1\nkind: svc\nmetadata: { name: a }\nspec: { ports: [ { name: h, port: 1 } ] }"
        ),
        ["apiVersion: must be \"bosun.io/v1alpha1\" for Service"]
    );
}
