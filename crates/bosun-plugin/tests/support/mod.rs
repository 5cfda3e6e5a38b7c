//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_plugin::mtls::{Identity, MutualTls};
use bosun_plugin::proto::bosun::transform_server::Transform;
use bosun_plugin::proto::bosun::{
    ConfigureRequest, ConfigureResponse, TransformRequest, TransformResponse, transform_response,
};
use bosun_plugin::{HEALTH_SERVICE, Handshake, HandshakeConfig, connect, parse_handshake};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Bounds a test step.
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("test step timed out")
}

/// Whether the process exists.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Writes an executable shell script `plugin.sh` with `body` into `dir`.
pub fn script(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("plugin.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Asks the plugin's health service over `channel`.
pub async fn health(channel: Channel) -> Result<(), tonic::Status> {
    let mut client = HealthClient::new(channel);
    let req = HealthCheckRequest { service: HEALTH_SERVICE.to_owned() };
    bounded(client.check(req)).await.map(|_| ())
}

/// Whether a host connecting over `tls` gets an answer from the plugin at `handshake`.
pub async fn answers(handshake: &Handshake, tls: Option<&MutualTls>) -> bool {
    match bounded(connect(&handshake.network, tls)).await {
        Ok(channel) => health(channel).await.is_ok(),
        Err(_) => false,
    }
}

/// A plugin started by hand with `PLUGIN_CLIENT_CERT` set; killed when dropped.
pub struct HandStarted {
    /// The process.
    pub child: tokio::process::Child,
    /// Its handshake.
    pub handshake: Handshake,
}

/// Starts `plugin` by hand advertising `advertised` as the host's certificate, and reads its
/// handshake line.
pub async fn start_by_hand(plugin: &Path, advertised: &Identity) -> HandStarted {
    let config = HandshakeConfig::bosun();
    let mut child = tokio::process::Command::new(plugin)
        .env(&config.magic_cookie_key, &config.magic_cookie_value)
        .env("PLUGIN_PROTOCOL_VERSIONS", config.protocol_version.to_string())
        .env("PLUGIN_CLIENT_CERT", advertised.cert_pem())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    bounded(stdout.read_line(&mut line)).await.unwrap();
    // Keep draining stdout so the plugin never blocks on it.
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut stdout, &mut sink).await;
    });
    let handshake = parse_handshake(&line).unwrap();
    HandStarted { child, handshake }
}

/// A plugin started with one certificate advertised refuses a host that presents another,
/// refuses plaintext, and answers the host that presents the advertised one; and the host
/// refuses a plugin whose certificate is not the one in its handshake.
pub async fn assert_pins_the_advertised_certificate(plugin: &Path) {
    let advertised = Identity::generate().unwrap();
    let other = Identity::generate().unwrap();
    let mut started = start_by_hand(plugin, &advertised).await;
    let server_cert = started.handshake.server_cert.clone().expect("no certificate in the handshake");

    let impostor = MutualTls::new(&other, &server_cert).unwrap();
    assert!(!answers(&started.handshake, Some(&impostor)).await, "a host with another certificate was answered");
    assert!(!answers(&started.handshake, None).await, "a plaintext host was answered");
    let wrong_server = MutualTls::new(&advertised, other.cert_der()).unwrap();
    assert!(!answers(&started.handshake, Some(&wrong_server)).await, "the host accepted a certificate it did not pin");
    let host = MutualTls::new(&advertised, &server_cert).unwrap();
    assert!(answers(&started.handshake, Some(&host)).await, "the host with the advertised certificate was refused");

    started.child.kill().await.unwrap();
}

/// The host's service: records the requests it sees and changes every document.
#[derive(Clone, Default)]
pub struct Recorder {
    /// The requests seen, in order.
    pub seen: Arc<Mutex<Vec<TransformRequest>>>,
}

#[tonic::async_trait]
impl Transform for Recorder {
    async fn configure(&self, _: Request<ConfigureRequest>) -> Result<Response<ConfigureResponse>, Status> {
        Ok(Response::new(ConfigureResponse {}))
    }

    async fn transform(&self, req: Request<TransformRequest>) -> Result<Response<TransformResponse>, Status> {
        self.seen.lock().unwrap().push(req.into_inner());
        Ok(Response::new(TransformResponse {
            result: Some(transform_response::Result::ChangedJson(br#"{"from":"host"}"#.to_vec())),
        }))
    }
}
