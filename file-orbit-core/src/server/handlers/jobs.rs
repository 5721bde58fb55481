//! `/api/v1/jobs`: submit one job or a batch, list, read, cancel and retry jobs.

use super::{
    ApiResult, Body, Path, Query, Shared, caller_orbit, id_param, int_param, query_params,
};
use crate::engine::{JobFilter, JobRequest, JobState};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, from_json};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Body: one job request (201 `{"id"}`), or `{"jobs": [request, ...]}` (at most
/// `max_batch_jobs`): each request is checked on its own, the valid ones are stored in one
/// transaction, and the answer lists, in order, `{"index", "id"}` or `{"index", "error"}`
/// (its field prefixed `jobs[i].`): 201 when every job was stored, 207 otherwise.
pub(crate) async fn submit_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<Value>,
) -> ApiResult {
    let known: Vec<String> = state
        .orbit
        .endpoints()
        .await?
        .into_iter()
        .map(|summary| summary.name)
        .collect();
    let parse = |value: Value| -> ApiResult<JobRequest> {
        let request: JobRequest = from_json(value)?;
        if let Some((field, name)) = request.unknown_endpoint(&known) {
            return Err(ApiError::invalid(
                &field,
                format!("no endpoint named {name:?}"),
            ));
        }
        Ok(request)
    };
    let orbit = caller_orbit(&state, &caller);
    let Value::Object(mut fields) = body else {
        return Err(ApiError::invalid(
            "body",
            "the body must be a job request or {\"jobs\": [job requests]}",
        ));
    };
    let Some(jobs) = fields.remove("jobs") else {
        let id = orbit.submit(&parse(Value::Object(fields))?).await?;
        return Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response());
    };
    if let Some(other) = fields.keys().next() {
        return Err(ApiError::invalid(
            other,
            format!("unknown field {other:?}: a batch body has only \"jobs\""),
        ));
    }
    let Value::Array(jobs) = jobs else {
        return Err(ApiError::invalid(
            "jobs",
            "must be an array of job requests",
        ));
    };
    let limit = state.config.max_batch_jobs;
    if jobs.is_empty() || jobs.len() > limit {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "a batch holds 1 to {limit} jobs (max_batch_jobs); this one has {}",
                jobs.len()
            ),
        ));
    }
    let (mut positions, mut requests) = (Vec::new(), Vec::new());
    let mut answers: Vec<ApiResult<i64>> = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.into_iter().enumerate() {
        match parse(job) {
            Ok(request) => {
                positions.push(index);
                requests.push(request);
                answers.push(Ok(0));
            }
            Err(err) => answers.push(Err(err)),
        }
    }
    let stored = orbit.submit_many(&requests).await?;
    for (index, answer) in positions.into_iter().zip(stored) {
        answers[index] = answer.map_err(ApiError::from);
    }
    let all_stored = answers.iter().all(Result::is_ok);
    let answers: Vec<Value> = answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| match answer {
            Ok(id) => json!({"index": index, "id": id}),
            Err(mut err) => {
                err.field = Some(match err.field.as_deref() {
                    None | Some("body") => format!("jobs[{index}]"),
                    Some(field) => format!("jobs[{index}].{field}"),
                });
                json!({"index": index, "error": err.to_json()})
            }
        })
        .collect();
    let status = if all_stored {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(json!({ "jobs": answers }))).into_response())
}

fn parse_state(text: &str) -> ApiResult<JobState> {
    serde_json::from_value(json!(text)).map_err(|_| {
        ApiError::invalid(
            "state",
            format!("{text:?} is not a job state (queued, leased, succeeded, dead, cancelled)"),
        )
    })
}

pub(crate) async fn list_jobs(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let query = query_params(&query, &["state", "limit", "offset", "before_id"])?;
    let filter = JobFilter {
        state: query.get("state").map(|s| parse_state(s)).transpose()?,
        limit: int_param(&query, "limit", 100, 1..=1000)?,
        offset: int_param(&query, "offset", 0, 0..=i64::MAX)?,
        before_id: query
            .contains_key("before_id")
            .then(|| int_param(&query, "before_id", 0, 1..=i64::MAX))
            .transpose()?,
    };
    Ok(Json(state.orbit.jobs(&filter).await?).into_response())
}

pub(crate) async fn get_job(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.job(id_param(&id)?).await?).into_response())
}

pub(crate) async fn cancel_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id)?;
    match caller_orbit(&state, &caller).cancel(id).await? {
        JobState::Succeeded | JobState::Dead => Err(ApiError::conflict(format!(
            "job {id} has already ended; only queued or running jobs can be cancelled"
        ))),
        JobState::Leased => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "state": "leased", "cancel_requested": true})),
        )
            .into_response()),
        other => Ok(Json(json!({"id": id, "state": other})).into_response()),
    }
}

pub(crate) async fn retry_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id)?;
    let job = state.orbit.job(id).await?;
    if !matches!(job.state, JobState::Dead | JobState::Cancelled) {
        return Err(ApiError::conflict(format!(
            "job {id} is {:?}; only dead or cancelled jobs can be retried",
            job.state
        )));
    }
    caller_orbit(&state, &caller).retry(id).await?;
    let job = state.orbit.job(id).await?;
    Ok(Json(json!({"id": id, "state": job.state})).into_response())
}
