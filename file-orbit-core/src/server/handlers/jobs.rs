//! `/api/v1/jobs`: submit one job or a batch, list, read, cancel and retry jobs.

use super::{ApiResult, Body, Bounded, Id, IdPath, Path, Query, Shared, caller_orbit};
use crate::engine::{Job, JobFilter, JobRequest, JobState};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorBody, ErrorDetail, from_json};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `{"jobs": [job requests]}`: jobs submitted in one request.
#[derive(ToSchema)]
#[allow(dead_code)] // Read only as a schema: the handler checks each job on its own.
pub(crate) struct JobBatch {
    /// 1 to `max_batch_jobs` (default 1000) job requests.
    #[schema(min_items = 1)]
    jobs: Vec<JobRequest>,
}

/// The body of `POST /api/v1/jobs`: one job request, or a batch of them.
#[derive(ToSchema)]
#[allow(dead_code)] // Read only as a schema: the handler checks each job on its own.
#[serde(untagged)]
pub(crate) enum Submission {
    One(Box<JobRequest>),
    Batch(JobBatch),
}

/// A stored job's id.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobCreated {
    id: i64,
}

/// Each batch job's outcome, in the batch's order.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchAnswers {
    jobs: Vec<BatchAnswer>,
}

/// One batch job: its id when stored, else why not.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchAnswer {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

/// The answer of `POST /api/v1/jobs`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Submitted {
    One(JobCreated),
    Batch(BatchAnswers),
}

/// Body: one job request (201 `{"id"}`), or `{"jobs": [request, ...]}` (at most
/// `max_batch_jobs`): each request is checked on its own, the valid ones are stored in one
/// transaction, and the answer lists, in order, `{"index", "id"}` or `{"index", "error"}`
/// (its field prefixed `jobs[i].`): 201 when every job was stored, 207 otherwise.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
    summary = "Submit a job, or a batch of jobs in one request (one rate-limit token).",
    description = "201 with the job's id (the same idempotency key gives the same job). A batch, \
        {\"jobs\": [job requests]} (at most max_batch_jobs, default 1000; more: 400 naming `jobs`): \
        each job is checked on its own, the valid ones are stored in one transaction, and the answer \
        lists in order {\"index\", \"id\"} or {\"index\", \"error\"} (its field prefixed `jobs[i].`): \
        201 when every job was stored, 207 when some were not.",
    request_body = Submission,
    responses((status = 201, description = "Stored: the job's id, or every batch job's", body = Submitted),
        (status = 207, description = "A batch in which some jobs were not stored: each has its error", body = BatchAnswers),
        (status = 400, description = "Not a valid job request (an unknown endpoint, a bad path template, limits); `field` names what is wrong", body = ErrorBody)))]
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
        return Ok((StatusCode::CREATED, Json(Submitted::One(JobCreated { id }))).into_response());
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
    let jobs: Vec<BatchAnswer> = answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| match answer {
            Ok(id) => BatchAnswer {
                index,
                id: Some(id),
                error: None,
            },
            Err(mut err) => {
                err.field = Some(match err.field.as_deref() {
                    None | Some("body") => format!("jobs[{index}]"),
                    Some(field) => format!("jobs[{index}].{field}"),
                });
                BatchAnswer {
                    index,
                    id: None,
                    error: Some(err.detail()),
                }
            }
        })
        .collect();
    let status = if all_stored {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(Submitted::Batch(BatchAnswers { jobs }))).into_response())
}

/// `GET /api/v1/jobs`: filters and paging (the console's job list reads the same).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only jobs in this state.
    state: Option<JobState>,
    /// Only jobs from or to this endpoint.
    endpoint: Option<String>,
    /// Only jobs made by this transfer template.
    template: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only jobs created at or before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// At most this many jobs (default 100).
    #[param(inline)]
    limit: Option<Bounded<1, 1000>>,
    /// Skip this many jobs (newest first).
    #[param(inline)]
    offset: Option<Bounded<0, { i64::MAX }>>,
    /// Only jobs with a smaller id: the page after one ending at that id.
    #[param(inline)]
    before_id: Option<Id>,
}

impl JobsQuery {
    /// The store's filter; a time range ending before it starts is a 400 naming `until`.
    pub(crate) fn filter(self) -> ApiResult<JobFilter> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && until < since
        {
            return Err(ApiError::invalid("until", "must not be before since"));
        }
        Ok(JobFilter {
            state: self.state,
            limit: self.limit.map_or(100, |limit| limit.0),
            offset: self.offset.map_or(0, |offset| offset.0),
            before_id: self.before_id.map(|id| id.0),
            endpoint: self.endpoint,
            template: self.template,
            since: self.since.map(|at| at.timestamp_millis()),
            until: self.until.map(|at| at.timestamp_millis()),
        })
    }
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    summary = "List jobs, newest first.",
    description = "Filters combine: a state, an endpoint on either side, a template, a creation \
        time range (RFC 3339); page with `before_id` (the last id of the page before) and `limit`.",
    params(JobsQuery),
    responses((status = 200, description = "The jobs", body = Vec<Job>),
        (status = 400, description = "A filter that is not valid; `field` names it", body = ErrorBody)))]
pub(crate) async fn list_jobs(
    State(state): State<Shared>,
    Query(query): Query<JobsQuery>,
) -> ApiResult {
    Ok(Json(state.orbit.jobs(&query.filter()?).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    summary = "Get one job.",
    params(("id" = inline(Id), Path, description = "The job's id.")),
    responses((status = 200, description = "The job", body = Job),
        (status = 404, description = "No job of that id", body = ErrorBody)))]
pub(crate) async fn get_job(
    State(state): State<Shared>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    Ok(Json(state.orbit.job(id.0).await?).into_response())
}

/// A job's state after a cancel or a retry.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobStateAnswer {
    id: i64,
    state: JobState,
    /// Set when the job is running: its worker was asked to stop it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cancel_requested: bool,
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    summary = "Cancel a queued job (200), or ask a running one's worker to stop it (202).",
    params(("id" = inline(Id), Path, description = "The job's id.")),
    responses((status = 200, description = "Cancelled", body = JobStateAnswer),
        (status = 202, description = "Running: its worker was asked to stop it", body = JobStateAnswer),
        (status = 404, description = "No job of that id", body = ErrorBody),
        (status = 409, description = "The job has already ended", body = ErrorBody)))]
pub(crate) async fn cancel_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    let id = id.0;
    match caller_orbit(&state, &caller).cancel(id).await? {
        JobState::Succeeded | JobState::Dead => Err(ApiError::conflict(format!(
            "job {id} has already ended; only queued or running jobs can be cancelled"
        ))),
        JobState::Leased => Ok((
            StatusCode::ACCEPTED,
            Json(JobStateAnswer {
                id,
                state: JobState::Leased,
                cancel_requested: true,
            }),
        )
            .into_response()),
        other => Ok(Json(JobStateAnswer {
            id,
            state: other,
            cancel_requested: false,
        })
        .into_response()),
    }
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    summary = "Queue a dead or cancelled job again.",
    params(("id" = inline(Id), Path, description = "The job's id.")),
    responses((status = 200, description = "Queued again", body = JobStateAnswer),
        (status = 404, description = "No job of that id", body = ErrorBody),
        (status = 409, description = "The job is neither dead nor cancelled", body = ErrorBody)))]
pub(crate) async fn retry_job(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    let id = id.0;
    let job = state.orbit.job(id).await?;
    if !matches!(job.state, JobState::Dead | JobState::Cancelled) {
        return Err(ApiError::conflict(format!(
            "job {id} is {:?}; only dead or cancelled jobs can be retried",
            job.state
        )));
    }
    caller_orbit(&state, &caller).retry(id).await?;
    let job = state.orbit.job(id).await?;
    Ok(Json(JobStateAnswer {
        id,
        state: job.state,
        cancel_requested: false,
    })
    .into_response())
}
