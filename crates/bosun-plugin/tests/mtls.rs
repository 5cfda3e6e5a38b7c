//! AutoMTLS between the host and the Rust SDK's example plugin: on by default over unix
//! sockets and TCP, off on request, certificates pinned both ways, bad certificates refused
//! with clear errors.

mod support;

use std::path::Path;
use std::process::Stdio;

use bosun_plugin::{LaunchConfig, Network, Plugin, PluginError, TransformClient, TransformOutcome};
use support::{answers, bounded, script};

const PLUGIN: &str = env!("CARGO_BIN_EXE_ratelimit-cap");

async fn cap_at_100(plugin: &Plugin) {
    let mut client = TransformClient::new(plugin.channel());
    let out =
        bounded(client.transform("RateLimitStrategy", "ns", "a", br#"{"spec":{"threshold":1000}}"#)).await.unwrap();
    assert_eq!(out, TransformOutcome::Changed(br#"{"spec":{"threshold":100}}"#.to_vec()));
}

#[tokio::test]
async fn auto_mtls_is_on_by_default_over_unix_and_tcp() {
    for tcp in [false, true] {
        let mut config = LaunchConfig::new("ratelimit-cap", PLUGIN);
        assert!(config.auto_mtls);
        if tcp {
            config.args = vec!["--tcp".into()];
            config.port_range = (24_000, 24_999);
        }
        let plugin = bounded(Plugin::launch(&config)).await.unwrap();
        assert_eq!(matches!(plugin.handshake().network, Network::Tcp(_)), tcp);
        assert!(plugin.handshake().server_cert.is_some(), "no certificate in {:?}", plugin.handshake());
        cap_at_100(&plugin).await;
        // The plugin speaks TLS only.
        assert!(!answers(plugin.handshake(), None).await, "the plugin answered plaintext");
        let status = bounded(plugin.shutdown()).await;
        assert!(status.contains("exit status: 0"), "{status}");
    }
}

#[tokio::test]
async fn plaintext_when_auto_mtls_is_off() {
    let mut config = LaunchConfig::new("ratelimit-cap", PLUGIN);
    config.auto_mtls = false;
    let plugin = bounded(Plugin::launch(&config)).await.unwrap();
    assert_eq!(plugin.handshake().server_cert, None);
    cap_at_100(&plugin).await;
    assert!(answers(plugin.handshake(), None).await);
    bounded(plugin.shutdown()).await;
}

#[tokio::test]
async fn sdk_plugin_pins_the_advertised_certificate() {
    support::assert_pins_the_advertised_certificate(Path::new(PLUGIN)).await;
}

#[tokio::test]
async fn sdk_plugin_exits_on_a_bad_client_certificate() {
    let config = bosun_plugin::HandshakeConfig::bosun();
    let out = tokio::process::Command::new(PLUGIN)
        .env(&config.magic_cookie_key, &config.magic_cookie_value)
        .env("PLUGIN_PROTOCOL_VERSIONS", "1")
        .env("PLUGIN_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = bounded(out).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "printed a handshake: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AutoMTLS: PLUGIN_CLIENT_CERT: not an X.509 certificate"), "{stderr}");
}

#[tokio::test]
async fn handshake_certificates_that_do_not_fit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        LaunchConfig::new("script", script(&dir, "echo '1|1|unix|/nonexistent.sock|grpc|aGVsbG8hIQ'\nsleep 30"));
    let err = bounded(Plugin::launch(&config)).await.unwrap_err();
    assert!(matches!(err, PluginError::InvalidHandshake { .. }), "{err}");
    assert!(err.to_string().contains("server certificate: not an X.509 certificate"), "{err}");

    config.path = script(&dir, "echo '1|1|unix|/nonexistent.sock|grpc|'\nsleep 30");
    let err = bounded(Plugin::launch(&config)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "AutoMTLS: the plugin's handshake has no certificate although AutoMTLS is on: the plugin does not \
         support AutoMTLS (turn auto_mtls off for it)"
    );
}
