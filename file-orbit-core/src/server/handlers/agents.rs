//! `/api/v1/agents`: create an agent (its one-time enrolment token), list agents with
//! their status and running jobs, revoke one. The agents' own protocol is
//! `server::agent_api`.

use super::{ApiResult, Body, Path, Shared, caller_orbit};
use crate::engine::{AgentSummary, Enrolment};
use crate::server::auth::Principal;
use crate::server::error::ErrorBody;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Body of `POST /api/v1/agents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAgent {
    /// Unique among agents that are not revoked.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    name: String,
    /// Endpoints placed on one of these labels may run on this agent (at most 32).
    #[serde(default)]
    labels: Vec<String>,
}

/// Creates an agent: 201 with its one-time enrolment token, shown only in this answer.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents",
    summary = "Create an agent: 201 with its one-time enrolment token (`enrolment_token`, shown only in this answer).",
    description = "The agent exchanges the token for its own credential at its first start (`[agent] enrolment_token`). \
        The token expires after `[agents] enrolment_ttl_secs`.",
    request_body = NewAgent,
    responses((status = 201, description = "Created", body = Enrolment),
        (status = 400, description = "A bad name or label, or the name of an agent not revoked; `field` names it", body = ErrorBody)))]
pub(crate) async fn create_agent(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<NewAgent>,
) -> ApiResult {
    let ttl = Duration::from_secs(state.config.agents.enrolment_ttl_secs);
    let enrolment = caller_orbit(&state, &caller)
        .create_agent(&body.name, &body.labels, ttl)
        .await?;
    Ok((StatusCode::CREATED, Json(enrolment)).into_response())
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    summary = "List agents: status (pending, online, offline, revoked), host, version, slots, backends, last contact, running jobs.",
    responses((status = 200, description = "The agents", body = Vec<AgentSummary>)))]
pub(crate) async fn list_agents(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.agents().await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/agents/{name}", tag = "agents",
    summary = "One agent.",
    params(("name" = String, Path, description = "The agent's name.")),
    responses((status = 200, description = "The agent", body = AgentSummary),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn get_agent(State(state): State<Shared>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.agent(&name).await?).into_response())
}

/// Revokes an agent: its next call is refused, its running jobs go back to the queue.
#[utoipa::path(delete, path = "/api/v1/agents/{name}", tag = "agents",
    summary = "Revoke an agent: its next call is refused and its running jobs go back to the queue at once (204).",
    params(("name" = String, Path, description = "The agent's name.")),
    responses((status = 204, description = "Revoked (or already revoked)"),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn revoke_agent(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).revoke_agent(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
