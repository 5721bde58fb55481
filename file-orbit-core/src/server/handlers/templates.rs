//! `/api/v1/templates` (list, create or replace, delete), `/api/v1/schedules` (the
//! templates' cron ticks) and `/api/v1/workers` (the cluster's worker processes).

use super::{ApiResult, Body, Path, Shared, caller_orbit};
use crate::engine::TransferTemplate;
use crate::server::auth::Principal;
use crate::server::error::ApiError;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub(crate) async fn list_templates(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.templates().await?).into_response())
}

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

pub(crate) async fn delete_template(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_template(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list_schedules(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.schedules().await?).into_response())
}

pub(crate) async fn list_workers(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.store().worker_nodes().await?).into_response())
}
