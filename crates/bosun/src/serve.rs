//! `bosun serve`: the store, the snapshots that follow it, the xDS server, the OpenSergo transport
//! server, the resources directory as a writer, and the admin API, with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bosun_opensergo::OpenSergoServer;
use bosun_xds::XdsServer;
use bosun_xds::csds::CsdsService;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::api::ApiState;
use crate::config::ServeConfig;
use crate::directory::{self, DirectoryWriter};
use crate::listen;
use crate::plugins::Plugins;
use crate::source::{self, SnapshotSource};
use crate::status::XdsStatus;

/// How long open streams get to finish after a shutdown signal. xDS streams never end on their
/// own, so the server closes them after this.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long the store may take to be read the first time before `bosun serve` gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs until SIGINT or SIGTERM.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (store, storage_plugin) = crate::store::open(&config.store, &config.plugins, &config.plugin_build_dir).await?;
    tracing::info!(backend = store.backend(), "store open");
    // Stream plugins write through the API state, which exists further down.
    let (api_slot, api_rx) = tokio::sync::watch::channel(None);
    let plugins = Plugins::start(&config.plugins, &config.plugin_build_dir, store.clone(), api_rx, storage_plugin)?;
    let mut registry = Registry::default();
    let xds_status = Arc::new(XdsStatus::new(&mut registry));
    let source = Arc::new(SnapshotSource::new(&mut registry));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    // The directory writes first, so that the first snapshots already hold what it says.
    let directory = match &config.resources {
        Some(dir) => {
            anyhow::ensure!(dir.is_dir(), "--resources {}: not a directory", dir.display());
            let writer = Arc::new(DirectoryWriter::new(dir.clone(), store.clone()));
            // A bad directory at start is not fatal, like a bad edit later: the server runs on
            // what the store has and says what is wrong.
            writer.sync().await;
            Some(writer)
        }
        None => None,
    };
    let mut tasks = vec![tokio::spawn(source::follow_store(store.clone(), source.clone(), shutdown_rx.clone()))];
    let opensergo = OpenSergoServer::new("bosun");
    let (follower, followed, rx) = (opensergo.clone(), store.clone(), shutdown_rx.clone());
    tasks.push(tokio::spawn(async move { follower.follow(followed, rx).await }));
    if let Some(writer) = &directory {
        let (writer, rx) = (writer.clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = directory::watch(writer, rx).await {
                tracing::error!("watching the resources directory failed: {e:#}");
            }
        }));
    }
    // Serving before the store was read would send every node an empty config.
    tokio::time::timeout(STARTUP_TIMEOUT, source.wait_ready())
        .await
        .with_context(|| format!("the {} store could not be read within {STARTUP_TIMEOUT:?}", store.backend()))?;

    let xds_listener =
        TcpListener::bind(config.xds_addr).await.with_context(|| format!("xDS address {}", config.xds_addr))?;
    let admin_listener =
        TcpListener::bind(config.admin_addr).await.with_context(|| format!("admin address {}", config.admin_addr))?;
    let opensergo_listener = TcpListener::bind(config.opensergo_addr)
        .await
        .with_context(|| format!("OpenSergo address {}", config.opensergo_addr))?;
    tracing::info!(xds = %xds_listener.local_addr()?, admin = %admin_listener.local_addr()?,
        opensergo = %opensergo_listener.local_addr()?, "bosun serving");

    let listeners = listen::Listeners { xds: xds_listener, admin: admin_listener, opensergo: opensergo_listener };
    let incoming = listen::accept_all(listeners, &config.ports, &mut registry, &shutdown_rx)?;
    let metadata = Arc::new(bosun_metadata::MetadataCentre::new(store.clone(), config.metadata));
    let server = XdsServer::builder(source.clone())
        .observer(xds_status.clone())
        .control_plane_id("bosun")
        .max_decoding_message_size(config.ports.xds.max_message_bytes)
        .heartbeat_interval(config.ports.xds.heartbeat_interval)
        .build();
    let xds = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(config.ports.xds.keepalive_interval))
        .http2_keepalive_timeout(Some(config.ports.xds.keepalive_timeout))
        .max_concurrent_streams(Some(config.ports.xds.max_streams_per_connection))
        .add_routes(bosun_metadata::grpc::add_services(server.routes(), metadata.clone()))
        .add_service(CsdsService::new(xds_status.tracker()).into_server())
        .serve_with_incoming_shutdown(incoming.xds.into_stream(), wait_for(shutdown_rx.clone()));

    let opensergo_server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(opensergo.service())
        .serve_with_incoming_shutdown(incoming.opensergo.into_stream(), wait_for(shutdown_rx.clone()));

    let api = Arc::new(ApiState {
        store: store.clone(),
        token: config.admin_token.clone(),
        plugins: plugins.clone(),
        statuses: source.statuses(),
    });
    api_slot.send_replace(Some(Arc::downgrade(&api)));
    let admin_state =
        Arc::new(AdminState { registry, xds: xds_status, source, store: store.clone(), directory, api, opensergo });
    let admin = axum::serve(incoming.admin, admin::router(admin_state)).with_graceful_shutdown(wait_for(shutdown_rx));

    let servers = async {
        tokio::try_join!(
            async { xds.await.context("xDS server") },
            async { admin.await.context("admin server") },
            async { opensergo_server.await.context("OpenSergo server") }
        )
    };
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => { result?; }
        signal = shutdown_signal() => {
            tracing::info!("{}, shutting down", signal?);
            let _ = shutdown_tx.send(true);
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut servers).await.is_err() {
                tracing::info!("closing the remaining streams");
            }
        }
    }
    let _ = shutdown_tx.send(true);
    for task in tasks {
        task.abort();
    }
    plugins.shutdown().await;
    store.close().await;
    Ok(())
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").map_err(Into::into),
        _ = term.recv() => Ok("SIGTERM"),
    }
}
