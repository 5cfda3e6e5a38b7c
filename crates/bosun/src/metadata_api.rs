//! The service metadata centre's entries on the REST API and in `bosun get`:
//!
//! - `GET /api/v1/metadata[?namespace=NS]`: every application's metadata, by revision;
//! - `GET /api/v1/servicedefinitions`: every service definition;
//! - `GET /api/v1/mappings[?namespace=NS]`: every interface with the applications serving it.
//!
//! Each answers `{"items": [...]}`.

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::get;
use bosun_metadata::{MetadataError, listing};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use crate::api::{ApiError, ApiState};
use crate::cli::Output;

/// What a listing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Metadata,
    ServiceDefinitions,
    Mappings,
}

impl Listing {
    /// The listing `bosun get KIND` means, if KIND names one.
    pub fn of_kind(kind: &str) -> Option<Self> {
        match kind.to_ascii_lowercase().as_str() {
            "metadata" | "servicemetadata" => Some(Self::Metadata),
            "servicedefinitions" | "servicedefinition" | "definitions" => Some(Self::ServiceDefinitions),
            "mappings" | "mapping" | "servicemappings" => Some(Self::Mappings),
            _ => None,
        }
    }

    /// The API path, with the namespace filter when one is given.
    pub fn path(self, namespace: Option<&str>) -> String {
        let path = match self {
            Self::Metadata => "/api/v1/metadata",
            Self::ServiceDefinitions => "/api/v1/servicedefinitions",
            Self::Mappings => "/api/v1/mappings",
        };
        match namespace {
            Some(ns) if self != Self::ServiceDefinitions => format!("{path}?namespace={}", crate::cli::segment(ns)),
            _ => path.to_owned(),
        }
    }

    /// Prints an API answer as a table (one line per entry, values shortened) or in full.
    pub fn print(self, answer: &JsonValue, output: Output) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match output {
            Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?,
            Output::Yaml => write!(out, "{}", serde_yaml::to_string(answer)?)?,
            Output::Table => {
                let text = |item: &JsonValue, field: &str| item[field].as_str().unwrap_or_default().to_owned();
                let items = answer["items"].as_array().map(Vec::as_slice).unwrap_or_default();
                let mut rows = Vec::with_capacity(items.len() + 1);
                for item in items {
                    rows.push(match self {
                        Self::Metadata => [
                            text(item, "namespace"),
                            text(item, "application_name"),
                            text(item, "revision"),
                            format!("{} bytes", text(item, "metadata_info").len()),
                        ],
                        Self::ServiceDefinitions => [
                            text(item, "identifier"),
                            format!("{} bytes", text(item, "service_definition").len()),
                            String::new(),
                            String::new(),
                        ],
                        Self::Mappings => {
                            let apps = item["application_names"].as_array().into_iter().flatten();
                            let apps: Vec<&str> = apps.filter_map(JsonValue::as_str).collect();
                            [text(item, "namespace"), text(item, "interface_name"), apps.join(","), String::new()]
                        }
                    });
                }
                let header = match self {
                    Self::Metadata => ["NAMESPACE", "APPLICATION", "REVISION", "SIZE"],
                    Self::ServiceDefinitions => ["IDENTIFIER", "SIZE", "", ""],
                    Self::Mappings => ["NAMESPACE", "INTERFACE", "APPLICATIONS", ""],
                };
                rows.insert(0, header.map(String::from));
                write!(out, "{}", crate::cli::aligned(rows))?;
            }
        }
        Ok(())
    }
}

/// The routes, to merge into the `/api/v1` router.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/servicedefinitions", get(definitions))
        .route("/api/v1/mappings", get(mappings))
}

#[derive(Debug, Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
}

async fn metadata(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    let items = listing::list_metadata(state.store.as_ref(), query.namespace.as_deref()).await.map_err(api_error)?;
    Ok(Json(json!({ "items": items })))
}

async fn definitions(State(state): State<Arc<ApiState>>) -> Result<Json<JsonValue>, ApiError> {
    let items = listing::list_definitions(state.store.as_ref()).await.map_err(api_error)?;
    Ok(Json(json!({ "items": items })))
}

async fn mappings(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<JsonValue>, ApiError> {
    let items = listing::list_mappings(state.store.as_ref(), query.namespace.as_deref()).await.map_err(api_error)?;
    Ok(Json(json!({ "items": items })))
}

fn api_error(error: MetadataError) -> ApiError {
    match error {
        MetadataError::Store(e) => e.into(),
        MetadataError::InvalidArgument { field, reason } => {
            bosun_store::StoreError::InvalidArgument { field, reason }.into()
        }
        MetadataError::NotFound(message) => ApiError::new(axum::http::StatusCode::NOT_FOUND, message),
    }
}
