//! How the xDS, admin and OpenSergo ports accept connections: TLS (reloaded from files), a bound
//! on open connections, TCP_NODELAY, and the xDS port's HTTP/2 keepalive and limits.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::tls::{ReloadingTls, TlsFiles};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags for the xDS, admin and OpenSergo ports (flattened into `bosun serve`'s flags).
#[derive(Debug, Default, clap::Args)]
pub struct ListenArgs {
    /// The xDS port's certificate chain (PEM); with --xds-tls-key, xDS is served over TLS.
    #[arg(long, value_name = "FILE")]
    pub xds_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --xds-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub xds_tls_key: Option<PathBuf>,
    /// CA certificates (PEM): xDS clients must present a certificate signed by one (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub xds_tls_client_ca: Option<PathBuf>,
    /// The admin port's certificate chain (PEM); with --admin-tls-key, the admin API is HTTPS.
    #[arg(long, value_name = "FILE")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --admin-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub admin_tls_key: Option<PathBuf>,
    /// CA certificates (PEM): admin clients must present a certificate signed by one.
    #[arg(long, value_name = "FILE")]
    pub admin_tls_client_ca: Option<PathBuf>,
    /// Seconds between HTTP/2 pings on an idle xDS connection [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub xds_keepalive_interval: Option<u64>,
    /// Seconds to wait for a ping's answer before the xDS connection is closed [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub xds_keepalive_timeout: Option<u64>,
    /// The largest xDS request message accepted, in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub xds_max_message_bytes: Option<usize>,
    /// Concurrent streams allowed on one xDS connection [default: 100].
    #[arg(long, value_name = "N")]
    pub xds_max_streams_per_connection: Option<u32>,
    /// Open xDS connections allowed; more are closed at once [default: 10000].
    #[arg(long, value_name = "N")]
    pub xds_max_connections: Option<usize>,
    /// Seconds between heartbeats that renew the TTLs of resources that have one (label
    /// `bosun.io/xds-ttl`), for clients that honour TTLs; 0: no heartbeats [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub xds_heartbeat_interval: Option<u64>,
    /// Open admin connections allowed; more are closed at once [default: 256].
    #[arg(long, value_name = "N")]
    pub admin_max_connections: Option<usize>,
    /// The OpenSergo port's certificate chain (PEM); with --opensergo-tls-key, the OpenSergo
    /// transport is served over TLS.
    #[arg(long, value_name = "FILE")]
    pub opensergo_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --opensergo-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub opensergo_tls_key: Option<PathBuf>,
    /// CA certificates (PEM): OpenSergo SDKs must present a certificate signed by one.
    #[arg(long, value_name = "FILE")]
    pub opensergo_tls_client_ca: Option<PathBuf>,
    /// Open OpenSergo connections allowed; more are closed at once [default: 10000].
    #[arg(long, value_name = "N")]
    pub opensergo_max_connections: Option<usize>,
}

/// The `[xds]` table of `bosun.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsFile {
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    keepalive_interval_seconds: Option<u64>,
    keepalive_timeout_seconds: Option<u64>,
    max_message_bytes: Option<usize>,
    max_streams_per_connection: Option<u32>,
    max_connections: Option<usize>,
    heartbeat_interval_seconds: Option<u64>,
}

/// The `[admin]` and `[opensergo]` tables of `bosun.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortFile {
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_connections: Option<usize>,
}

/// How one port accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// TLS files; none: plain TCP.
    pub tls: Option<TlsFiles>,
    /// Open connections allowed.
    pub max_connections: usize,
}

/// The xDS port's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsPortConfig {
    /// TLS and the connection bound.
    pub port: PortConfig,
    /// Time between HTTP/2 pings.
    pub keepalive_interval: Duration,
    /// Time to wait for a ping's answer.
    pub keepalive_timeout: Duration,
    /// The largest request message, in bytes.
    pub max_message_bytes: usize,
    /// Concurrent streams on one connection.
    pub max_streams_per_connection: u32,
    /// Time between heartbeats of resources with a TTL (zero: none).
    pub heartbeat_interval: Duration,
}

/// The port tables of `bosun.toml`.
#[derive(Debug, Default)]
pub struct PortFiles {
    /// `[xds]`.
    pub xds: XdsFile,
    /// `[admin]`.
    pub admin: PortFile,
    /// `[opensergo]`.
    pub opensergo: PortFile,
}

/// How each port accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// The xDS port.
    pub xds: XdsPortConfig,
    /// The admin port.
    pub admin: PortConfig,
    /// The OpenSergo transport's port.
    pub opensergo: PortConfig,
}

/// Merges the flags over the file's `[xds]`, `[admin]` and `[opensergo]` tables over the
/// defaults. `relative_to_file` resolves a path from the file.
pub fn resolve(
    args: ListenArgs,
    files: PortFiles,
    relative_to_file: &dyn Fn(Option<PathBuf>) -> Option<PathBuf>,
) -> anyhow::Result<Ports> {
    let PortFiles { xds, admin, opensergo } = files;
    let xds_tls = tls_files(
        "xds",
        args.xds_tls_cert.or_else(|| relative_to_file(xds.tls_cert)),
        args.xds_tls_key.or_else(|| relative_to_file(xds.tls_key)),
        args.xds_tls_client_ca.or_else(|| relative_to_file(xds.tls_client_ca)),
    )?;
    let admin_tls = tls_files(
        "admin",
        args.admin_tls_cert.or_else(|| relative_to_file(admin.tls_cert)),
        args.admin_tls_key.or_else(|| relative_to_file(admin.tls_key)),
        args.admin_tls_client_ca.or_else(|| relative_to_file(admin.tls_client_ca)),
    )?;
    let opensergo_tls = tls_files(
        "opensergo",
        args.opensergo_tls_cert.or_else(|| relative_to_file(opensergo.tls_cert)),
        args.opensergo_tls_key.or_else(|| relative_to_file(opensergo.tls_key)),
        args.opensergo_tls_client_ca.or_else(|| relative_to_file(opensergo.tls_client_ca)),
    )?;
    let positive = |name: &str, value: u64| {
        anyhow::ensure!(value > 0, "--{name}: must be at least 1");
        Ok(value)
    };
    let xds_config = XdsPortConfig {
        port: PortConfig {
            tls: xds_tls,
            max_connections: positive(
                "xds-max-connections",
                args.xds_max_connections.or(xds.max_connections).unwrap_or(10_000) as u64,
            )? as usize,
        },
        keepalive_interval: Duration::from_secs(positive(
            "xds-keepalive-interval",
            args.xds_keepalive_interval.or(xds.keepalive_interval_seconds).unwrap_or(30),
        )?),
        keepalive_timeout: Duration::from_secs(positive(
            "xds-keepalive-timeout",
            args.xds_keepalive_timeout.or(xds.keepalive_timeout_seconds).unwrap_or(10),
        )?),
        max_message_bytes: positive(
            "xds-max-message-bytes",
            args.xds_max_message_bytes.or(xds.max_message_bytes).unwrap_or(4 << 20) as u64,
        )? as usize,
        max_streams_per_connection: positive(
            "xds-max-streams-per-connection",
            u64::from(args.xds_max_streams_per_connection.or(xds.max_streams_per_connection).unwrap_or(100)),
        )? as u32,
        heartbeat_interval: Duration::from_secs(
            args.xds_heartbeat_interval.or(xds.heartbeat_interval_seconds).unwrap_or(0),
        ),
    };
    let admin_config = PortConfig {
        tls: admin_tls,
        max_connections: positive(
            "admin-max-connections",
            args.admin_max_connections.or(admin.max_connections).unwrap_or(256) as u64,
        )? as usize,
    };
    let opensergo_config = PortConfig {
        tls: opensergo_tls,
        max_connections: positive(
            "opensergo-max-connections",
            args.opensergo_max_connections.or(opensergo.max_connections).unwrap_or(10_000) as u64,
        )? as usize,
    };
    Ok(Ports { xds: xds_config, admin: admin_config, opensergo: opensergo_config })
}

fn tls_files(
    port: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Option<TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key, client_ca })),
        (Some(_), None) => anyhow::bail!("--{port}-tls-key: required with --{port}-tls-cert"),
        (None, Some(_)) => anyhow::bail!("--{port}-tls-cert: required with --{port}-tls-key"),
        (None, None) => {
            anyhow::ensure!(
                client_ca.is_none(),
                "--{port}-tls-client-ca: needs --{port}-tls-cert and --{port}-tls-key"
            );
            Ok(None)
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: &'static str,
}

/// Connection metrics of the ports, by port (`xds`, `admin`, `opensergo`).
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Family<PortLabel, Gauge>,
    refused: Family<PortLabel, Counter>,
    handshake_failures: Family<PortLabel, Counter>,
}

impl ConnectionMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics =
            Self { open: Family::default(), refused: Family::default(), handshake_failures: Family::default() };
        registry.register("bosun_connections_open", "Connections open, by port", metrics.open.clone());
        registry.register(
            "bosun_connections_refused",
            "Connections closed at once because the port had its maximum open",
            metrics.refused.clone(),
        );
        registry.register(
            "bosun_tls_handshake_failures",
            "Connections closed because their TLS handshake failed or timed out",
            metrics.handshake_failures.clone(),
        );
        metrics
    }
}

/// A port's accepted connections, ready for HTTP: for tonic as a stream
/// ([`Accepted::into_stream`]), for axum as a [`axum::serve::Listener`].
pub struct Accepted {
    rx: mpsc::Receiver<Connection>,
    local: SocketAddr,
}

impl Accepted {
    /// The connections as a stream for `tonic::transport::Server::serve_with_incoming*`.
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<Connection>> + Send + 'static {
        futures::stream::unfold(self.rx, |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) })
    }
}

impl axum::serve::Listener for Accepted {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        match self.rx.recv().await {
            Some(conn) => {
                let peer = conn.peer;
                (conn, peer)
            }
            // The accept loop ended (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The listening sockets of the three ports.
pub struct Listeners {
    /// The xDS port (HTTP/2, gRPC).
    pub xds: TcpListener,
    /// The admin port (HTTP/1.1).
    pub admin: TcpListener,
    /// The OpenSergo transport's port (HTTP/2, gRPC).
    pub opensergo: TcpListener,
}

/// The accepted connections of the three ports.
pub struct AcceptedPorts {
    /// The xDS port's.
    pub xds: Accepted,
    /// The admin port's.
    pub admin: Accepted,
    /// The OpenSergo port's.
    pub opensergo: Accepted,
}

/// Starts accepting on every port as `ports` says, with their metrics in `registry`.
pub fn accept_all(
    listeners: Listeners,
    ports: &Ports,
    registry: &mut Registry,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<AcceptedPorts> {
    let metrics = ConnectionMetrics::new(registry);
    let Listeners { xds, admin, opensergo } = listeners;
    Ok(AcceptedPorts {
        xds: accept("xds", xds, &ports.xds.port, &[b"h2"], metrics.clone(), shutdown.clone())?,
        admin: accept("admin", admin, &ports.admin, &[b"http/1.1"], metrics.clone(), shutdown.clone())?,
        opensergo: accept("opensergo", opensergo, &ports.opensergo, &[b"h2"], metrics, shutdown.clone())?,
    })
}

/// Starts accepting on `listener`: at most `config.max_connections` open at once, TLS when
/// configured (its files watched until `shutdown`), with `alpn` offered.
pub fn accept(
    port: &'static str,
    listener: TcpListener,
    config: &PortConfig,
    alpn: &[&'static [u8]],
    metrics: ConnectionMetrics,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Accepted> {
    let tls = match &config.tls {
        Some(files) => {
            let tls = ReloadingTls::load(port, files.clone(), alpn)?;
            tokio::spawn(tls.clone().watch(shutdown.clone()));
            Some(tls)
        }
        None => None,
    };
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let max = config.max_connections;
    tokio::spawn(accept_loop(AcceptLoop { port, listener, tls, slots, max, metrics, tx }, shutdown));
    Ok(Accepted { rx, local })
}

struct AcceptLoop {
    port: &'static str,
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    slots: Arc<Semaphore>,
    max: usize,
    metrics: ConnectionMetrics,
    tx: mpsc::Sender<Connection>,
}

async fn accept_loop(l: AcceptLoop, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let label = PortLabel { port: l.port };
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = l.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(port = l.port, "accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return,
        };
        let Ok(slot) = l.slots.clone().try_acquire_owned() else {
            l.metrics.refused.get_or_create(&label).inc();
            tracing::warn!(port = l.port, %peer, max = l.max, "connection refused: the port has its maximum open");
            drop(tcp);
            continue;
        };
        // Without it Nagle and delayed ACKs add ~40 ms to every subscription round trip.
        let _ = tcp.set_nodelay(true);
        let open = OpenGuard::new(l.metrics.open.get_or_create(&label).clone());
        let Some(tls) = &l.tls else {
            let conn = Connection { io: Io::Plain(tcp), peer, _slot: slot, _open: open };
            if l.tx.send(conn).await.is_err() {
                return;
            }
            continue;
        };
        let (acceptor, tx, port) = (tokio_rustls::TlsAcceptor::from(tls.current()), l.tx.clone(), l.port);
        let failures = l.metrics.handshake_failures.get_or_create(&label).clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let conn = Connection { io: Io::Tls(Box::new(stream)), peer, _slot: slot, _open: open };
                    let _ = tx.send(conn).await;
                }
                Ok(Err(e)) => {
                    failures.inc();
                    tracing::info!(port, %peer, "TLS handshake failed: {e}");
                }
                Err(_) => {
                    failures.inc();
                    tracing::info!(port, %peer, "TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}");
                }
            }
        });
    }
}

/// Returns once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Keeps `bosun_connections_open` right for as long as a connection lives.
struct OpenGuard(Gauge);

impl OpenGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection (plain or TLS); it holds its place in the port's bound until dropped.
pub struct Connection {
    io: Io,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    _open: OpenGuard,
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let tcp = match &self.io {
            Io::Plain(tcp) => tcp,
            Io::Tls(tls) => tls.get_ref().0,
        };
        tonic::transport::server::TcpConnectInfo { local_addr: tcp.local_addr().ok(), remote_addr: Some(self.peer) }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn no_file(p: Option<PathBuf>) -> Option<PathBuf> {
        p
    }

    #[test]
    fn flags_are_checked_and_named() {
        let Ports { xds, admin, opensergo } =
            resolve(ListenArgs::default(), PortFiles::default(), &no_file).expect("defaults");
        assert_eq!(opensergo.max_connections, 10_000);
        assert_eq!(opensergo.tls, None);
        assert_eq!(xds.keepalive_interval, Duration::from_secs(30));
        assert_eq!(xds.max_message_bytes, 4 << 20);
        assert_eq!(xds.port.tls, None);
        assert_eq!(admin.max_connections, 256);

        let only_cert = ListenArgs { xds_tls_cert: Some("c.pem".into()), ..Default::default() };
        let err = resolve(only_cert, PortFiles::default(), &no_file).expect_err("no key");
        assert!(err.to_string().contains("--xds-tls-key"), "{err}");
        let only_ca = ListenArgs { admin_tls_client_ca: Some("ca.pem".into()), ..Default::default() };
        let err = resolve(only_ca, PortFiles::default(), &no_file).expect_err("no cert");
        assert!(err.to_string().contains("--admin-tls-client-ca"), "{err}");
        let zero = ListenArgs { xds_keepalive_timeout: Some(0), ..Default::default() };
        let err = resolve(zero, PortFiles::default(), &no_file).expect_err("zero");
        assert!(err.to_string().contains("--xds-keepalive-timeout"), "{err}");

        let file = XdsFile {
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            max_connections: Some(7),
            ..Default::default()
        };
        let flags = ListenArgs { xds_max_connections: Some(9), ..Default::default() };
        let files = PortFiles { xds: file, ..Default::default() };
        let Ports { xds, .. } = resolve(flags, files, &|p| p.map(|p| Path::new("/etc/bosun").join(p))).expect("file");
        assert_eq!(xds.port.max_connections, 9, "flags win over the file");
        assert_eq!(xds.port.tls.map(|t| t.cert), Some(PathBuf::from("/etc/bosun/c")));
    }

    #[test]
    fn bosun_toml_tables_are_read_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bosun.toml");
        std::fs::write(
            &path,
            "[xds]\ntls_cert = \"x.crt\"\ntls_key = \"x.key\"\nkeepalive_interval_seconds = 5\n\
             [admin]\ntls_cert = \"a.crt\"\ntls_key = \"a.key\"\ntls_client_ca = \"ca.crt\"\nmax_connections = 3\n\
             [opensergo]\ntls_cert = \"o.crt\"\ntls_key = \"o.key\"\nmax_connections = 4\n",
        )
        .expect("write");
        let args = crate::config::ServeArgs { config: Some(path.clone()), ..Default::default() };
        let config = crate::config::ServeConfig::load(args).expect("load");
        assert_eq!(config.ports.xds.keepalive_interval, Duration::from_secs(5));
        assert_eq!(config.ports.xds.port.tls.map(|t| t.key), Some(dir.path().join("x.key")));
        assert_eq!(config.ports.admin.max_connections, 3);
        assert_eq!(config.ports.admin.tls.and_then(|t| t.client_ca), Some(dir.path().join("ca.crt")));
        assert_eq!(config.ports.opensergo.max_connections, 4);
        assert_eq!(config.ports.opensergo.tls.map(|t| t.cert), Some(dir.path().join("o.crt")));

        std::fs::write(&path, "[xds]\ntls_certificate = \"x.crt\"\n").expect("write");
        let args = crate::config::ServeArgs { config: Some(path), ..Default::default() };
        let err = crate::config::ServeConfig::load(args).expect_err("unknown key");
        assert!(format!("{err:#}").contains("tls_certificate"), "{err:#}");
    }
}
