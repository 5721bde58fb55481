//! `/api/v1/events`: stored events (what started jobs), one event, and its replay.

use super::{ApiResult, Id, IdPath, LimitQuery, Path, Query, Shared, caller_orbit};
use crate::engine::EventRecord;
use crate::server::auth::Principal;
use crate::server::error::ErrorBody;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    summary = "List stored events, newest first.",
    params(LimitQuery),
    responses((status = 200, description = "The events", body = Vec<EventRecord>)))]
pub(crate) async fn list_events(
    State(state): State<Shared>,
    Query(query): Query<LimitQuery>,
) -> ApiResult {
    Ok(Json(state.orbit.events(query.limit()).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    summary = "Get one event with the jobs it started.",
    params(("id" = inline(Id), Path, description = "The event's id.")),
    responses((status = 200, description = "The event", body = EventRecord),
        (status = 404, description = "No event of that id", body = ErrorBody)))]
pub(crate) async fn get_event(
    State(state): State<Shared>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    Ok(Json(state.orbit.event(id.0).await?).into_response())
}

/// The jobs a replayed event created.
#[derive(Serialize, ToSchema)]
pub(crate) struct Replayed {
    id: i64,
    job_ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/events/{id}/replay", tag = "events",
    summary = "Create an event's jobs again.",
    params(("id" = inline(Id), Path, description = "The event's id.")),
    responses((status = 200, description = "The jobs created", body = Replayed),
        (status = 404, description = "No event of that id", body = ErrorBody)))]
pub(crate) async fn replay_event(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    let id = id.0;
    let job_ids = caller_orbit(&state, &caller).replay_event(id).await?;
    Ok(Json(Replayed { id, job_ids }).into_response())
}
