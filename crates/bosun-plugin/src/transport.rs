//! The transport host and plugins share: dialing a unix socket or TCP address, with or without
//! AutoMTLS, into a tonic [`Channel`]; and serving tonic routes on a listener until stopped.

use std::io;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Server};

use crate::error::{PluginError, Result};
use crate::handshake::Network;
use crate::mtls::{HOST_NAME, MutualTls};

/// How long dialing (connect and TLS handshake) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server waits for a client to finish its TLS handshake.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for calls in flight.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A byte stream: a unix or TCP socket, or TLS over one.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Socket for T {}

/// A connection accepted by a plugin or broker server.
pub(crate) type Accepted = Box<dyn Socket>;

impl Connected for Box<dyn Socket> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// A listening socket of a plugin or broker server.
pub(crate) enum Listener {
    /// A unix socket.
    Unix(UnixListener),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<Box<dyn Socket>> {
        Ok(match self {
            Listener::Unix(l) => Box::new(l.accept().await?.0),
            Listener::Tcp(l) => {
                let socket = l.accept().await?.0;
                socket.set_nodelay(true)?;
                Box::new(socket)
            }
        })
    }
}

/// The connections of a server on `listener`, after their TLS handshake when `tls` is set.
///
/// Handshakes run concurrently, each bounded by [`ACCEPT_TIMEOUT`]; a client that does not
/// present the pinned certificate is refused (and logged). Accepting stops when the stream is
/// dropped.
pub(crate) fn incoming(
    listener: Listener,
    tls: Option<MutualTls>,
) -> ReceiverStream<std::result::Result<Accepted, io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server));
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                s = listener.accept() => s,
                () = tx.closed() => return,
            };
            let socket = match socket {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(acceptor) = acceptor.clone() else {
                if tx.send(Ok(socket)).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(ACCEPT_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(Box::new(stream) as Accepted)).await;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "refused a connection: TLS handshake failed"),
                    Err(_) => tracing::warn!("refused a connection: no TLS handshake within {ACCEPT_TIMEOUT:?}"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Opens a gRPC channel to a plugin (or broker service) at `network`: plaintext, or with
/// mutual TLS when `tls` is given. The channel reconnects by itself when needed.
pub async fn connect(network: &Network, tls: Option<&MutualTls>) -> Result<Channel> {
    let target = network.clone();
    let connector = tls.map(|t| tokio_rustls::TlsConnector::from(t.client.clone()));
    // The URI is required by tonic but unused: the connector dials `target`.
    let endpoint = Endpoint::from_static("http://plugin.invalid");
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let target = target.clone();
            let connector = connector.clone();
            async move {
                match tokio::time::timeout(DIAL_TIMEOUT, dial(&target, connector)).await {
                    Ok(r) => r.map(TokioIo::new),
                    Err(_) => {
                        Err(io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {DIAL_TIMEOUT:?}")))
                    }
                }
            }
        }))
        .await
        .map_err(|source| PluginError::Connect { address: network.address().to_owned(), source })
}

async fn dial(target: &Network, tls: Option<tokio_rustls::TlsConnector>) -> io::Result<Box<dyn Socket>> {
    let socket: Box<dyn Socket> = match target {
        Network::Unix(path) => Box::new(UnixStream::connect(path).await?),
        Network::Tcp(addr) => {
            let socket = TcpStream::connect(addr).await?;
            socket.set_nodelay(true)?;
            Box::new(socket)
        }
    };
    match tls {
        None => Ok(socket),
        Some(connector) => {
            Ok(Box::new(connector.connect(ServerName::try_from(HOST_NAME).map_err(io::Error::other)?, socket).await?))
        }
    }
}

/// Serves `routes` on `listener` (with mutual TLS when `tls` is set) until `stop` turns true
/// or its sender is dropped; calls in flight then get [`SHUTDOWN_GRACE`] to finish.
pub(crate) async fn serve(
    routes: Routes,
    listener: Listener,
    tls: Option<MutualTls>,
    stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let mut graceful = stop.clone();
    let mut hard = stop;
    let server =
        Server::builder().add_routes(routes).serve_with_incoming_shutdown(incoming(listener, tls), async move {
            let _ = graceful.wait_for(|s| *s).await;
        });
    tokio::select! {
        r = server => r,
        () = async {
            let _ = hard.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}

/// A fresh directory for a plugin's or a brokered socket, under `PLUGIN_UNIX_SOCKET_DIR` if
/// set (as go-plugin does).
pub(crate) fn socket_dir() -> io::Result<tempfile::TempDir> {
    match std::env::var_os("PLUGIN_UNIX_SOCKET_DIR") {
        Some(parent) => tempfile::Builder::new().prefix("plugin").tempdir_in(parent),
        None => tempfile::Builder::new().prefix("plugin").tempdir(),
    }
}
