use serde_json::json;

use super::*;

fn cluster_spec() -> Json {
    json!({"type": "EDS", "connect_timeout": "1s", "eds_cluster_config": {"eds_config": {"ads": {}}}})
}

#[test]
fn kubernetes_shape_and_raw_envoy_give_the_same_resource() {
    let doc = Document::parse(json!({
        "apiVersion": "bosun.io/v1alpha1",
        "kind": "clusters",
        "metadata": {"name": "web", "namespace": "edge", "labels": {"app": "web"}},
        "spec": cluster_spec(),
    }))
    .unwrap();
    assert_eq!(doc.key.as_str(), "Cluster/edge/web");
    assert_eq!(doc.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(doc.spec["name"], "web", "the name goes into the spec");

    let mut raw = cluster_spec();
    raw["@type"] = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
    raw["name"] = "web".into();
    let raw = Document::parse(raw).unwrap();
    assert_eq!(raw.key.as_str(), "Cluster/default/web");
    assert_eq!(raw.spec, doc.spec, "same content");
}

#[test]
fn endpoints_are_named_by_cluster_name() {
    let doc =
        Document::parse(json!({"kind": "endpoints", "metadata": {"name": "web"}, "spec": {"endpoints": []}})).unwrap();
    assert_eq!(doc.key.as_str(), "ClusterLoadAssignment/default/web");
    assert_eq!(doc.spec["cluster_name"], "web");
}

#[test]
fn stored_documents_render_and_parse_back() {
    let doc = Document::parse(
        json!({"kind": "Cluster", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": cluster_spec()}),
    )
    .unwrap();
    let kv = KeyValue { key: doc.key.clone(), value: doc.value(), create_revision: 3, mod_revision: 7, version: 2 };
    let rendered = render(&kv);
    assert_eq!(rendered["metadata"]["resourceVersion"], "7");
    assert_eq!(rendered["metadata"]["generation"], 2);
    let again = Document::parse(rendered).unwrap();
    assert_eq!(again.resource_version, Some(7));
    assert_eq!(again.spec, doc.spec);
    let served = resource_of(&kv).expect("an Envoy kind").unwrap();
    assert_eq!((served.name(), served.type_url()), ("web", "type.googleapis.com/envoy.config.cluster.v3.Cluster"));
    let mut raw = doc.spec.clone();
    raw["@type"] = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
    assert_eq!(
        served.version(),
        crate::resources::transcode(raw).unwrap().version(),
        "served as the directory serves it"
    );
}

#[test]
fn every_error_is_reported_with_its_field() {
    let errors = Document::parse(json!({
        "apiVersion": "v9",
        "kind": "Cluster",
        "metadata": {"namespace": "a/b", "labels": {"app": "not valid", "ok": 3}, "owner": "x", "resourceVersion": "-1"},
        "spec": cluster_spec(),
        "status": {},
    }))
    .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "status",
            "apiVersion",
            "metadata.labels.app",
            "metadata.labels.ok",
            "metadata.namespace",
            "metadata.owner",
            "metadata.resourceVersion",
            "metadata.name",
        ],
        "{errors:?}"
    );

    let bad_spec =
        Document::parse(json!({"kind": "Cluster", "metadata": {"name": "web"}, "spec": {"conect_timeout": "1s"}}))
            .unwrap_err();
    assert_eq!(bad_spec[0].field, "spec");
    assert!(bad_spec[0].reason.contains("conect_timeout"), "{bad_spec:?}");

    let mismatch =
        Document::parse(json!({"kind": "Cluster", "metadata": {"name": "a"}, "spec": {"name": "b"}})).unwrap_err();
    assert_eq!(mismatch[0].field, "spec.name");

    let bad_ns = Document::parse(json!({"kind": "Cluster", "metadata": {"name": "a", "namespace": ""}, "spec": {}}))
        .unwrap_err();
    assert_eq!(bad_ns, [FieldError::new("metadata.namespace", "must not be empty")]);

    let unknown = Document::parse(json!({"kind": "Widget", "metadata": {"name": "a"}, "spec": {}})).unwrap_err();
    assert_eq!(unknown[0].field, "kind");
    let raw_unknown = Document::parse(json!({"@type": "type.googleapis.com/nope.Nope", "name": "a"})).unwrap_err();
    assert_eq!(raw_unknown[0].field, "@type");
    assert_eq!(Document::parse(json!([1])).unwrap_err()[0].field, "document");
}

fn rate_limit() -> Json {
    json!({
        "apiVersion": "fault-tolerance.opensergo.io/v1alpha1",
        "kind": "RateLimitStrategy",
        "metadata": {"name": "rl", "namespace": "shop", "labels": {"app": "cart"}},
        "spec": {"metricType": "RequestAmount", "limitMode": "Local", "threshold": 5, "statDurationSeconds": 1},
    })
}

#[test]
fn governance_documents_are_stored_and_read_back_typed() {
    let doc = Document::parse(rate_limit()).unwrap();
    assert_eq!(doc.key.as_str(), "RateLimitStrategy/shop/rl");
    assert_eq!(doc.labels.get("app").map(String::as_str), Some("cart"));
    assert_eq!(doc.spec["threshold"], 5);
    assert!(doc.model.is_some());

    let kv = KeyValue { key: doc.key.clone(), value: doc.value(), create_revision: 3, mod_revision: 4, version: 1 };
    let rendered = render(&kv);
    assert_eq!(rendered["apiVersion"], "fault-tolerance.opensergo.io/v1alpha1");
    assert_eq!(rendered["kind"], "RateLimitStrategy");
    let typed = model_of(&kv).unwrap().unwrap();
    assert_eq!(Some(typed), doc.model, "what is stored reads back as what was written");
    assert!(resource_of(&kv).is_none(), "a governance kind is not an Envoy resource");

    // `bosun get -o yaml` output applies back unchanged.
    let again = Document::parse(rendered).unwrap();
    assert_eq!(again.spec, doc.spec);
    assert_eq!(again.resource_version, Some(4));
}

#[test]
fn governance_errors_name_every_field() {
    let mut bad = rate_limit();
    bad["spec"]["threshold"] = json!(-1);
    bad["spec"]["limitMode"] = json!("Cluster");
    let errors = Document::parse(bad).unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.limitMode", "spec.threshold"], "{errors:?}");

    let mut envoy_alias = rate_limit();
    envoy_alias["kind"] = json!("rls");
    assert_eq!(Document::parse(envoy_alias).unwrap().key.kind(), "RateLimitStrategy");
}

#[test]
fn the_xds_ttl_label_gives_the_resource_a_ttl() {
    use std::time::Duration;
    let doc = |ttl: &str| {
        Document::parse(json!({
            "kind": "Cluster",
            "metadata": {"name": "web", "labels": {XDS_TTL_LABEL: ttl}},
            "spec": cluster_spec(),
        }))
    };
    let stored = |doc: &Document| KeyValue {
        key: doc.key.clone(),
        value: doc.value(),
        create_revision: 1,
        mod_revision: 1,
        version: 1,
    };
    for (text, expected) in [
        ("30s", Duration::from_secs(30)),
        ("1m30s", Duration::from_secs(90)),
        ("500ms", Duration::from_millis(500)),
        ("2h", Duration::from_secs(7200)),
    ] {
        let parsed = doc(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let resource = resource_of(&stored(&parsed)).expect("an Envoy kind").expect("a resource");
        assert_eq!(resource.ttl(), Some(expected), "{text}");
    }
    let without = Document::parse(json!({"kind": "Cluster", "metadata": {"name": "web"}, "spec": cluster_spec()}))
        .expect("parses");
    let plain = resource_of(&stored(&without)).expect("envoy").expect("resource");
    assert_eq!(plain.ttl(), None);
    let with = resource_of(&stored(&doc("30s").expect("parses"))).expect("envoy").expect("resource");
    assert_ne!(with.version(), plain.version(), "the TTL is part of the version");

    for bad in ["0s", "30", "s", "1d", "1.5s", "9000h", "-1s"] {
        let errors = doc(bad).expect_err(bad);
        assert!(
            errors.iter().any(|e| e.to_string().contains(&format!("metadata.labels.{XDS_TTL_LABEL}"))),
            "{bad}: {errors:?}"
        );
    }
}
