//! AutoMTLS, go-plugin's mutual TLS between host and plugin (DESIGN.md §5): each side makes a
//! fresh self-signed ECDSA P-521 certificate, the host passes its own in `PLUGIN_CLIENT_CERT`,
//! the plugin answers with its own in the handshake line, and each side then accepts exactly
//! the other's certificate, byte for byte.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::error::{PluginError, Result};

/// The name both sides put in their certificates (and the host sends as TLS server name).
pub(crate) const HOST_NAME: &str = "localhost";
/// How long a certificate is valid; it lives only as long as the plugin process.
const VALIDITY: time::Duration = time::Duration::days(30 * 365);

/// One side's AutoMTLS identity: a fresh self-signed ECDSA P-521 certificate (CA, SAN
/// `localhost`, for server and client authentication, as go-plugin makes them) and its key.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("cert_der_len", &self.cert.len()).finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a new key pair and certificate.
    pub fn generate() -> Result<Self> {
        use rcgen::{BasicConstraints, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
        let tls_err = |what: &str, e: rcgen::Error| PluginError::Tls(format!("cannot {what}: {e}"));
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)
            .map_err(|e| tls_err("generate a P-521 key", e))?;
        let mut params = rcgen::CertificateParams::new(vec![HOST_NAME.to_owned()])
            .map_err(|e| tls_err("make certificate parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, HOST_NAME);
        params.distinguished_name.push(DnType::OrganizationName, "Bosun");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + VALIDITY;
        let cert = params.self_signed(&key).map_err(|e| tls_err("sign the certificate", e))?;
        Ok(Self { pem: cert.pem(), cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.serialize_der()) })
    }

    /// The certificate as PEM (what the host puts in `PLUGIN_CLIENT_CERT`).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as DER (what a plugin prints, base64-encoded, in its handshake line).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }
}

/// Checks that `der` is an X.509 certificate; returns why not.
pub(crate) fn check_certificate(der: &[u8]) -> std::result::Result<(), String> {
    let cert = CertificateDer::from(der);
    webpki::EndEntityCert::try_from(&cert).map(|_| ()).map_err(|e| format!("not an X.509 certificate: {e:?}"))
}

/// Reads the one PEM certificate of `PLUGIN_CLIENT_CERT`.
pub(crate) fn certificate_from_pem(pem: &str) -> Result<Vec<u8>> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PluginError::Tls(format!("PLUGIN_CLIENT_CERT holds no PEM certificate: {e}")))?;
    check_certificate(&cert).map_err(|reason| PluginError::Tls(format!("PLUGIN_CLIENT_CERT: {reason}")))?;
    Ok(cert.to_vec())
}

/// The TLS configurations of one side of an AutoMTLS pair: it presents its own [`Identity`]
/// and accepts exactly the peer's certificate, as client (host to plugin, plugin to a broker
/// service) and as server (plugin, broker services).
#[derive(Debug, Clone)]
pub struct MutualTls {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
}

impl MutualTls {
    /// Presents `own` and pins `peer_cert_der`, which must be an X.509 certificate.
    pub fn new(own: &Identity, peer_cert_der: &[u8]) -> Result<Self> {
        check_certificate(peer_cert_der).map_err(|reason| PluginError::Tls(format!("peer certificate: {reason}")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let pinned = Arc::new(PinnedCertificate {
            cert: CertificateDer::from(peer_cert_der.to_vec()),
            algorithms: provider.signature_verification_algorithms,
        });
        let tls_err = |what: &str, e: rustls::Error| PluginError::Tls(format!("cannot configure the TLS {what}: {e}"));
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("client", e))?
            .dangerous()
            .with_custom_certificate_verifier(pinned.clone())
            .with_client_auth_cert(vec![own.cert.clone()], PrivateKeyDer::Pkcs8(own.key.clone_key()))
            .map_err(|e| tls_err("client", e))?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("server", e))?
            .with_client_cert_verifier(pinned)
            .with_single_cert(vec![own.cert.clone()], PrivateKeyDer::Pkcs8(own.key.clone_key()))
            .map_err(|e| tls_err("server", e))?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self { client: Arc::new(client), server: Arc::new(server) })
    }
}

/// Accepts exactly one certificate (compared byte for byte) and checks the handshake
/// signatures made with its key. No chain, name or validity checks: the certificate was
/// handed over out of band, and webpki would refuse a CA certificate as an end entity.
#[derive(Debug)]
struct PinnedCertificate {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    fn check(&self, presented: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.cert.as_ref() && intermediates.is_empty() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_p521_certificates_that_pin_each_other() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.cert_der(), b.cert_der());
        assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(certificate_from_pem(a.cert_pem()).unwrap(), a.cert_der());
        check_certificate(a.cert_der()).unwrap();
        MutualTls::new(&a, b.cert_der()).unwrap();
    }

    #[test]
    fn garbage_certificates_are_refused() {
        let a = Identity::generate().unwrap();
        let err = MutualTls::new(&a, b"hello").unwrap_err().to_string();
        assert!(err.contains("peer certificate: not an X.509 certificate"), "{err}");
        let err = certificate_from_pem("not pem").unwrap_err().to_string();
        assert!(err.contains("PLUGIN_CLIENT_CERT holds no PEM certificate"), "{err}");
    }
}
