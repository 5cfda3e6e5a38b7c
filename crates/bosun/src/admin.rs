//! The admin HTTP API: `/healthz`, `/metrics` (Prometheus text) and `/status` (JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::source::{DirectorySource, SourceStatus};
use crate::status::{StreamStatus, XdsStatus};

/// What the admin handlers read.
pub struct AdminState {
    pub registry: Registry,
    pub xds: Arc<XdsStatus>,
    pub source: Arc<DirectorySource>,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
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
    resources: SourceStatus,
    nodes: Vec<StreamStatus>,
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<StatusBody> {
    Json(StatusBody { resources: state.source.status(), nodes: state.xds.streams() })
}
