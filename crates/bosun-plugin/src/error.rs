//! The errors of the plugin host.

use std::time::Duration;

/// A result with a [`PluginError`].
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// What can go wrong while launching, calling or stopping a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin binary could not be started.
    #[error("cannot start plugin {path}: {source}")]
    Spawn {
        /// The binary.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No handshake line within the timeout.
    #[error("the plugin printed no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    /// The plugin exited before printing its handshake: typically a wrong magic cookie.
    #[error(
        "the plugin exited before its handshake ({status}) — a wrong magic cookie or a crash? \
         its stderr ends with: {stderr_tail}"
    )]
    ExitedBeforeHandshake {
        /// The exit status, as text.
        status: String,
        /// The last lines the plugin wrote on stderr.
        stderr_tail: String,
    },
    /// The plugin wrote something else on stdout before the handshake line.
    #[error("the plugin printed `{0}` on stdout before its handshake")]
    JunkBeforeHandshake(String),
    /// A line that looks like a handshake but is not a valid one.
    #[error("invalid handshake line `{line}`: {reason}")]
    InvalidHandshake {
        /// The line.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin speaks an application protocol version the host did not offer.
    #[error("the plugin speaks protocol version {got}; supported: {supported:?}")]
    UnsupportedVersion {
        /// The plugin's version.
        got: u32,
        /// The versions the host offered.
        supported: Vec<u32>,
    },
    /// Connecting to the plugin's gRPC server failed.
    #[error("cannot connect to the plugin at {address}: {source}")]
    Connect {
        /// The address from the handshake.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The plugin's health service did not answer SERVING.
    #[error("the plugin is not healthy: {0}")]
    Unhealthy(String),
    /// A call to the plugin failed.
    #[error("plugin call failed: {0}")]
    Call(#[from] tonic::Status),
    /// The plugin is not running (starting, restarting or failed).
    #[error("the plugin is not running ({0})")]
    NotRunning(String),
    /// The plugin answered something the host cannot use.
    #[error("invalid answer from the plugin: {0}")]
    InvalidAnswer(String),
    /// Building a plugin from source failed.
    #[error("cannot build the plugin in {dir}: {message}")]
    Build {
        /// The source directory.
        dir: String,
        /// What went wrong, with the compiler's output.
        message: String,
    },
    /// The plugin started but refused to be prepared (for example its configuration).
    #[error("the plugin refused to start: {0}")]
    Prepare(String),
    /// AutoMTLS could not be set up: a certificate that cannot be made or read.
    #[error("AutoMTLS: {0}")]
    Tls(String),
    /// A broker operation failed (the stream is closed, no offer arrived in time, ...).
    #[error("plugin broker: {0}")]
    Broker(String),
    /// An I/O error talking to the plugin process.
    #[error("plugin I/O: {0}")]
    Io(#[from] std::io::Error),
}
