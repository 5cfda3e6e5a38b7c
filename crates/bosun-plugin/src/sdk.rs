//! The Rust plugin SDK: a plugin's `main` builds its tonic services and calls [`serve`],
//! which does go-plugin's side of the protocol (cookie check, unix socket, health,
//! controller, stdio, broker, handshake line).
//!
//! ```no_run
//! # async fn f(routes: tonic::service::Routes) {
//! bosun_plugin::sdk::serve(&bosun_plugin::HandshakeConfig::bosun(), routes).await;
//! # }
//! ```

use std::io::Write as _;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::wrappers::{UnixListenerStream, WatchStream};
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

/// Serves the plugin until the host asks it to shut down (or SIGTERM/SIGINT), then exits
/// the process. Never returns.
///
/// Without the magic cookie in the environment it prints a message on stderr and exits 1.
pub async fn serve(handshake: &HandshakeConfig, routes: Routes) -> ! {
    match run(handshake, routes).await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("plugin error: {e}");
            std::process::exit(1)
        }
    }
}

async fn run(handshake: &HandshakeConfig, routes: Routes) -> Result<(), Box<dyn std::error::Error>> {
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

    let dir = tempfile::Builder::new().prefix("plugin").tempdir()?;
    let socket = dir.path().join("plugin.sock");
    let listener = tokio::net::UnixListener::bind(&socket)?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(HEALTH_SERVICE, ServingStatus::Serving).await;
    let (stop, stopped) = watch::channel(false);
    let routes = routes
        .add_service(health)
        .add_service(GrpcControllerServer::new(Controller { stop: stop.clone() }))
        .add_service(GrpcStdioServer::new(StdioService { stopped: stopped.clone() }))
        .add_service(GrpcBrokerServer::new(Broker { stopped: stopped.clone() }));

    let line = format!("1|{}|unix|{}|grpc|\n", handshake.protocol_version, socket.display());
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
    let mut on_stop = stopped.clone();
    let mut on_stop_grace = stopped;
    let server = Server::builder().add_routes(routes).serve_with_incoming_shutdown(
        UnixListenerStream::new(listener),
        async move {
            let _ = on_stop.wait_for(|s| *s).await;
        },
    );
    // A graceful stop waits for calls in flight, but not forever.
    tokio::select! {
        r = server => r?,
        () = async {
            let _ = on_stop_grace.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {}
    }
    drop(dir);
    Ok(())
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
