//! `/api/v1/events`: stored events (what started jobs; all, or one stored source's), one
//! event, and its replay.

use super::{ApiResult, Bounded, Id, IdPath, Path, Query, Shared, caller_orbit};
use crate::engine::EventRecord;
use crate::server::auth::Principal;
use crate::server::error::ErrorBody;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?limit=&source_name=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// At most this many events (default 100).
    #[param(inline)]
    limit: Option<Bounded<1, 1000>>,
    /// Only the events this stored source produced.
    source_name: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    summary = "List stored events, newest first (all, or one stored source's).",
    params(EventsQuery),
    responses((status = 200, description = "The events", body = Vec<EventRecord>)))]
pub(crate) async fn list_events(
    State(state): State<Shared>,
    Query(query): Query<EventsQuery>,
) -> ApiResult {
    let limit = query.limit.map_or(100, |limit| limit.0);
    let events = match &query.source_name {
        Some(name) => state.orbit.store().events_of_source(name, limit).await?,
        None => state.orbit.events(limit).await?,
    };
    Ok(Json(events).into_response())
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
