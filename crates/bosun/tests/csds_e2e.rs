//! CSDS and `bosun status` with a real Envoy: what Envoy accepted is reported per resource
//! (ACKED, SYNCED, with the resource), a resource Envoy rejects is reported NACKED with Envoy's
//! message, node matchers select nodes, and `bosun status` shows the same per type.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::{LISTENER_TYPE, eds_cluster, expect_body, listener, route, start_envoy};
use common::{Backend, Bosun, eventually, free_port, write_atomic};
use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ClientStatusResponse, ConfigStatus};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use prost::Message;

const NODE: &str = "envoy-e2e";

fn node_request(matcher: MatchPattern) -> ClientStatusRequest {
    ClientStatusRequest {
        node_matchers: vec![NodeMatcher {
            node_id: Some(StringMatcher { match_pattern: Some(matcher), ignore_case: false }),
            node_metadatas: vec![],
        }],
        ..Default::default()
    }
}

/// `FetchClientStatus` against Bosun's xDS port.
fn fetch(runtime: &tokio::runtime::Runtime, xds_port: u16, request: ClientStatusRequest) -> ClientStatusResponse {
    runtime.block_on(async {
        let mut client = ClientStatusDiscoveryServiceClient::connect(format!("http://127.0.0.1:{xds_port}"))
            .await
            .expect("connect to the xDS port");
        let answer = tokio::time::timeout(Duration::from_secs(5), client.fetch_client_status(request)).await;
        answer.expect("CSDS answers in time").expect("CSDS answer").into_inner()
    })
}

/// The resource configs of `NODE`, once `done` holds for them (or the last ones seen).
fn node_configs(
    runtime: &tokio::runtime::Runtime,
    bosun: &Bosun,
    done: impl Fn(&[GenericXdsConfig]) -> bool,
) -> Vec<GenericXdsConfig> {
    let mut last = Vec::new();
    let found = eventually(Duration::from_secs(15), || {
        let answer = fetch(runtime, bosun.xds_port, node_request(MatchPattern::Exact(NODE.into())));
        last = answer.config.first().map(|c| c.generic_xds_configs.clone()).unwrap_or_default();
        done(&last).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("CSDS never showed the expected state; last: {last:#?}"))
}

fn find<'a>(configs: &'a [GenericXdsConfig], type_url: &str, name: &str) -> Option<&'a GenericXdsConfig> {
    configs.iter().find(|c| c.type_url == type_url && c.name == name)
}

/// `bosun status -o json` as JSON.
fn status_json(bosun: &Bosun) -> serde_json::Value {
    let (ok, out, err) = bosun.cli(&["status", "-o", "json"], None);
    assert!(ok, "bosun status failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bosun status -o json: {e}: {out}"))
}

#[test]
fn csds_and_bosun_status_report_acks_and_nacks_of_a_real_envoy() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("resources");
    std::fs::create_dir(&dir).expect("mkdir");
    let backend = Backend::start("one");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    std::fs::write(dir.join("listener.yaml"), listener("ingress", port)).expect("write");
    std::fs::write(dir.join("route.yaml"), route("alpha")).expect("write");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", backend.port)).expect("write");

    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);
    let envoy = start_envoy(work.path(), bosun.xds_port);
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(30));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    // Every resource Envoy holds, ACKED and SYNCED, with its contents.
    let expected = [
        (bosun_xds::type_url::CLUSTER, "alpha"),
        (bosun_xds::type_url::ENDPOINT, "alpha"),
        (LISTENER_TYPE, "ingress"),
        (bosun_xds::type_url::ROUTE, "local_route"),
    ];
    let configs = node_configs(&runtime, &bosun, |configs| {
        expected
            .iter()
            .all(|(t, n)| find(configs, t, n).is_some_and(|c| c.client_status == ClientResourceStatus::Acked as i32))
    });
    for (type_url, name) in expected {
        let c = find(&configs, type_url, name).expect("present");
        assert_eq!(c.config_status, ConfigStatus::Synced as i32, "{c:?}");
        assert!(!c.version_info.is_empty() && c.error_state.is_none(), "{c:?}");
        let contents = c.xds_config.as_ref().unwrap_or_else(|| panic!("no contents: {c:?}"));
        assert_eq!(contents.type_url, type_url);
    }
    let listener_any = find(&configs, LISTENER_TYPE, "ingress").and_then(|c| c.xds_config.clone()).expect("listener");
    let decoded = Listener::decode(listener_any.value.as_slice()).expect("a Listener");
    assert_eq!(decoded.name, "ingress");
    let answer = fetch(&runtime, bosun.xds_port, ClientStatusRequest::default());
    let node = answer.config[0].node.as_ref().expect("node");
    assert_eq!((node.id.as_str(), node.cluster.as_str()), (NODE, "edge"));

    // Node matchers select nodes; one Bosun cannot evaluate is refused with the field named.
    assert!(fetch(&runtime, bosun.xds_port, node_request(MatchPattern::Exact("nobody".into()))).config.is_empty());
    assert_eq!(fetch(&runtime, bosun.xds_port, node_request(MatchPattern::Prefix("envoy-".into()))).config.len(), 1);
    let refused = runtime.block_on(async {
        let mut client = ClientStatusDiscoveryServiceClient::connect(format!("http://127.0.0.1:{}", bosun.xds_port))
            .await
            .expect("connect");
        client.fetch_client_status(node_request(MatchPattern::SafeRegex(Default::default()))).await
    });
    let status = refused.expect_err("a regex matcher is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("node_matchers[0].node_id.safe_regex"), "{}", status.message());

    // StreamClientStatus answers each request on the stream.
    let answers = runtime.block_on(async {
        let mut client = ClientStatusDiscoveryServiceClient::connect(format!("http://127.0.0.1:{}", bosun.xds_port))
            .await
            .expect("connect");
        let requests = futures::stream::iter([
            node_request(MatchPattern::Exact(NODE.into())),
            node_request(MatchPattern::Exact("nobody".into())),
        ]);
        let mut responses = client.stream_client_status(requests).await.expect("stream").into_inner();
        let mut answers = Vec::new();
        while let Ok(Some(answer)) =
            tokio::time::timeout(Duration::from_secs(5), responses.message()).await.expect("in time")
        {
            answers.push(answer.config.len());
        }
        answers
    });
    assert_eq!(answers, [1, 0]);

    // bosun status: every type SYNCED.
    let synced = eventually(Duration::from_secs(10), || {
        let nodes = status_json(&bosun);
        let node = nodes.as_array()?.iter().find(|n| n["node"] == NODE)?.clone();
        ["CDS", "EDS", "LDS", "RDS"].iter().all(|t| node["types"][t]["state"] == "SYNCED").then_some(node)
    });
    assert!(synced.is_some(), "not SYNCED: {}", status_json(&bosun));
    let (ok, table, _) = bosun.cli(&["status"], None);
    assert!(ok);
    let row: Vec<&str> =
        table.lines().find(|l| l.starts_with(NODE)).expect("a row for the node").split_whitespace().collect();
    assert_eq!((row[1], row[2], row[4], row[6], row[8]), ("edge", "SYNCED", "SYNCED", "SYNCED", "SYNCED"), "{table}");

    // A second listener on the same address: Envoy rejects it.
    write_atomic(&dir.join("dup.yaml"), &listener("ingress-dup", port));
    let configs = node_configs(&runtime, &bosun, |configs| {
        find(configs, LISTENER_TYPE, "ingress-dup")
            .is_some_and(|c| c.client_status == ClientResourceStatus::Nacked as i32)
    });
    let dup = find(&configs, LISTENER_TYPE, "ingress-dup").expect("present");
    assert_eq!(dup.config_status, ConfigStatus::Error as i32);
    let error = dup.error_state.as_ref().expect("error_state");
    assert!(error.details.contains("ingress-dup"), "{error:?}");
    assert_eq!(error.version_info, dup.version_info);
    // Clusters were not touched and stay SYNCED.
    let alpha = find(&configs, bosun_xds::type_url::CLUSTER, "alpha").expect("cluster");
    assert_eq!(alpha.config_status, ConfigStatus::Synced as i32);

    let nodes = status_json(&bosun);
    let node = nodes.as_array().and_then(|n| n.iter().find(|n| n["node"] == NODE)).expect("node").clone();
    assert_eq!(node["types"]["LDS"]["state"], "NACKED", "{node}");
    assert!(node["types"]["LDS"]["error"].as_str().is_some_and(|e| e.contains("ingress-dup")), "{node}");
    assert_eq!(node["types"]["CDS"]["state"], "SYNCED", "{node}");
    let (_, table, _) = bosun.cli(&["status"], None);
    assert!(table.contains(&format!("{NODE} LDS NACKED:")), "{table}");
    // Traffic still flows on what Envoy kept.
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(5));
}
