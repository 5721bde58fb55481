//! `/api/v1/dashboard`: the console's overview (see `Orbit::dashboard`).

use super::{ApiResult, Shared};
use crate::engine::Dashboard;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

#[utoipa::path(get, path = "/api/v1/dashboard", tag = "jobs",
    summary = "The overview: jobs per state, running jobs, the last hour's throughput, the last day's failures, workers.",
    responses((status = 200, description = "The overview", body = Dashboard)))]
pub(crate) async fn dashboard(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.dashboard().await?).into_response())
}
