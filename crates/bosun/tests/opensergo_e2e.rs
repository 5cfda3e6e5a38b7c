//! OpenSergo SDKs' side of `bosun serve`: a Python gRPC client (tests/opensergo/wire_test.py,
//! stubs generated at test time from its own .proto files) subscribes, receives, ACKs, gets an
//! update after `bosun apply`, NACKs (seen in /status), unsubscribes and sends malformed
//! subscriptions.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Bosun, eventually};

const STRATEGY: &str = "\
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: { name: cart-rate, namespace: shop, labels: { app: cart } }
spec: { metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }
";

/// The test venv's Python: `$BOSUN_TEST_PYTHON`, which `scripts/test.sh` sets after installing
/// grpcio and grpcio-tools.
fn python() -> PathBuf {
    match std::env::var_os("BOSUN_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!("BOSUN_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs grpcio"),
    }
}

#[test]
fn a_python_grpc_client_speaks_the_opensergo_wire() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &[]);
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(STRATEGY));
    assert!(ok, "{err}");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/opensergo/wire_test.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["--grpc", &format!("127.0.0.1:{}", bosun.opensergo_port)])
        .args(["--admin", &bosun.admin.to_string()])
        .args(["--bosun", env!("CARGO_BIN_EXE_bosun")])
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
    assert!(
        out.status.success(),
        "the wire test failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        bosun.proc.output()
    );

    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script's JSON summary");
    assert_eq!(seen["initial"]["threshold"], 5, "{seen}");
    assert_eq!(seen["update"]["threshold"], 7, "{seen}");
    assert!(seen["update"]["version"].as_i64() > seen["initial"]["version"].as_i64(), "{seen}");
    assert_eq!(seen["nack"]["code"], 4007, "{seen}");
    assert_eq!(seen["unsubscribed"], true, "{seen}");
    let invalid: Vec<&str> = seen["invalid"].as_array().expect("invalid").iter().filter_map(|m| m.as_str()).collect();
    assert!(invalid[0].contains("target.app: missing"), "{invalid:?}");
    assert!(invalid[1].contains("unknown kind \"RateLimitStrategy\""), "{invalid:?}");
    assert!(invalid[2].contains("target.kinds: missing"), "{invalid:?}");

    // The client is gone from /status once its stream closed; the rule is still served.
    let status = eventually(Duration::from_secs(10), || {
        let status = bosun.status();
        status["opensergo"]["clients"].as_array().is_some_and(Vec::is_empty).then_some(status)
    })
    .expect("the closed stream leaves /status");
    assert_eq!(status["opensergo"]["rules"], 1, "{status}");
}

/// The version a fresh subscription to the cart app's RateLimitStrategies gets, and its rules.
fn subscribe_once(port: u16) -> (i64, usize) {
    use bosun_opensergo::proto::transport::open_sergo_universal_transport_service_client::OpenSergoUniversalTransportServiceClient as Client;
    use tokio_stream::StreamExt;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = Client::connect(format!("http://127.0.0.1:{port}")).await.expect("connect");
        let request = common::cart_rate_limit_subscription("r");
        let mut responses = client
            .subscribe_config(tokio_stream::once(request).chain(tokio_stream::pending()))
            .await
            .expect("stream")
            .into_inner();
        let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("an answer in time")
            .expect("no error")
            .expect("a response");
        let data = response.data_with_version.expect("rules");
        (data.version, data.data.len())
    })
}

#[test]
fn versions_keep_growing_across_a_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut bosun = Bosun::start(work.path(), &[]);
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(STRATEGY));
    assert!(ok, "{err}");
    let (before, rules) = subscribe_once(bosun.opensergo_port);
    assert_eq!(rules, 1);
    // Deleted while nobody watches, then a restart: the SDK's cached version must not look newer.
    let (ok, _, err) = bosun.cli(&["delete", "rls", "cart-rate", "-n", "shop"], None);
    assert!(ok, "{err}");
    bosun.kill_and_restart();
    let (after, rules) = subscribe_once(bosun.opensergo_port);
    assert_eq!(rules, 0);
    assert!(after > before, "version {after} after the restart, {before} before");
}
