//! Certificates for the TLS tests, made with rcgen: a CA, server certificates for
//! 127.0.0.1/localhost and client certificates, written as PEM files; and a blocking TLS client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, as PEM files.
#[derive(Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert");
        let pem = issuer.pem();
        Ca { issuer, pem }
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("write CA");
        path.to_owned()
    }

    /// A certificate for 127.0.0.1 and localhost, for servers and clients, written to
    /// `dir/name.crt` and `dir/name.key`.
    pub fn issue(&self, dir: &Path, name: &str) -> CertFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let files = CertFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

/// A TLS client configuration trusting `ca_pem`, with a client certificate if given.
pub fn client_config(ca_pem: &str, client: Option<&CertFiles>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(files) => {
            let certs = CertificateDer::pem_file_iter(&files.cert).expect("cert").collect::<Result<Vec<_>, _>>();
            let key = PrivateKeyDer::from_pem_file(&files.key).expect("key");
            builder.with_client_auth_cert(certs.expect("cert"), key).expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Connects to `addr` over TLS with `config`, writes `request` and reads until EOF or until
/// `until` says enough was read. Any TLS failure (a refused certificate included) is an error.
pub fn tls_exchange(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
    until: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request)?;
    tls.flush()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !until(&got) {
        match tls.read(&mut buf)? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(got)
}

/// `GET path` over HTTPS/1.1; returns (status, body).
pub fn https_get(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str) -> std::io::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let raw = tls_exchange(addr, config, request.as_bytes(), |_| false)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// The HTTP/2 client preface; an HTTP/2 server answers it with a SETTINGS frame.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether `bytes` start with an HTTP/2 SETTINGS frame (type 4 on stream 0).
pub fn is_h2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 4 && bytes[5..9] == [0, 0, 0, 0]
}

/// What a plain TCP exchange got: the bytes read, and whether the server closed the connection
/// (EOF or reset) within `wait`, rather than keeping it open.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

/// Connects to `addr` over plain TCP, writes `request`, and reads for up to `wait`.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> std::io::Result<RawReply> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    let deadline = std::time::Instant::now() + wait;
    // A server that closes at once may reset before the write; that is a close too.
    if tcp.write_all(request).is_err() {
        return Ok(RawReply { bytes: Vec::new(), closed: true });
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(RawReply { bytes, closed: false });
        }
        tcp.set_read_timeout(Some(left))?;
        match tcp.read(&mut buf) {
            Ok(0) => return Ok(RawReply { bytes, closed: true }),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(RawReply { bytes, closed: false });
            }
            Err(_) => return Ok(RawReply { bytes, closed: true }),
        }
    }
}
