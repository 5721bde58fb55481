//! The agents' protocol, `/api/v1/agent/*`: enrolment (an enrolment token for a
//! credential), then, with the credential, hello, long-polled leases, progress reports and
//! outcomes. Agent credentials open only these routes and these routes take nothing else;
//! every call acts as the agent its credential names. Not in the OpenAPI document: it is
//! the agents' wire protocol, not an API for people (see README "Agents").

use super::error::ApiError;
use super::handlers::{ApiResult, Body, Shared};
use super::routes::{failed_auth_limited, peer_of, within};
use crate::engine::{
    AgentHello, AgentIdentity, AgentOutcome, LeasedJob, OutcomesAnswer, ReportAnswer, RunningReport,
};
use axum::extract::{Extension, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Agents: how long an enrolment token stays usable, how long a lease request may wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Seconds an enrolment token stays usable (60 to 2,592,000 = 30 days; default a day).
    pub enrolment_ttl_secs: u64,
    /// The longest an agent's lease request waits for work (1 to 60 s; default 20); the
    /// agent protocol's routes get this on top of `request_timeout_secs`.
    pub lease_wait_max_secs: u64,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            enrolment_ttl_secs: 24 * 3600,
            lease_wait_max_secs: 20,
        }
    }
}

/// How often an agent reports its running jobs' progress (and so learns of cancels).
const REPORT_EVERY: Duration = Duration::from_secs(1);

pub(super) fn router(state: Shared) -> Router<Shared> {
    let limit = Duration::from_secs(
        state.config.request_timeout_secs + state.config.agents.lease_wait_max_secs,
    );
    let authenticated = Router::new()
        .route("/api/v1/agent/hello", post(hello))
        .route("/api/v1/agent/lease", post(lease))
        .route("/api/v1/agent/report", post(report))
        .route("/api/v1/agent/outcomes", post(outcomes))
        .route_layer(middleware::from_fn_with_state(state.clone(), agent_only));
    Router::new()
        .route("/api/v1/agent/enrol", post(enrol))
        .merge(authenticated)
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            within(limit, request, next)
        }))
}

/// Lets through only a request with an unrevoked agent's credential, as that agent; a
/// failure takes a token from the client address's failed-authentication bucket.
async fn agent_only(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let agent = match state.orbit.agent_by_credential(credential).await {
        Ok(Some(agent)) => agent,
        Ok(None) => {
            if let Some(limited) = failed_auth_limited(&state, &peer_of(&request)) {
                return limited;
            }
            return ApiError::unauthorized(
                "not an agent credential, or the agent was revoked: enrol the agent again",
            )
            .into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    if let Err(retry_after) = state.limiter.check(&format!("agent:{}", agent.name)) {
        return ApiError::rate_limited("this agent", retry_after).into_response();
    }
    request.extensions_mut().insert(agent);
    next.run(request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    token: String,
    #[serde(flatten)]
    hello: AgentHello,
}

#[derive(Serialize)]
struct Enrolled {
    name: String,
    credential: String,
}

async fn enrol(State(state): State<Shared>, request: Request) -> Response {
    let peer = peer_of(&request);
    let body = <Body<EnrolRequest> as FromRequest<Shared>>::from_request(request, &state).await;
    let Body(body) = match body {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    match state.orbit.enrol_agent(&body.token, &body.hello).await {
        Ok((name, credential)) => Json(Enrolled { name, credential }).into_response(),
        Err(err) if err.kind == crate::error::ErrorKind::Authentication => {
            // Only a refused token counts against the address.
            failed_auth_limited(&state, &peer)
                .unwrap_or_else(|| ApiError::unauthorized(err.message).into_response())
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[derive(Serialize)]
struct HelloAnswer {
    name: String,
    labels: Vec<String>,
    lease_secs: u64,
    report_ms: u64,
}

async fn hello(
    State(state): State<Shared>,
    Extension(agent): Extension<AgentIdentity>,
    Body(hello): Body<AgentHello>,
) -> ApiResult {
    state.orbit.agent_hello(&agent, &hello).await?;
    Ok(Json(HelloAnswer {
        name: agent.name,
        labels: agent.labels,
        lease_secs: state.orbit.options().lease.as_secs(),
        report_ms: REPORT_EVERY.as_millis() as u64,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseRequest {
    slots: Vec<u32>,
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Serialize)]
struct Leased {
    jobs: Vec<LeasedJob>,
}

/// Leases jobs for the free slots; waits (bounded by `[agents] lease_wait_max_secs`) until
/// there is at least one, checking when this node's queue changes and every poll interval
/// (work submitted on another replica).
async fn lease(
    State(state): State<Shared>,
    Extension(agent): Extension<AgentIdentity>,
    Body(asked): Body<LeaseRequest>,
) -> ApiResult {
    let most = Duration::from_secs(state.config.agents.lease_wait_max_secs);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(asked.wait_ms).min(most);
    let poll = state.orbit.options().poll_interval;
    let mut new_work = state.orbit.new_work();
    state.orbit.release_free_slots(&agent, &asked.slots).await?;
    loop {
        new_work.borrow_and_update();
        let jobs = state.orbit.lease_for_agent(&agent, &asked.slots).await?;
        if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(Leased { jobs }).into_response());
        }
        let next_look = (tokio::time::Instant::now() + poll).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(next_look) => {}
            _ = new_work.changed() => {}
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    running: Vec<RunningReport>,
}

#[derive(Serialize)]
struct ReportAnswers {
    jobs: Vec<ReportAnswer>,
}

async fn report(
    State(state): State<Shared>,
    Extension(agent): Extension<AgentIdentity>,
    Body(body): Body<ReportRequest>,
) -> ApiResult {
    let jobs = state.orbit.agent_report(&agent, &body.running).await?;
    Ok(Json(ReportAnswers { jobs }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomesRequest {
    outcomes: Vec<AgentOutcome>,
}

async fn outcomes(
    State(state): State<Shared>,
    Extension(agent): Extension<AgentIdentity>,
    Body(body): Body<OutcomesRequest>,
) -> ApiResult {
    let answer: OutcomesAnswer = state.orbit.agent_outcomes(&agent, &body.outcomes).await?;
    Ok((StatusCode::OK, Json(answer)).into_response())
}
