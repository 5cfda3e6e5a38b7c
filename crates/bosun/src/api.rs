//! The REST API under `/api/v1/` on the admin port: documents in and out of the store.
//!
//! - `GET  /api/v1/kinds`: the kinds Bosun stores.
//! - `GET  /api/v1/resources/{kind}[/{namespace}]?labelSelector=&limit=&continue=`: a list page.
//! - `GET|PUT|DELETE /api/v1/resources/{kind}/{namespace}/{name}`: one document. PUT and DELETE
//!   apply only over `metadata.resourceVersion` / `?resourceVersion=` when given (409 otherwise).
//! - `POST /api/v1/apply` with `{"documents": [...]}`: validates every document, then writes all
//!   of them in one transaction, or nothing.
//!
//! - `GET /api/v1/metadata`, `/api/v1/servicedefinitions`, `/api/v1/mappings`: the metadata
//!   centre's entries (see `metadata_api`).
//!
//! Errors are JSON: `{"error": {"status", "reason", "message", "details": [{"field", "reason"}]}}`.
//! When a token is configured, every write needs `Authorization: Bearer <token>`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use bosun_store::{Expect, Key, ListOptions, Op, Prefix, Selector, Store, StoreError, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};

use crate::documents::{self, DocKind, Document, FieldError};
use crate::plugins::{Plugins, TransformError};
use crate::source::GovernanceStatuses;

/// Bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Documents in one apply: one store transaction.
pub const MAX_APPLY_DOCUMENTS: usize = 100;

/// What the API handlers use.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The bearer token writes need, if one is configured.
    pub token: Option<String>,
    /// Transform plugins see every document before it is written.
    pub plugins: Plugins,
    /// Governance documents' statuses, shown with them.
    pub statuses: Arc<GovernanceStatuses>,
}

/// The `/api/v1` routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/kinds", get(kinds))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/resources/{kind}", get(list_kind))
        .route("/api/v1/resources/{kind}/{namespace}", get(list_namespace))
        .route("/api/v1/resources/{kind}/{namespace}/{*name}", get(get_one).put(put_one).delete(delete_one))
        .merge(crate::metadata_api::routes())
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An API error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    details: Vec<FieldError>,
}

impl From<ApiError> for tonic::Status {
    /// For callers over gRPC (stream plugins): the HTTP status as the nearest gRPC code, the
    /// message followed by every field's problem.
    fn from(e: ApiError) -> Self {
        let mut message = e.message;
        for d in &e.details {
            message.push_str(&format!("; {}: {}", d.field, d.reason));
        }
        match e.status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => tonic::Status::invalid_argument(message),
            StatusCode::CONFLICT => tonic::Status::failed_precondition(message),
            StatusCode::NOT_FOUND => tonic::Status::not_found(message),
            StatusCode::SERVICE_UNAVAILABLE => tonic::Status::unavailable(message),
            _ => tonic::Status::internal(message),
        }
    }
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), details: Vec::new() }
    }

    fn invalid(message: impl Into<String>, details: Vec<FieldError>) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into(), details }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::InvalidArgument { field, reason } => {
                return Self::invalid(e.to_string(), vec![FieldError::new(field.clone(), reason.clone())]);
            }
            StoreError::Conflict { .. } => StatusCode::CONFLICT,
            StoreError::LeaseNotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Compacted { .. } => StatusCode::GONE,
            StoreError::FutureRevision { .. } => StatusCode::BAD_REQUEST,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::new(e.status(), e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = json!({"error": {"status": self.status.as_u16(), "reason": reason, "message": self.message, "details": self.details}});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T = Json<JsonValue>> = Result<T, ApiError>;

async fn authorize(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && request.method() != Method::GET
        && request.method() != Method::HEAD
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "writes need Authorization: Bearer <admin token>")
                    .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn kinds() -> Json<JsonValue> {
    let kinds: Vec<JsonValue> = DocKind::known()
        .iter()
        .map(|kind| match kind {
            DocKind::Envoy(k) => json!({
                "kind": k.name, "apiVersion": kind.api_version(), "type": k.type_url(), "nameField": k.name_field(),
            }),
            DocKind::Governance(k) => json!({
                "kind": k.name(), "apiVersion": kind.api_version(), "plural": k.plural(), "shortNames": k.aliases(),
            }),
        })
        .collect();
    Json(json!({ "kinds": kinds }))
}

async fn plugins(State(state): State<Arc<ApiState>>) -> Json<JsonValue> {
    Json(json!({ "plugins": state.plugins.list() }))
}

/// Passes a validated document through the transform plugins.
async fn transform(state: &ApiState, doc: Document) -> Result<Document, ApiError> {
    state.plugins.transform(doc).await.map_err(|e| match e {
        TransformError::Rejected(details) => ApiError::invalid("refused by a transform plugin", details),
        TransformError::Unavailable(message) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
    })
}

fn kind(name: &str) -> Result<DocKind, ApiError> {
    DocKind::resolve(name).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    label_selector: Option<String>,
    limit: Option<u32>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

async fn list_kind(
    State(state): State<Arc<ApiState>>,
    Path(kind_name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let kind = kind(&kind_name)?;
    list(&state, Prefix::kind(kind.name())?, query).await
}

async fn list_namespace(
    State(state): State<Arc<ApiState>>,
    Path((kind_name, namespace)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let kind = kind(&kind_name)?;
    let prefix = Prefix::namespace(kind.name(), &namespace)
        .map_err(|e| ApiError::invalid(e.to_string(), vec![documents::key_error(e)]))?;
    list(&state, prefix, query).await
}

async fn list(state: &ApiState, prefix: Prefix, query: ListQuery) -> ApiResult {
    let selector = Selector::parse(query.label_selector.as_deref().unwrap_or_default())?;
    let options =
        ListOptions { prefix, selector, limit: query.limit.filter(|&l| l > 0), continue_token: query.continue_token };
    let page = state.store.list(&options).await?;
    let items: Vec<JsonValue> = page.items.iter().map(|kv| state.statuses.render(kv)).collect();
    Ok(Json(json!({"kind": "List", "revision": page.revision, "continue": page.continue_token, "items": items})))
}

fn key_of(kind_name: &str, namespace: &str, name: &str) -> Result<Key, ApiError> {
    let kind = kind(kind_name)?;
    Key::new(kind.name(), namespace, name).map_err(|e| ApiError::invalid(e.to_string(), vec![documents::key_error(e)]))
}

async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> ApiResult {
    let key = key_of(&kind, &namespace, &name)?;
    match state.store.get(&key).await? {
        Some(kv) => Ok(Json(state.statuses.render(&kv))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("{key} not found"))),
    }
}

async fn put_one(
    State(state): State<Arc<ApiState>>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    body: Result<Json<JsonValue>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let key = key_of(&kind, &namespace, &name)?;
    let doc = Document::parse(body).map_err(|details| ApiError::invalid("invalid document", details))?;
    let doc = transform(&state, doc).await?;
    if doc.key != key {
        return Err(ApiError::invalid(
            "the document is not the one the path names",
            vec![FieldError::new("metadata", format!("names {}, the path {key}", doc.key))],
        ));
    }
    let expect = doc.resource_version.map_or(Expect::Any, Expect::ModRevision);
    let warnings = reference_warnings(state.store.as_ref(), &doc, &BTreeSet::new()).await?;
    state.store.put_if(doc.key.clone(), doc.value(), expect).await?;
    match state.store.get(&key).await? {
        Some(kv) => {
            let mut rendered = documents::render(&kv);
            if !warnings.is_empty()
                && let Some(doc) = rendered.as_object_mut()
            {
                doc.insert("warnings".into(), json!(warnings));
            }
            Ok(Json(rendered))
        }
        None => Err(ApiError::new(StatusCode::CONFLICT, format!("{key} was deleted right after the write"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteQuery {
    resource_version: Option<i64>,
}

async fn delete_one(
    State(state): State<Arc<ApiState>>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult {
    let key = key_of(&kind, &namespace, &name)?;
    let expect = query.resource_version.map_or(Expect::Any, Expect::ModRevision);
    let result = state.store.txn(vec![Op::Delete { key: key.clone(), expect }]).await?;
    match result.prev.into_iter().next().flatten() {
        Some(_) => Ok(Json(json!({"deleted": key.as_str(), "revision": result.revision}))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("{key} not found"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    documents: Vec<JsonValue>,
}

/// What an apply did to one document.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// `Kind/namespace/name`.
    pub key: String,
    /// `created`, `configured` or `unchanged`.
    pub action: &'static str,
    /// References to documents that exist neither in the store nor in this apply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<FieldError>,
}

/// The warnings for `doc`: each reference to a document that is neither in `batch` nor stored.
async fn reference_warnings(
    store: &dyn Store,
    doc: &Document,
    batch: &BTreeSet<Key>,
) -> Result<Vec<FieldError>, ApiError> {
    let Some(model) = &doc.model else { return Ok(Vec::new()) };
    let mut warnings = Vec::new();
    for (field, to) in model.references() {
        let key = Key::new(to.kind.name(), &to.namespace, &to.name)
            .map_err(|e| ApiError::invalid(e.to_string(), vec![documents::key_error(e)]))?;
        if !batch.contains(&key) && store.get(&key).await?.is_none() {
            let missing = bosun_model::UnresolvedReference { from: model.object_ref(), field, to };
            warnings.push(missing.warning());
        }
    }
    Ok(warnings)
}

async fn apply(State(state): State<Arc<ApiState>>, body: Result<Json<ApplyBody>, JsonRejection>) -> ApiResult {
    let Json(body) = body?;
    let (revision, results) = apply_documents(&state, body.documents).await?;
    Ok(Json(json!({"revision": revision, "results": results})))
}

/// Applies documents all or none, as `POST /api/v1/apply` does: parse and validate every one,
/// pass them through the transform plugins, then write them in one transaction over what was
/// read. Returns the revision and what was done to each document.
pub async fn apply_documents(state: &ApiState, documents: Vec<JsonValue>) -> Result<(i64, Vec<Applied>), ApiError> {
    let body = ApplyBody { documents };
    if body.documents.is_empty() {
        return Err(ApiError::invalid("nothing to apply", vec![FieldError::new("documents", "must not be empty")]));
    }
    if body.documents.len() > MAX_APPLY_DOCUMENTS {
        return Err(ApiError::invalid(
            "too many documents",
            vec![FieldError::new(
                "documents",
                format!("{} documents; at most {MAX_APPLY_DOCUMENTS} per apply", body.documents.len()),
            )],
        ));
    }
    let mut docs = Vec::new();
    let mut details = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in body.documents.into_iter().enumerate() {
        match Document::parse(raw) {
            Ok(doc) if !seen.insert(doc.key.clone()) => {
                details.push(FieldError::new(format!("documents[{i}]"), format!("{} appears twice", doc.key)));
            }
            Ok(doc) => docs.push(doc),
            Err(errors) => details
                .extend(errors.into_iter().map(|e| FieldError::new(format!("documents[{i}].{}", e.field), e.reason))),
        }
    }
    if !details.is_empty() {
        return Err(ApiError::invalid(format!("{} problems; nothing was applied", details.len()), details));
    }
    let mut transformed = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        match transform(state, doc).await {
            Ok(doc) => transformed.push(doc),
            Err(mut e) => {
                // Name the document, as validation errors do.
                for d in &mut e.details {
                    d.field = format!("documents[{i}].{}", d.field);
                }
                return Err(e);
            }
        }
    }
    let docs = transformed;
    let mut ops = Vec::new();
    let mut results = Vec::new();
    for doc in docs {
        let value = doc.value();
        let existing = state.store.get(&doc.key).await?;
        let action = match &existing {
            Some(kv) if kv.value.data == value.data && kv.value.labels == value.labels => "unchanged",
            Some(_) => "configured",
            None => "created",
        };
        let warnings = reference_warnings(state.store.as_ref(), &doc, &seen).await?;
        results.push(Applied { key: doc.key.to_string(), action, warnings });
        if action == "unchanged" && doc.resource_version.is_none() {
            continue;
        }
        // Without a resourceVersion, the write applies over what was read, so that the actions
        // reported are true; with one, over that revision.
        let expect = match (doc.resource_version, &existing) {
            (Some(r), _) => Expect::ModRevision(r),
            (None, Some(kv)) => Expect::ModRevision(kv.mod_revision),
            (None, None) => Expect::Absent,
        };
        if action == "unchanged" {
            // Only the precondition matters: check it without writing.
            if !expect.holds(existing.as_ref().map_or(0, |kv| kv.mod_revision)) {
                return Err(expect.conflict(&doc.key, existing.as_ref().map_or(0, |kv| kv.mod_revision)).into());
            }
            continue;
        }
        ops.push(Op::Put { key: doc.key, value, expect });
    }
    let revision = if ops.is_empty() { state.store.revision().await? } else { state.store.txn(ops).await?.revision };
    Ok((revision, results))
}
