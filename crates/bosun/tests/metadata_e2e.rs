//! The service metadata centre of `bosun serve`, on its xDS port: a Python grpcio client
//! (tests/metadata/client.py, stubs generated at test time from proto/) publishes, reads, watches an
//! update and an expiry, heartbeats and sends invalid requests; a Rust client checks that metadata
//! survives a restart while its lease is live, and what `bosun get` and `/api/v1/` list.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bosun_metadata::proto::bosun::metadata::v1 as bosun;
use bosun_metadata::proto::dubbo::networking::v1alpha1 as dubbo;
use common::{Bosun, http_get};

/// The test venv's Python: `$BOSUN_TEST_PYTHON`, which `scripts/test.sh` sets after installing
/// grpcio and grpcio-tools.
fn python() -> PathBuf {
    match std::env::var_os("BOSUN_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!("BOSUN_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs grpcio"),
    }
}

#[test]
fn a_python_client_publishes_watches_and_sees_the_expiry() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &["--metadata-ttl", "3", "--metadata-max-bytes", "1024"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/metadata/client.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["--grpc", &format!("127.0.0.1:{}", bosun.xds_port), "--ttl", "3", "--max-bytes", "1024"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed ({}):\n{stdout}\n{stderr}\n{}", out.status, bosun.proc.output());

    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script's JSON summary");
    assert_eq!(seen["update"], "v2", "{seen}");
    assert_eq!(seen["mapping"], serde_json::json!(["shop"]), "{seen}");
    assert_eq!(seen["ttl_seconds"], 3, "{seen}");
    assert_eq!(seen["after_heartbeats"], "v2", "{seen}");
    let expired_after = seen["expired_after_seconds"].as_f64().expect("expiry time");
    assert!(expired_after <= 3.0 + 5.0, "{seen}");
    let errors = &seen["errors"];
    let expect = [
        ("expired_get", "NOT_FOUND", "no metadata for application \"shop\""),
        ("expired_mapping", "NOT_FOUND", "no application serves"),
        ("empty_namespace", "INVALID_ARGUMENT", "namespace: must not be empty"),
        ("empty_revision", "INVALID_ARGUMENT", "revision: must not be empty"),
        ("too_big", "INVALID_ARGUMENT", "metadata_info: is 1025 bytes, over the limit of 1024 bytes"),
        ("no_interfaces", "INVALID_ARGUMENT", "interfaceNames: must name at least one interface"),
        ("heartbeat_unknown", "NOT_FOUND", "application \"nobody\" in namespace \"dev\" holds no live lease"),
    ];
    for (case, code, message) in expect {
        assert_eq!(errors[case][0], code, "{case}: {seen}");
        let got = errors[case][1].as_str().unwrap_or_default();
        assert!(got.starts_with(message), "{case}: {got:?} does not start with {message:?}");
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}

async fn channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

#[test]
fn metadata_survives_a_restart_while_its_lease_lives() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut bosun = Bosun::start(work.path(), &["--metadata-ttl", "60"]);
    block_on(async {
        let channel = channel(bosun.xds_port).await;
        let mut pixiu = dubbo::service_metadata_service_client::ServiceMetadataServiceClient::new(channel.clone());
        let request = dubbo::PublishServiceMetadataRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            revision: "4f1c".into(),
            metadata_info: "{\"app\":\"shop\"}".into(),
        };
        pixiu.publish(request).await.expect("publish");
        let mut mappings = dubbo::service_name_mapping_service_client::ServiceNameMappingServiceClient::new(channel);
        let request = dubbo::ServiceMappingRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            interface_names: vec!["org.example.Greeter".into(), "org.example.Cart".into()],
        };
        mappings.register_service_app_mapping(request).await.expect("mapping");
    });

    bosun.kill_and_restart();
    block_on(async {
        let channel = channel(bosun.xds_port).await;
        let mut client = bosun::service_metadata_service_client::ServiceMetadataServiceClient::new(channel);
        let get = bosun::GetServiceMetadataRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            revision: "4f1c".into(),
        };
        assert_eq!(client.get(get).await.expect("get after restart").into_inner().metadata_info, "{\"app\":\"shop\"}");
        // The lease was found in the store: a heartbeat renews it rather than failing.
        let beat = bosun::HeartbeatRequest { namespace: "dev".into(), application_name: "shop".into() };
        assert_eq!(client.heartbeat(beat).await.expect("heartbeat after restart").into_inner().ttl_seconds, 60);
    });

    let (ok, out, err) = bosun.cli(&["get", "metadata"], None);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["dev", "shop", "4f1c", "14", "bytes"]),
        "{out}"
    );
    let (ok, out, err) = bosun.cli(&["get", "mappings", "-n", "dev", "-o", "json"], None);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let interfaces: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|i| i["interface_name"].as_str()).collect();
    assert_eq!(interfaces, ["org.example.Cart", "org.example.Greeter"], "{listed}");
    let (status, body) = http_get(bosun.admin, "/api/v1/metadata?namespace=dev").expect("REST");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(listed["items"][0]["metadata_info"], "{\"app\":\"shop\"}", "{listed}");
    let (status, body) = http_get(bosun.admin, "/api/v1/servicedefinitions").expect("REST");
    assert_eq!((status, body.as_str()), (200, "{\"items\":[]}"));
    // The metadata kinds are not documents: the documents' listing of every kind does not show them.
    let (ok, out, err) = bosun.cli(&["get", "clusters"], None);
    assert!(ok && !out.contains("shop"), "{out}{err}");
}

#[test]
fn mappings_are_pushed_over_ads() {
    use bosun_metadata::ads::MAPPING_TYPE_URL;
    use bosun_metadata::proto::bosun::metadata::v1::ServiceAppMapping;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use prost::Message;

    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &["--metadata-ttl", "60"]);
    block_on(async {
        let channel = channel(bosun.xds_port).await;
        let mut mappings =
            dubbo::service_name_mapping_service_client::ServiceNameMappingServiceClient::new(channel.clone());
        let register = |application: &str| dubbo::ServiceMappingRequest {
            namespace: "dev".into(),
            application_name: application.into(),
            interface_names: vec!["org.example.Greeter".into()],
        };
        mappings.register_service_app_mapping(register("shop")).await.expect("mapping");

        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let request = |version: &str, nonce: &str| DiscoveryRequest {
            node: Some(Node { id: "consumer-1".into(), cluster: "consumers".into(), ..Default::default() }),
            type_url: MAPPING_TYPE_URL.into(),
            resource_names: vec!["org.example.Greeter|dev".into()],
            version_info: version.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        };
        tx.send(request("", "")).await.expect("send");
        let mut ads = AggregatedDiscoveryServiceClient::new(channel);
        let mut responses = ads
            .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("ADS")
            .into_inner();
        let mut next = async || {
            let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
                .await
                .expect("a push in time")
                .expect("no error")
                .expect("open stream");
            assert_eq!(response.type_url, MAPPING_TYPE_URL);
            let any = response.resources.first().expect("the mapping");
            let mapping = ServiceAppMapping::decode(any.value.as_slice()).expect("a ServiceAppMapping");
            (response.version_info, response.nonce, mapping)
        };
        let (version, nonce, mapping) = next().await;
        assert_eq!((mapping.namespace.as_str(), mapping.interface_name.as_str()), ("dev", "org.example.Greeter"));
        assert_eq!(mapping.application_names, ["shop"]);
        tx.send(request(&version, &nonce)).await.expect("ACK");

        mappings.register_service_app_mapping(register("cart")).await.expect("mapping");
        let (_, _, mapping) = next().await;
        assert_eq!(mapping.application_names, ["cart", "shop"]);
    });
}

/// Publishes with a 2 s TTL on `store`, heartbeats once, stops, and expects the watch to see the
/// expiry within the granted TTL + 5 s, and the entry gone.
fn expires_on(store: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &["--store", store, "--metadata-ttl", "2"]);
    block_on(async {
        let channel = channel(bosun.xds_port).await;
        let mut client = bosun::service_metadata_service_client::ServiceMetadataServiceClient::new(channel);
        let publish = bosun::PublishServiceMetadataRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            revision: "r1".into(),
            metadata_info: "{}".into(),
        };
        client.publish(publish).await.expect("publish");
        let watch = bosun::WatchServiceMetadataRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            revision: "r1".into(),
        };
        let mut events = client.watch(watch).await.expect("watch").into_inner();
        let mut next = async |within: Duration| {
            tokio::time::timeout(within, events.message()).await.expect("an event in time").expect("ok").expect("open")
        };
        assert_eq!(next(Duration::from_secs(10)).await.r#type(), bosun::EventType::Put);
        let beat = bosun::HeartbeatRequest { namespace: "dev".into(), application_name: "shop".into() };
        let ttl = client.heartbeat(beat).await.expect("heartbeat").into_inner().ttl_seconds;
        let stopped = Instant::now();
        let expired = next(Duration::from_secs(ttl.unsigned_abs() + 5)).await;
        assert_eq!((expired.r#type(), expired.revision.as_str()), (bosun::EventType::Deleted, "r1"));
        assert!(stopped.elapsed() >= Duration::from_secs(ttl.unsigned_abs()) - Duration::from_millis(500));
        let get = bosun::GetServiceMetadataRequest {
            namespace: "dev".into(),
            application_name: "shop".into(),
            revision: "r1".into(),
        };
        assert_eq!(client.get(get).await.expect_err("expired").code(), tonic::Code::NotFound);
    });
}

#[test]
fn entries_expire_on_etcd() {
    let server = bosun_testkit::etcd::EtcdServer::start();
    let endpoints: Vec<String> =
        server.endpoints().iter().map(|e| e.trim_start_matches("http://").to_owned()).collect();
    expires_on(&format!("etcd://{}/metadata-test", endpoints.join(",")));
}

#[test]
fn entries_expire_on_postgres() {
    let server = bosun_testkit::postgres::PostgresServer::start();
    expires_on(&server.url());
}
