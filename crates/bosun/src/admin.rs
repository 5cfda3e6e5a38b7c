//! The admin HTTP server: `/healthz`, `/metrics` (Prometheus text), `/status` (JSON), and the
//! REST API under `/api/v1/` ([`crate::api`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Serialize;

use bosun_opensergo::{OpenSergoServer, OpenSergoStatus};
use bosun_store::{Revision, Store};

use crate::api::{self, ApiState};
use crate::directory::{DirectoryStatus, DirectoryWriter};
use crate::source::{SnapshotSource, SourceStatus};
use crate::status::{StreamStatus, XdsStatus};

/// What the admin handlers read.
pub struct AdminState {
    pub registry: Registry,
    pub xds: Arc<XdsStatus>,
    pub source: Arc<SnapshotSource>,
    pub store: Arc<dyn Store>,
    pub directory: Option<Arc<DirectoryWriter>>,
    pub api: Arc<ApiState>,
    pub opensergo: OpenSergoServer,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state.clone())
        .merge(api::router(state.api.clone()))
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response(),
    }
}

#[derive(Serialize)]
struct StatusBody {
    store: StoreStatus,
    resources: SourceStatus,
    directory: Option<DirectoryStatus>,
    nodes: Vec<StreamStatus>,
    opensergo: OpenSergoStatus,
}

#[derive(Serialize)]
struct StoreStatus {
    backend: String,
    /// The store's revision now (`None` if the store did not answer).
    revision: Option<Revision>,
    /// Why the store did not answer.
    error: Option<String>,
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<StatusBody> {
    let (revision, error) = match state.store.revision().await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Json(StatusBody {
        store: StoreStatus { backend: state.store.backend().to_owned(), revision, error },
        resources: state.source.status(),
        directory: state.directory.as_ref().map(|d| d.status()),
        nodes: state.xds.streams(),
        opensergo: state.opensergo.status(),
    })
}
