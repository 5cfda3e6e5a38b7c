//! Bosun's plugins: a host for plugin processes speaking hashicorp/go-plugin's gRPC protocol
//! (DESIGN.md §5), with restarts on crash or failed health checks, and a Rust SDK
//! ([`sdk`]) with which a plugin is one trait impl and one [`sdk::serve`] call.
//!
//! - [`Plugin`]: one launched plugin process (handshake, gRPC channel, health, shutdown);
//! - [`PluginHost`]: a supervisor that keeps a plugin running and reports its [`PluginStatus`];
//! - [`TransformClient`]: calls a `transform` plugin.
//!
//! **AutoMTLS** (on by default, [`LaunchConfig::auto_mtls`]): as go-plugin's, host and plugin
//! each make a fresh self-signed ECDSA P-521 certificate for the life of the plugin process;
//! the host hands its certificate to the plugin in `PLUGIN_CLIENT_CERT`, the plugin returns its
//! own in the handshake line, and from then on each side accepts exactly the other's
//! certificate (byte for byte) and nothing else, so no other local process can call the plugin
//! or pose as it. Works with go-plugin plugins (Go) and with the [`sdk`]. See [`mtls`].
//!
//! **The broker** ([`Broker`], go-plugin's `GRPCBroker`): lets either side serve extra gRPC
//! services to the other over new connections, named by a service id. This is how a plugin
//! calls back into Bosun: the host serves a service with [`Broker::accept_and_serve`] on
//! [`Plugin::broker`], and the plugin, holding the [`Broker`] that [`sdk::serve_with`] gives
//! it, [`Broker::dial`]s it. Brokered connections use the same AutoMTLS certificates.

mod broker;
mod error;
mod handshake;
mod logs;
pub mod mtls;
mod process;
pub mod sdk;
mod source;
mod supervisor;
mod transform;
mod transport;

pub use broker::{Broker, DIAL_WAIT};
pub use error::{PluginError, Result};
pub use handshake::{Handshake, Network, parse_handshake};
pub use logs::{LogLevel, LogLine, parse_log_line};
pub use process::{LaunchConfig, Plugin};
pub use source::{SourceBuild, SourceKind};
pub use supervisor::{Executable, HostOptions, OnStart, PluginHost, PluginState, PluginStatus, RestartPolicy, Started};
pub use transform::{TransformClient, TransformOutcome};
pub use transport::connect;

/// The generated protobuf and tonic code.
pub mod proto {
    /// go-plugin's internal services: `plugin.GRPCBroker`, `plugin.GRPCController`,
    /// `plugin.GRPCStdio`.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod go_plugin {
        tonic::include_proto!("plugin");
    }
    /// Bosun's own plugin services.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod bosun {
        tonic::include_proto!("bosun.plugin.v1");
    }
}

/// The service name whose health the host checks, as go-plugin registers it.
pub const HEALTH_SERVICE: &str = "plugin";

/// What host and plugin agree on before they talk: the magic cookie (a guard against running
/// a plugin binary by hand, not a secret) and the application protocol version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// The name of the environment variable carrying the cookie.
    pub magic_cookie_key: String,
    /// The value the plugin expects in it.
    pub magic_cookie_value: String,
    /// The application protocol version (go-plugin's `APP` field).
    pub protocol_version: u32,
}

impl HandshakeConfig {
    /// The handshake of Bosun's own plugin kinds.
    pub fn bosun() -> Self {
        Self {
            magic_cookie_key: "BOSUN_PLUGIN".to_owned(),
            magic_cookie_value: "b0sun-pl4gin-7e3c5a".to_owned(),
            protocol_version: 1,
        }
    }
}
