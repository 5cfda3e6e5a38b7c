//! The host against a real go-plugin plugin: `tests/go/transform`, written with Debian's
//! hashicorp/go-plugin 1.0.1 and built here, offline, with Debian's Go in GOPATH mode; its
//! gRPC code is generated with Debian's `protoc` and `protoc-gen-go` (1.3.5). The build
//! output and Go's build cache live under Cargo's test tempdir, so later runs are quick.
//!
//! Needs the Debian packages golang-go, golang-github-hashicorp-go-plugin-dev,
//! golang-google-grpc-dev, golang-goprotobuf-dev and protobuf-compiler (scripts/test.sh
//! installs them).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bosun_plugin::proto::bosun::transform_server::TransformServer;
use bosun_plugin::{LaunchConfig, Plugin, TransformClient, TransformOutcome};
use support::{Recorder, bounded};

/// How long one build step (protoc, go build) may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The Go plugin binary, built once per test process.
fn go_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_go_plugin)
}

fn build_go_plugin() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-transform-plugin");
    let gopath = work.join("gopath");
    let generated = gopath.join("src");
    std::fs::create_dir_all(&generated).unwrap();
    // protoc writes bosun/plugin/v1/transform.pb.go (package bosun_plugin_v1) under src/,
    // which the plugin imports as "bosun/plugin/v1".
    let mut protoc = Command::new("protoc");
    protoc
        .arg(format!("-I{}", manifest.join("../../proto").display()))
        .arg(format!("--go_out=plugins=grpc:{}", generated.display()))
        .arg("bosun/plugin/v1/transform.proto");
    run_bounded(protoc, &work, "protoc");

    let binary = work.join("transform");
    let mut go = Command::new("go");
    go.args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(manifest.join("tests/go/transform"))
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
        .env("GOCACHE", work.join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0");
    run_bounded(go, &work, "go build");
    binary
}

/// Runs a build step with its output in `<work>/<name>.log`, killing it after
/// [`BUILD_TIMEOUT`]; panics with the log when it fails.
fn run_bounded(mut cmd: Command, work: &Path, name: &str) {
    let log_path = work.join(format!("{}.log", name.replace(' ', "-")));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = match cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn() {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run {name} ({e}): the Go plugin tests need golang-go, golang-github-hashicorp-go-plugin-dev, \
             golang-google-grpc-dev, golang-goprotobuf-dev and protobuf-compiler (scripts/test.sh installs them)"
        ),
    };
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} took longer than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "{name} failed ({status}):\n{output}");
}

fn config(auto_mtls: bool) -> LaunchConfig {
    let mut config = LaunchConfig::new("go-transform", go_plugin());
    config.auto_mtls = auto_mtls;
    config.handshake_timeout = Duration::from_secs(20);
    config
}

async fn configure_and_transform(plugin: &Plugin) {
    bounded(plugin.health()).await.unwrap();
    let mut client = TransformClient::new(plugin.channel());
    bounded(client.configure(r#"{"max_threshold": 50}"#)).await.unwrap();

    let doc = br#"{"kind":"RateLimitStrategy","spec":{"threshold":80}}"#;
    let out = bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap();
    let TransformOutcome::Changed(changed) = out else { panic!("{out:?}") };
    let changed: serde_json::Value = serde_json::from_slice(&changed).unwrap();
    assert_eq!(changed, serde_json::json!({"kind": "RateLimitStrategy", "spec": {"threshold": 50}}));

    let doc = br#"{"spec":{"threshold":20}}"#;
    let out = bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap();
    assert_eq!(out, TransformOutcome::Unchanged);

    let doc = br#"{"spec":{"threshold":-1}}"#;
    let out = bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap();
    assert_eq!(out, TransformOutcome::Rejected("default/rl: threshold -1 is negative".into()));

    let err = bounded(client.configure("{}")).await.unwrap_err();
    assert!(err.to_string().contains("max_threshold"), "{err}");
}

async fn stop(plugin: Plugin) {
    let pid = plugin.pid();
    let status = bounded(plugin.shutdown()).await;
    assert!(!support::alive(pid), "the Go plugin survived its shutdown ({status})");
}

#[tokio::test]
async fn go_plugin_with_auto_mtls() {
    let plugin = bounded(Plugin::launch(&config(true))).await.unwrap();
    let handshake = plugin.handshake();
    assert_eq!(handshake.app_version, 1);
    assert!(!handshake.multiplex, "go-plugin 1.0.1 prints six fields");
    assert!(handshake.server_cert.is_some(), "go-plugin sent no certificate: {handshake:?}");
    configure_and_transform(&plugin).await;
    stop(plugin).await;
}

#[tokio::test]
async fn go_plugin_in_plaintext() {
    let plugin = bounded(Plugin::launch(&config(false))).await.unwrap();
    assert_eq!(plugin.handshake().server_cert, None);
    configure_and_transform(&plugin).await;
    stop(plugin).await;
}

#[tokio::test]
async fn go_plugin_pins_the_advertised_certificate() {
    support::assert_pins_the_advertised_certificate(go_plugin()).await;
}

/// go-plugin's broker against the host's: the Go plugin dials the service the host offers and
/// relays to it. In plaintext only: with AutoMTLS, go-plugin 1.0.1's plugin side dials brokered
/// services expecting the server name `unused` ("x509: certificate is valid for localhost, not
/// unused"), whoever the host is.
#[tokio::test]
async fn go_plugin_calls_the_host_through_the_broker() {
    let plugin = bounded(Plugin::launch(&config(false))).await.unwrap();
    let recorder = Recorder::default();
    let id = plugin.broker().next_id();
    let routes = tonic::service::Routes::new(TransformServer::new(recorder.clone()));
    bounded(plugin.broker().accept_and_serve(id, routes)).await.unwrap();
    let mut client = TransformClient::new(plugin.channel());
    bounded(client.configure(&format!(r#"{{"relay_service": {id}}}"#))).await.unwrap();
    let out = bounded(client.transform("RateLimitStrategy", "ns", "rl", br#"{"spec":{}}"#)).await.unwrap();
    assert_eq!(out, TransformOutcome::Changed(br#"{"from":"host"}"#.to_vec()));
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].name.as_str(), seen[0].namespace.as_str()), ("relayed:rl", "ns"));
    stop(plugin).await;
}
