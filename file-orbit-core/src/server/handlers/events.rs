//! `/api/v1/events`: stored events (what started jobs), one event, and its replay.

use super::{ApiResult, Path, Query, Shared, caller_orbit, id_param, limit_query};
use crate::server::auth::Principal;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use serde_json::json;
use std::collections::HashMap;

pub(crate) async fn list_events(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = limit_query(&query)?;
    Ok(Json(state.orbit.events(limit).await?).into_response())
}

pub(crate) async fn get_event(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.event(id_param(&id)?).await?).into_response())
}

pub(crate) async fn replay_event(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id)?;
    let job_ids = caller_orbit(&state, &caller).replay_event(id).await?;
    Ok(Json(json!({"id": id, "job_ids": job_ids})).into_response())
}
