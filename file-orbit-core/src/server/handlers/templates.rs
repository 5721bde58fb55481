//! `/api/v1/templates` (list, create or replace, delete), `/api/v1/schedules` (the
//! templates' cron ticks) and `/api/v1/workers` (the cluster's worker processes).

use super::{ApiResult, Body, Path, Shared, caller_orbit};
use crate::engine::{ScheduleState, TransferTemplate, WorkerNode};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

#[utoipa::path(get, path = "/api/v1/templates", tag = "templates",
    summary = "List transfer templates.",
    responses((status = 200, description = "Every template", body = Vec<TransferTemplate>)))]
pub(crate) async fn list_templates(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.templates().await?).into_response())
}

#[utoipa::path(put, path = "/api/v1/templates/{name}", tag = "templates",
    summary = "Create or replace a transfer template.",
    params(("name" = String, Path, description = "The template's name (the body's must match).")),
    request_body = TransferTemplate,
    responses((status = 200, description = "Stored", body = TransferTemplate),
        (status = 400, description = "Not a valid template (an unknown endpoint, a bad cron, limits); `field` names what is wrong", body = ErrorBody)))]
pub(crate) async fn put_template(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Body(template): Body<TransferTemplate>,
) -> ApiResult {
    if template.name != name {
        return Err(ApiError::invalid(
            "name",
            "the body's name must match the path",
        ));
    }
    caller_orbit(&state, &caller)
        .put_template(&template)
        .await?;
    Ok(Json(template).into_response())
}

#[utoipa::path(delete, path = "/api/v1/templates/{name}", tag = "templates",
    summary = "Delete a template and its schedule (204).",
    params(("name" = String, Path, description = "The template's name.")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No template of that name", body = ErrorBody)))]
pub(crate) async fn delete_template(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_template(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "templates",
    summary = "Templates' cron schedules: next tick due, last tick fired.",
    responses((status = 200, description = "Every schedule", body = Vec<ScheduleState>)))]
pub(crate) async fn list_schedules(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.schedules().await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/workers", tag = "workers",
    summary = "Worker processes of the cluster seen in the last day: slots, running transfers, last contact, alive.",
    responses((status = 200, description = "The worker processes", body = Vec<WorkerNode>)))]
pub(crate) async fn list_workers(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.store().worker_nodes().await?).into_response())
}
