//! The Rust plugin SDK: a plugin's `main` builds its tonic services and calls [`serve`],
//! which does go-plugin's side of the protocol (cookie check, unix socket, health,
//! controller, stdio, broker, handshake line).
//!
//! ```no_run
//! # async fn f(routes: tonic::service::Routes) {
//! bosun_plugin::sdk::serve(&bosun_plugin::HandshakeConfig::bosun(), routes).await;
//! # }
//! ```

use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream, WatchStream};
use tokio_stream::{Stream, StreamExt as _};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;

use crate::proto::go_plugin::grpc_broker_server::{GrpcBroker, GrpcBrokerServer};
use crate::proto::go_plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::go_plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use crate::proto::go_plugin::{ConnInfo, Empty, StdioData};
use crate::{HEALTH_SERVICE, HandshakeConfig};

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
pub async fn serve(handshake: &HandshakeConfig, routes: Routes) -> ! {
    serve_on(handshake, routes, Listen::Unix).await
}

/// [`serve`], listening where `listen` says.
pub async fn serve_on(handshake: &HandshakeConfig, routes: Routes, listen: Listen) -> ! {
    match run(handshake, routes, listen).await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("plugin error: {e}");
            std::process::exit(1)
        }
    }
}

type ServeFuture = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

async fn run(handshake: &HandshakeConfig, routes: Routes, listen: Listen) -> Result<(), Box<dyn std::error::Error>> {
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

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(HEALTH_SERVICE, ServingStatus::Serving).await;
    let (stop, stopped) = watch::channel(false);
    let routes = routes
        .add_service(health)
        .add_service(GrpcControllerServer::new(Controller { stop: stop.clone() }))
        .add_service(GrpcStdioServer::new(StdioService { stopped: stopped.clone() }))
        .add_service(GrpcBrokerServer::new(Broker { stopped: stopped.clone() }));

    let mut on_stop = stopped.clone();
    let on_stop = async move {
        let _ = on_stop.wait_for(|s| *s).await;
    };
    let server = Server::builder().add_routes(routes);
    // The socket directory lives as long as the server.
    let mut _socket_dir = None;
    let (network, address, server): (_, _, ServeFuture) = match listen {
        Listen::Unix => {
            let dir = match std::env::var_os("PLUGIN_UNIX_SOCKET_DIR") {
                Some(parent) => tempfile::Builder::new().prefix("plugin").tempdir_in(parent)?,
                None => tempfile::Builder::new().prefix("plugin").tempdir()?,
            };
            let socket = dir.path().join("plugin.sock");
            let listener = tokio::net::UnixListener::bind(&socket)?;
            _socket_dir = Some(dir);
            let incoming = UnixListenerStream::new(listener);
            ("unix", socket.display().to_string(), Box::pin(server.serve_with_incoming_shutdown(incoming, on_stop)))
        }
        Listen::Tcp => {
            let listener = bind_tcp().await?;
            let address = listener.local_addr()?.to_string();
            let incoming = TcpListenerStream::new(listener);
            ("tcp", address, Box::pin(server.serve_with_incoming_shutdown(incoming, on_stop)))
        }
    };
    let line = format!("1|{}|{network}|{address}|grpc|\n", handshake.protocol_version);
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
    let mut on_stop_grace = stopped;
    // A graceful stop waits for calls in flight, but not forever.
    tokio::select! {
        r = server => r?,
        () = async {
            let _ = on_stop_grace.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
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

/// How long a stopping plugin waits for calls in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

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

/// `plugin.GRPCBroker`: accepts the host's stream and offers nothing yet.
struct Broker {
    stopped: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    type StartStreamStream = BoxStream<ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(info)) = incoming.message().await {
                tracing::debug!(service_id = info.service_id, "broker offer ignored");
            }
        });
        Ok(Response::new(until_stopped(self.stopped.clone())))
    }
}
