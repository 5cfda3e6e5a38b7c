//! TLS and mutual TLS for the xDS and admin ports: a server certificate, its key and an optional
//! client CA read from PEM files, and reloaded when the files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// How often the certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(1);
/// The largest certificate, key or CA file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What tells that a file changed: modification time, size, inode.
type Stamp = (SystemTime, u64, u64);

/// The files of one port's TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it, clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or does not hold what it should.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The files are each fine but do not make a configuration (e.g. a key for another certificate).
    #[error("TLS configuration from {}: {reason}", cert.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(self.cert.as_path()), Some(self.key.as_path()), self.client_ca.as_deref()].into_iter().flatten()
    }

    /// Builds a rustls server configuration from the files, offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
        let certs = read_certs(&self.cert)?;
        let key_pem = read_pem(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError::File { path: self.key.clone(), reason: format!("no private key in PEM: {e}") })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config_err = |e: rustls::Error| TlsError::Config { cert: self.cert.clone(), reason: e.to_string() };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        path: ca.clone(),
                        reason: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::File { path: ca.clone(), reason: e.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(config_err)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// Each file's modification time, size and inode, to notice a change (a symlink swap too).
    fn stamps(&self) -> Vec<Option<Stamp>> {
        use std::os::unix::fs::MetadataExt as _;
        self.paths()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))))
            .collect()
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let file_err = |reason: String| TlsError::File { path: path.to_owned(), reason };
    let meta = std::fs::metadata(path).map_err(|e| file_err(e.to_string()))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(file_err(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| file_err(e.to_string()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File { path: path.to_owned(), reason: format!("bad PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::File { path: path.to_owned(), reason: "no CERTIFICATE in PEM".to_owned() });
    }
    Ok(certs)
}

/// A port's TLS configuration that follows its files: [`ReloadingTls::current`] is the newest
/// configuration that could be built; a bad new file is logged and the previous one kept.
pub struct ReloadingTls {
    files: TlsFiles,
    alpn: Vec<&'static [u8]>,
    /// Which port, for logs.
    port: &'static str,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

impl ReloadingTls {
    /// Loads the files now; an error here is fatal to the caller.
    pub fn load(port: &'static str, files: TlsFiles, alpn: &[&'static [u8]]) -> Result<Arc<Self>, TlsError> {
        let stamps = files.stamps();
        let config = files.server_config(alpn)?;
        Ok(Arc::new(Self {
            files,
            alpn: alpn.to_vec(),
            port,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    /// Rebuilds the configuration if a file changed since the last look. Returns whether a new
    /// configuration is in use; a failure is logged and the old configuration kept.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = self.files.stamps();
        {
            let mut seen = self.stamps.lock();
            if *seen == stamps {
                return false;
            }
            *seen = stamps;
        }
        match self.files.server_config(&self.alpn) {
            Ok(config) => {
                *self.current.write() = Arc::new(config);
                tracing::info!(port = self.port, cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    port = self.port,
                    "TLS files changed but cannot be used, keeping the previous ones: {e}"
                );
                false
            }
        }
    }

    /// Checks the files every second until `shutdown` turns true.
    pub async fn watch(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = crate::listen::stopped(&mut shutdown) => return,
            }
            let this = self.clone();
            // Reading files blocks; keep it off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let files =
            TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")), client_ca: None };
        std::fs::write(&files.cert, cert.cert.pem()).expect("write cert");
        std::fs::write(&files.key, cert.signing_key.serialize_pem()).expect("write key");
        files
    }

    #[test]
    fn bad_files_are_named_and_a_bad_reload_keeps_the_old_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = self_signed(dir.path(), "a");
        let missing = TlsFiles { key: dir.path().join("nope.key"), ..files.clone() };
        let err = missing.server_config(&[]).expect_err("missing key").to_string();
        assert!(err.contains("nope.key"), "{err}");

        let other = self_signed(dir.path(), "b");
        let mismatched = TlsFiles { key: other.key.clone(), ..files.clone() };
        assert!(mismatched.server_config(&[]).is_err(), "a key of another certificate is refused");

        let tls = ReloadingTls::load("test", files.clone(), &[b"h2"]).expect("load");
        let before = tls.current();
        std::fs::write(&files.cert, "not a certificate, and longer than before").expect("write");
        assert!(!tls.reload_if_changed(), "a bad file is not used");
        assert!(Arc::ptr_eq(&before, &tls.current()), "the old configuration is kept");
        std::fs::copy(&other.cert, &files.cert).expect("copy");
        std::fs::copy(&other.key, &files.key).expect("copy");
        assert!(tls.reload_if_changed(), "a good new pair is used");
        assert!(!Arc::ptr_eq(&before, &tls.current()));
        assert_eq!(tls.current().alpn_protocols, vec![b"h2".to_vec()]);
    }
}
