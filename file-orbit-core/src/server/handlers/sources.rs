//! `/api/v1/sources`: list and read event sources with their status (secrets as `***`),
//! create or replace one (read by `Source::parse`, the one validation of every way of
//! declaring a source; secrets write-only), delete, pause and resume. Running them is
//! `events::runner`'s.

use super::{ApiResult, Path, Shared, caller_orbit, refuse_masked_secrets};
use crate::engine::SourceStatus;
use crate::error::ErrorKind;
use crate::events::source::{Source, WrittenSource};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;

#[utoipa::path(get, path = "/api/v1/sources", tag = "sources",
    summary = "List event sources with their status (secrets as ***).",
    description = "Per source: its definition, the node running it, its state (running, starting, failing, paused), the counters summed over every node that ran it, the last event time and the last error.",
    responses((status = 200, description = "Every source, by name", body = Vec<SourceStatus>)))]
pub(crate) async fn list_sources(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.sources().await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/sources/{name}", tag = "sources",
    summary = "Get one event source with its status (secrets as ***).",
    params(("name" = String, Path, description = "The source's name.")),
    responses((status = 200, description = "The source", body = SourceStatus),
        (status = 404, description = "No source of that name", body = ErrorBody)))]
pub(crate) async fn get_source(State(state): State<Shared>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.source_status(&name).await?).into_response())
}

/// Body: `{"kind", "spec", "enabled"?, "placement"?, "name"?}`. 201 when created, 200
/// when replaced (its revision bumped; the node running it restarts it).
#[utoipa::path(put, path = "/api/v1/sources/{name}", tag = "sources",
    summary = "Create (201) or replace (200) an event source.",
    description = "The spec's fields by kind. `sqs`: `queue_url`, `region`, `endpoint` (a stored S3 endpoint), `endpoint_url`, `access_key_id` + `secret_access_key` (+ `session_token`), `wait_time_seconds` (0-20), `max_messages` (1-10), `visibility_timeout_seconds`. `local_watch`: `endpoint` (a stored local endpoint), `sub_path`, `stable_for_ms`, `marker_suffix`, `ignore`, `rescan_interval_ms`. `remote_poll`: `endpoint`, `path`, `interval_ms`, `ignore`. Secrets are write-only: `***` is refused. The revision is bumped by every edit.",
    params(("name" = String, Path, description = "The source's name: 1 to 200 characters, not only spaces, without '/' or control characters.")),
    request_body = WrittenSource,
    responses((status = 200, description = "Replaced", body = SourceStatus),
        (status = 201, description = "Created", body = SourceStatus),
        (status = 400, description = "Not a valid source (an unknown kind or field, a bad queue URL, an unknown endpoint, a missing folder); `field` names what is wrong", body = ErrorBody)))]
pub(crate) async fn put_source(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    super::Body(body): super::Body<Value>,
) -> ApiResult {
    if !body.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    refuse_masked_secrets(&body)?;
    let source = Source::parse(Some(&name), body)?;
    let existed = match state.orbit.source_status(&name).await {
        Ok(_) => true,
        Err(err) if err.kind == ErrorKind::NotFound => false,
        Err(err) => return Err(err.into()),
    };
    caller_orbit(&state, &caller).put_source(&source).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(state.orbit.source_status(&name).await?)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/sources/{name}", tag = "sources",
    summary = "Delete an event source (204); the node running it stops it within a second.",
    params(("name" = String, Path, description = "The source's name.")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No source of that name", body = ErrorBody)))]
pub(crate) async fn delete_source(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_source(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/sources/{name}/pause", tag = "sources",
    summary = "Pause an event source: it stops wherever it runs (within a second) until resumed.",
    params(("name" = String, Path, description = "The source's name.")),
    responses((status = 200, description = "The source, paused", body = SourceStatus),
        (status = 404, description = "No source of that name", body = ErrorBody)))]
pub(crate) async fn pause_source(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).pause_source(&name).await?;
    Ok(Json(state.orbit.source_status(&name).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/sources/{name}/resume", tag = "sources",
    summary = "Resume a paused event source: a node its placement admits takes it.",
    params(("name" = String, Path, description = "The source's name.")),
    responses((status = 200, description = "The source, enabled", body = SourceStatus),
        (status = 404, description = "No source of that name", body = ErrorBody)))]
pub(crate) async fn resume_source(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).resume_source(&name).await?;
    Ok(Json(state.orbit.source_status(&name).await?).into_response())
}
