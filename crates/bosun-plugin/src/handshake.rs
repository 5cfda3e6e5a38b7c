//! The handshake line a go-plugin plugin prints on stdout:
//! `CORE|APP|NETWORK|ADDR|PROTOCOL|SERVERCERT[|MUX]`.

use base64::Engine as _;

use crate::error::PluginError;

/// The core protocol version of go-plugin.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// Where the plugin's gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// A unix domain socket path.
    Unix(String),
    /// A TCP `host:port`.
    Tcp(String),
}

impl Network {
    /// The address as printed in the handshake.
    pub fn address(&self) -> &str {
        match self {
            Network::Unix(a) | Network::Tcp(a) => a,
        }
    }
}

/// A parsed handshake line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The application protocol version the plugin chose.
    pub app_version: u32,
    /// Its listening address.
    pub network: Network,
    /// The DER of its AutoMTLS server certificate, if any.
    pub server_cert: Option<Vec<u8>>,
    /// Whether it multiplexes broker connections over the one gRPC connection (7th field).
    pub multiplex: bool,
}

/// Parses a handshake line (6 or 7 fields; the certificate is standard base64, normally
/// unpadded, of an X.509 certificate's DER).
///
/// A line that is not a handshake at all is reported as junk before the handshake; one
/// that is a handshake but malformed, as an invalid handshake.
pub fn parse_handshake(line: &str) -> Result<Handshake, PluginError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let fields: Vec<&str> = line.split('|').collect();
    if fields.len() < 6 || fields.len() > 7 {
        return Err(PluginError::JunkBeforeHandshake(line.to_owned()));
    }
    let invalid = |reason: String| PluginError::InvalidHandshake { line: line.to_owned(), reason };
    let core: u32 = fields[0].parse().map_err(|_| PluginError::JunkBeforeHandshake(line.to_owned()))?;
    if core != CORE_PROTOCOL_VERSION {
        return Err(invalid(format!("core protocol version {core}, expected {CORE_PROTOCOL_VERSION}")));
    }
    let app_version: u32 = fields[1].parse().map_err(|_| invalid(format!("bad app version `{}`", fields[1])))?;
    let address = fields[3].to_owned();
    if address.is_empty() {
        return Err(invalid("empty address".to_owned()));
    }
    let network = match fields[2] {
        "unix" => Network::Unix(address),
        "tcp" => Network::Tcp(address),
        other => return Err(invalid(format!("unknown network `{other}`"))),
    };
    if fields[4] != "grpc" {
        return Err(invalid(format!("protocol `{}`; only grpc is supported", fields[4])));
    }
    let server_cert = match fields[5] {
        "" => None,
        cert => {
            // go-plugin writes no padding; some writers do: accept both.
            let der = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(cert.trim_end_matches('='))
                .map_err(|e| invalid(format!("bad certificate base64: {e}")))?;
            crate::mtls::check_certificate(&der).map_err(|reason| invalid(format!("server certificate: {reason}")))?;
            Some(der)
        }
    };
    let multiplex = match fields.get(6) {
        None | Some(&"false") | Some(&"") => false,
        Some(&"true") => true,
        Some(other) => return Err(invalid(format!("bad multiplex field `{other}`"))),
    };
    Ok(Handshake { app_version, network, server_cert, multiplex })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fields_unix() {
        let h = parse_handshake("1|2|unix|/tmp/plugin123/plugin.sock|grpc|\n").unwrap();
        assert_eq!(h.app_version, 2);
        assert_eq!(h.network, Network::Unix("/tmp/plugin123/plugin.sock".into()));
        assert_eq!(h.server_cert, None);
        assert!(!h.multiplex);
    }

    #[test]
    fn seven_fields_tcp_with_cert() {
        let cert = crate::mtls::Identity::generate().unwrap();
        let der = cert.cert_der();
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(der);
        let padded = base64::engine::general_purpose::STANDARD.encode(der);
        for encoded in [unpadded, padded] {
            let h = parse_handshake(&format!("1|1|tcp|127.0.0.1:1234|grpc|{encoded}|true")).unwrap();
            assert_eq!(h.network, Network::Tcp("127.0.0.1:1234".into()));
            assert_eq!(h.server_cert.as_deref(), Some(der));
            assert!(h.multiplex);
        }
        let h = parse_handshake("1|1|tcp|127.0.0.1:1234|grpc||false").unwrap();
        assert!(!h.multiplex);
    }

    #[test]
    fn junk_lines() {
        for line in ["hello world", "", "a|b|c|d|e|f", "1|1|unix|/x|grpc|c|true|extra"] {
            match parse_handshake(line) {
                Err(PluginError::JunkBeforeHandshake(l)) => assert_eq!(l, line),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_handshakes() {
        for line in [
            "2|1|unix|/x|grpc|",
            "1|x|unix|/x|grpc|",
            "1|1|udp|/x|grpc|",
            "1|1|unix||grpc|",
            "1|1|unix|/x|netrpc|",
            "1|1|unix|/x|grpc|!!!",
            "1|1|unix|/x|grpc|aGVsbG8hIQ",
            "1|1|unix|/x|grpc||maybe",
        ] {
            assert!(matches!(parse_handshake(line), Err(PluginError::InvalidHandshake { .. })), "{line}");
        }
        let err = parse_handshake("1|1|unix|/x|grpc|aGVsbG8hIQ").unwrap_err().to_string();
        assert!(err.contains("server certificate: not an X.509 certificate"), "{err}");
        assert_eq!(
            parse_handshake("1|1|udp|/x|grpc|").unwrap_err().to_string(),
            "invalid handshake line `1|1|udp|/x|grpc|`: unknown network `udp`"
        );
    }
}
