//! TLS and mutual TLS on the xDS and admin ports, with certificates made in the test: Envoy gets
//! its config over mutual TLS, clients without a valid certificate are refused, the CLI talks
//! to an HTTPS admin API, and replaced certificate files are used without a restart.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::envoy::{eds_cluster, envoy_bootstrap, expect_body, listener, route, start_envoy_with_bootstrap};
use common::pki::{Ca, CertFiles, H2_PREFACE, client_config, https_get, is_h2_settings, raw_exchange, tls_exchange};
use common::{Backend, Bosun, eventually, free_port, http_get, write_atomic};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A test PKI under `work/pki`: a CA (and its file), a server certificate for `localhost`, a
/// client certificate named `client` of the same CA, and a certificate of another CA.
struct Pki {
    ca: Ca,
    ca_file: std::path::PathBuf,
    server: CertFiles,
    client: CertFiles,
    stranger: CertFiles,
}

impl Pki {
    fn new(work: &Path, client: &str) -> Pki {
        let dir = work.join("pki");
        std::fs::create_dir(&dir).expect("mkdir");
        let ca = Ca::new("bosun test CA");
        let ca_file = ca.write(&dir.join("ca.crt"));
        let server = ca.issue(&dir, "server");
        let client = ca.issue(&dir, client);
        let stranger = Ca::new("another CA").issue(&dir, "stranger");
        Pki { ca, ca_file, server, client, stranger }
    }

    /// `--<port>-tls-cert`, `--<port>-tls-key` and `--<port>-tls-client-ca` for this PKI.
    fn flags(&self, port: &str) -> Vec<String> {
        vec![
            format!("--{port}-tls-cert"),
            path(&self.server.cert).to_owned(),
            format!("--{port}-tls-key"),
            path(&self.server.key).to_owned(),
            format!("--{port}-tls-client-ca"),
            path(&self.ca_file).to_owned(),
        ]
    }
}

/// Envoy's bootstrap with a mutual-TLS transport socket on the xds cluster.
fn mtls_bootstrap(xds_port: u16, ca: &Path, client: &CertFiles) -> String {
    format!(
        r#"{}    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          tls_certificates:
          - certificate_chain: {{ filename: {} }}
            private_key: {{ filename: {} }}
          validation_context:
            trusted_ca: {{ filename: {} }}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{ exact: localhost }}
"#,
        envoy_bootstrap(xds_port, free_port(), common::envoy::AdsApi::Sotw),
        path(&client.cert),
        path(&client.key),
        path(ca)
    )
}

#[test]
fn envoy_gets_config_over_mutual_tls_and_clients_without_a_valid_certificate_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(work.path(), "envoy");
    let Pki { ca, ca_file, client: envoy_cert, stranger, .. } = &pki;

    let dir = work.path().join("resources");
    std::fs::create_dir(&dir).expect("mkdir");
    let backend = Backend::start("over mTLS");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    std::fs::write(dir.join("listener.yaml"), listener("ingress", port)).expect("write");
    std::fs::write(dir.join("route.yaml"), route("alpha")).expect("write");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", backend.port)).expect("write");

    let mut args = vec!["--resources".to_owned(), path(&dir).to_owned()];
    args.extend(pki.flags("xds"));
    let bosun = Bosun::start(work.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let envoy = start_envoy_with_bootstrap(work.path(), &mtls_bootstrap(bosun.xds_port, ca_file, envoy_cert));
    expect_body(&envoy, &bosun, ingress, "over mTLS", Duration::from_secs(30));

    let xds: SocketAddr = ([127, 0, 0, 1], bosun.xds_port).into();
    // A client with a certificate of the CA gets the server's HTTP/2 SETTINGS.
    let good = tls_exchange(xds, client_config(&ca.pem, Some(envoy_cert), b"h2"), H2_PREFACE, is_h2_settings);
    assert!(good.as_deref().is_ok_and(is_h2_settings), "{good:?}");
    let failures_before = bosun.metric("bosun_tls_handshake_failures_total{port=\"xds\"}");
    // Without a certificate, or with one of another CA: refused.
    for (what, client) in [("no certificate", None), ("another CA's certificate", Some(stranger))] {
        let got = tls_exchange(xds, client_config(&ca.pem, client, b"h2"), H2_PREFACE, is_h2_settings);
        assert!(got.is_err(), "a client with {what} was served: {got:?}");
    }
    // Plain HTTP/2 on the TLS port: closed without an answer.
    let plain = raw_exchange(xds, H2_PREFACE, Duration::from_secs(5)).expect("connect");
    assert!(plain.closed && !is_h2_settings(&plain.bytes), "plain HTTP/2 was served: {plain:?}");
    let counted = eventually(Duration::from_secs(5), || {
        (bosun.metric("bosun_tls_handshake_failures_total{port=\"xds\"}") >= failures_before + 3.0).then_some(())
    });
    assert!(counted.is_some(), "handshake failures not counted:\n{}", bosun.proc.output());
    // Envoy is still served.
    expect_body(&envoy, &bosun, ingress, "over mTLS", Duration::from_secs(2));
}

#[test]
fn the_cli_uses_an_https_admin_api_and_replaced_certificates_are_used_without_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = work.path().join("pki");
    std::fs::create_dir(&pki).expect("mkdir");
    let ca = Ca::new("bosun test CA");
    let ca_file = ca.write(&pki.join("ca.crt"));
    let server = ca.issue(&pki, "server");
    let client = ca.issue(&pki, "operator");

    let bosun = Bosun::launch(
        work.path(),
        &[
            "--store",
            "memory",
            "--admin-tls-cert",
            path(&server.cert),
            "--admin-tls-key",
            path(&server.key),
            "--admin-tls-client-ca",
            path(&ca_file),
        ],
    );
    let trusted = client_config(&ca.pem, Some(&client), b"http/1.1");
    let healthy = eventually(Duration::from_secs(20), || {
        https_get(bosun.admin, trusted.clone(), "/healthz").ok().filter(|(s, _)| *s == 200)
    });
    assert!(healthy.is_some(), "no HTTPS /healthz:\n{}", bosun.proc.output());
    assert!(http_get(bosun.admin, "/healthz").is_err(), "plain HTTP is served on the TLS port");
    let anonymous = https_get(bosun.admin, client_config(&ca.pem, None, b"http/1.1"), "/healthz");
    assert!(anonymous.is_err(), "a client without a certificate was served: {anonymous:?}");

    // The CLI over HTTPS with a client certificate.
    let url = format!("https://127.0.0.1:{}", bosun.admin.port());
    let tls_flags = [
        "--server",
        &url,
        "--ca-file",
        path(&ca_file),
        "--cert-file",
        path(&client.cert),
        "--key-file",
        path(&client.key),
    ];
    let cluster =
        "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\ntype: STATIC\nconnect_timeout: 3s\n";
    let (ok, out, err) = bosun.cli(&[&["apply", "-f", "-"], &tls_flags[..]].concat(), Some(cluster));
    assert!(ok, "{err}");
    assert_eq!(out, "Cluster/default/a created\n");
    let (ok, table, err) = bosun.cli(&[&["get", "clusters"], &tls_flags[..]].concat(), None);
    assert!(ok && table.lines().nth(1).is_some_and(|l| l.starts_with("default") && l.contains(" a ")), "{table}{err}");
    // Without the client certificate, or without trusting the CA: refused.
    let (ok, _, err) = bosun.cli(&[&["get", "clusters"], &tls_flags[..4]].concat(), None);
    assert!(!ok, "served without a client certificate");
    assert!(err.contains("cannot reach"), "{err}");
    let (ok, _, _) = bosun.cli(
        &["get", "clusters", "--server", &url, "--cert-file", path(&client.cert), "--key-file", path(&client.key)],
        None,
    );
    assert!(!ok, "the CLI trusted a server certificate of an unknown CA");

    // Rotation: a new server certificate from a new CA replaces the files.
    let rotated_ca = Ca::new("rotated CA");
    let rotated = rotated_ca.issue(&pki, "rotated");
    write_atomic(&server.cert, &std::fs::read_to_string(&rotated.cert).expect("read"));
    write_atomic(&server.key, &std::fs::read_to_string(&rotated.key).expect("read"));
    let trusts_rotated = client_config(&rotated_ca.pem, Some(&client), b"http/1.1");
    let picked_up = eventually(Duration::from_secs(10), || {
        https_get(bosun.admin, trusts_rotated.clone(), "/healthz").ok().filter(|(s, _)| *s == 200)
    });
    assert!(picked_up.is_some(), "the new certificate was not used:\n{}", bosun.proc.output());
    assert!(https_get(bosun.admin, trusted.clone(), "/healthz").is_err(), "the old certificate is still served");

    // A bad new file is logged and the current certificate kept.
    let kept_before = bosun.proc.output().matches("keeping the previous ones").count();
    write_atomic(&server.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    let logged = eventually(Duration::from_secs(10), || {
        (bosun.proc.output().matches("keeping the previous ones").count() > kept_before).then_some(())
    });
    assert!(logged.is_some(), "a bad certificate file was not reported:\n{}", bosun.proc.output());
    let still = https_get(bosun.admin, trusts_rotated, "/healthz");
    assert!(still.as_ref().is_ok_and(|(s, _)| *s == 200), "{still:?}");

    // The client CA rotates too: only clients of the new CA are served.
    write_atomic(&server.cert, &std::fs::read_to_string(&rotated.cert).expect("read"));
    let new_client = rotated_ca.issue(&pki, "new-operator");
    write_atomic(&ca_file, &rotated_ca.pem);
    let new_client_served = eventually(Duration::from_secs(10), || {
        let config = client_config(&rotated_ca.pem, Some(&new_client), b"http/1.1");
        https_get(bosun.admin, config, "/healthz").ok().filter(|(s, _)| *s == 200)
    });
    assert!(new_client_served.is_some(), "the new client CA was not used:\n{}", bosun.proc.output());
    let old_client = https_get(bosun.admin, client_config(&rotated_ca.pem, Some(&client), b"http/1.1"), "/healthz");
    assert!(old_client.is_err(), "a client of the old CA is still served: {old_client:?}");
}

/// Subscribes to the cart app's RateLimitStrategies over TLS with `config` and returns how many
/// rules the first answer carries.
fn subscribe_over_tls(port: u16, config: std::sync::Arc<rustls::ClientConfig>) -> Result<usize, String> {
    use bosun_opensergo::proto::transport::open_sergo_universal_transport_service_client::OpenSergoUniversalTransportServiceClient as Client;
    use tokio_stream::StreamExt;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let config = config.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        let request = common::cart_rate_limit_subscription("tls");
        let mut responses = Client::new(channel)
            .subscribe_config(tokio_stream::once(request).chain(tokio_stream::pending()))
            .await
            .map_err(|e| format!("subscribe: {e}"))?
            .into_inner();
        let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
            .map_err(|e| format!("stream: {e}"))?
            .ok_or("the stream ended")?;
        Ok(response.data_with_version.map_or(0, |d| d.data.len()))
    })
}

#[test]
fn opensergo_sdks_subscribe_over_mutual_tls_and_others_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(work.path(), "sdk");
    let Pki { ca, client: sdk, stranger, .. } = &pki;
    let bosun = Bosun::start(work.path(), &pki.flags("opensergo").iter().map(String::as_str).collect::<Vec<_>>());
    let strategy = "apiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: RateLimitStrategy\n\
        metadata: { name: cart-rate, namespace: shop, labels: { app: cart } }\n\
        spec: { metricType: RequestAmount, limitMode: Local, threshold: 5, statDurationSeconds: 1 }\n";
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(strategy));
    assert!(ok, "{err}");

    // An SDK with a certificate of the CA subscribes and gets the rule.
    let rules = subscribe_over_tls(bosun.opensergo_port, client_config(&ca.pem, Some(sdk), b"h2"));
    assert_eq!(rules, Ok(1), "{}", bosun.proc.output());
    // Without a certificate, or with another CA's: refused; plain HTTP/2: closed unanswered.
    let failures_before = bosun.metric("bosun_tls_handshake_failures_total{port=\"opensergo\"}");
    for (what, client) in [("no certificate", None), ("another CA's certificate", Some(stranger))] {
        let got = subscribe_over_tls(bosun.opensergo_port, client_config(&ca.pem, client, b"h2"));
        assert!(got.is_err(), "an SDK with {what} was served: {got:?}");
    }
    let opensergo: SocketAddr = ([127, 0, 0, 1], bosun.opensergo_port).into();
    let plain = raw_exchange(opensergo, H2_PREFACE, Duration::from_secs(5)).expect("connect");
    assert!(plain.closed && !is_h2_settings(&plain.bytes), "plain HTTP/2 was served: {plain:?}");
    let counted = eventually(Duration::from_secs(5), || {
        (bosun.metric("bosun_tls_handshake_failures_total{port=\"opensergo\"}") >= failures_before + 3.0).then_some(())
    });
    assert!(counted.is_some(), "handshake failures not counted:\n{}", bosun.proc.output());
}
