//! The Rust plugin SDK: a plugin's `main` builds its tonic services and calls [`serve`],
//! which does go-plugin's side of the protocol (cookie check, AutoMTLS, unix socket, health,
//! controller, stdio, broker, handshake line). A plugin that calls back into the host uses
//! [`serve_with`], whose closure gets the plugin's [`Broker`] to dial the host's services.
//!
//! ```no_run
//! # async fn f(routes: tonic::service::Routes) {
//! bosun_plugin::sdk::serve(&bosun_plugin::HandshakeConfig::bosun(), routes).await;
//! # }
//! ```

use std::io::Write as _;
use std::pin::Pin;

use base64::Engine as _;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

use crate::broker::BrokerService;
use crate::mtls::{self, Identity, MutualTls};
use crate::proto::go_plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::go_plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::go_plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use crate::proto::go_plugin::{Empty, StdioData};
use crate::transport::{self, Listener};
use crate::{Broker, HEALTH_SERVICE, HandshakeConfig};

/// What a human sees who runs a plugin binary by hand (go-plugin prints the same idea).
const NOT_BY_HAND: &str = "This binary is a plugin. These are not meant to be executed directly.\n\
Please execute the program that consumes these plugins, which will\n\
load any plugins automatically";

/// Where the plugin listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listen {
    /// A unix socket in a fresh temporary directory (under `PLUGIN_UNIX_SOCKET_DIR` if set),
    /// as go-plugin does on unix.
    #[default]
    Unix,
    /// TCP on 127.0.0.1, on the first free port in `PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT`.
    Tcp,
}

/// Serves the plugin on a unix socket until the host asks it to shut down (or
/// SIGTERM/SIGINT), then exits the process. Never returns.
///
/// Without the magic cookie in the environment it prints a message on stderr and exits 1.
/// When the host asks for AutoMTLS (`PLUGIN_CLIENT_CERT`), the plugin makes its own
/// certificate, prints it in the handshake line and accepts only connections that present the
/// host's certificate; a `PLUGIN_CLIENT_CERT` that is not a certificate makes it exit 1.
pub async fn serve(handshake: &HandshakeConfig, routes: Routes) -> ! {
    serve_with(handshake, Listen::Unix, |_| routes).await
}

/// [`serve`], listening where `listen` says.
pub async fn serve_on(handshake: &HandshakeConfig, routes: Routes, listen: Listen) -> ! {
    serve_with(handshake, listen, |_| routes).await
}

/// [`serve_on`] for plugins that call back into the host: `make_routes` gets the plugin's
/// [`Broker`] (to keep in its service handlers) and returns the plugin's services.
pub async fn serve_with(handshake: &HandshakeConfig, listen: Listen, make_routes: impl FnOnce(Broker) -> Routes) -> ! {
    match run(handshake, listen, make_routes).await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("plugin error: {e}");
            std::process::exit(1)
        }
    }
}

async fn run(
    handshake: &HandshakeConfig,
    listen: Listen,
    make_routes: impl FnOnce(Broker) -> Routes,
) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var(&handshake.magic_cookie_key).ok().as_deref() != Some(handshake.magic_cookie_value.as_str()) {
        eprintln!("{NOT_BY_HAND}");
        std::process::exit(1);
    }
    let offered = std::env::var("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
    let mut offered = offered.split(',').filter_map(|v| v.trim().parse::<u32>().ok());
    if !offered.any(|v| v == handshake.protocol_version) {
        // go-plugin answers with its own version anyway; the host then refuses it.
        tracing::warn!(version = handshake.protocol_version, "the host did not offer our protocol version");
    }
    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.trim().is_empty() => {
            let host_cert = mtls::certificate_from_pem(&pem)?;
            let identity = Identity::generate()?;
            Some((MutualTls::new(&identity, &host_cert)?, identity))
        }
        _ => None,
    };

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(HEALTH_SERVICE, ServingStatus::Serving).await;
    let (stop, stopped) = watch::channel(false);
    let (broker, outgoing) = Broker::new(tls.as_ref().map(|(t, _)| t.clone()), stopped.clone());
    let routes = make_routes(broker.clone())
        .add_service(health)
        .add_service(GrpcControllerServer::new(Controller { stop: stop.clone() }))
        .add_service(GrpcStdioServer::new(StdioService { stopped: stopped.clone() }))
        .add_service(GrpcBrokerServer::new(BrokerService::new(broker, outgoing)));

    // The socket directory lives as long as the server.
    let mut _socket_dir = None;
    let (network, address, listener) = match listen {
        Listen::Unix => {
            let dir = transport::socket_dir()?;
            let socket = dir.path().join("plugin.sock");
            let listener = tokio::net::UnixListener::bind(&socket)?;
            _socket_dir = Some(dir);
            ("unix", socket.display().to_string(), Listener::Unix(listener))
        }
        Listen::Tcp => {
            let listener = bind_tcp().await?;
            ("tcp", listener.local_addr()?.to_string(), Listener::Tcp(listener))
        }
    };
    let cert = match &tls {
        Some((_, identity)) => base64::engine::general_purpose::STANDARD_NO_PAD.encode(identity.cert_der()),
        None => String::new(),
    };
    let line = format!("1|{}|{network}|{address}|grpc|{cert}\n", handshake.protocol_version);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    drop(stdout);

    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = stop.send(true);
    });
    transport::serve(routes, listener, tls.map(|(t, _)| t), stopped).await?;
    Ok(())
}

/// Binds 127.0.0.1 on the first free port of the host's range.
async fn bind_tcp() -> std::io::Result<tokio::net::TcpListener> {
    let port = |key: &str, default: u16| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (min, max) = (port("PLUGIN_MIN_PORT", 10_000), port("PLUGIN_MAX_PORT", 25_000));
    for p in min..=max {
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", p)).await {
            return Ok(l);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no free port in {min}..={max}")))
}

/// `plugin.GRPCController`: Shutdown stops the server gracefully.
struct Controller {
    stop: watch::Sender<bool>,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        let _ = self.stop.send(true);
        Ok(Response::new(Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream that sends nothing and ends when the plugin stops, so that it does not hold up
/// a graceful shutdown.
fn until_stopped<T: Send + 'static>(stopped: watch::Receiver<bool>) -> BoxStream<T> {
    Box::pin(WatchStream::new(stopped).filter(|s| *s).take(1).filter_map(|_| None))
}

/// `plugin.GRPCStdio`: this SDK does not redirect stdout or stderr, so the stream stays
/// open and sends nothing (the host reads stderr from the pipe).
struct StdioService {
    stopped: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl GrpcStdio for StdioService {
    type StreamStdioStream = BoxStream<StdioData>;

    async fn stream_stdio(&self, _: Request<Empty>) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(until_stopped(self.stopped.clone())))
    }
}
