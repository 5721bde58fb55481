//! The routes: handlers over `Orbit`, the auth and rate-limit layer and the live job
//! stream; `/health` and `/metrics` are answered by `health.rs`.

use super::AppState;
use super::api_doc;
use super::auth::{Principal, required_role};
use super::config::Role;
use super::error::{ApiError, from_json};
use super::health::{HEALTH_DETAIL_ROLE, health, metrics};
use super::keys;
use crate::endpoint::{Endpoint, TestOptions};
use crate::engine::{DEFAULT_MAX_CONCURRENT, JobFilter, JobRequest, JobState, TransferTemplate};
use crate::service::logs::{self, LogQuery};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, Extension, FromRequest, FromRequestParts, MatchedPath, Request,
    State,
};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

type Shared = Arc<AppState>;
type ApiResult<T = Response> = Result<T, ApiError>;

/// The Orbit that names this request's caller in the audit log (`key:<name>`, `jwt:<sub>`).
fn caller_orbit(state: &AppState, caller: &Principal) -> crate::engine::Orbit {
    state.orbit.acting_as(&caller.name)
}

pub(super) fn router(state: Shared) -> Router {
    let handlers: Vec<(&str, &[&str], MethodRouter<Shared>)> = vec![
        ("/api/v1/endpoints", &["GET"], get(list_endpoints)),
        (
            "/api/v1/endpoints/{name}",
            &["GET", "PUT", "DELETE"],
            get(get_endpoint).put(put_endpoint).delete(delete_endpoint),
        ),
        (
            "/api/v1/endpoints/{name}/test",
            &["POST"],
            post(test_endpoint),
        ),
        ("/api/v1/templates", &["GET"], get(list_templates)),
        (
            "/api/v1/templates/{name}",
            &["PUT", "DELETE"],
            put(put_template).delete(delete_template),
        ),
        ("/api/v1/schedules", &["GET"], get(list_schedules)),
        ("/api/v1/workers", &["GET"], get(list_workers)),
        (
            "/api/v1/jobs",
            &["GET", "POST"],
            get(list_jobs).post(submit_job),
        ),
        ("/api/v1/jobs/{id}", &["GET"], get(get_job)),
        ("/api/v1/jobs/{id}/cancel", &["POST"], post(cancel_job)),
        ("/api/v1/jobs/{id}/retry", &["POST"], post(retry_job)),
        ("/api/v1/jobs/{id}/events", &["GET"], get(job_events)),
        ("/api/v1/events", &["GET"], get(list_events)),
        ("/api/v1/events/{id}", &["GET"], get(get_event)),
        ("/api/v1/events/{id}/replay", &["POST"], post(replay_event)),
        (
            "/api/v1/keys",
            &["GET", "POST"],
            get(list_keys).post(create_key),
        ),
        ("/api/v1/keys/{name}", &["DELETE"], delete(revoke_key)),
        ("/api/v1/audit", &["GET"], get(audit_log)),
        ("/api/v1/audit/verify", &["GET"], get(verify_audit)),
        ("/api/v1/logs", &["GET"], get(read_logs)),
        ("/metrics", &["GET"], get(metrics)),
    ];
    let mut api = Router::new();
    for (path, methods, handler) in handlers {
        // The role checks and the OpenAPI document come from the table: a route must be there.
        for method in methods {
            assert!(
                api_doc::api_route(method, path).is_some(),
                "{method} {path} is missing from API_ROUTES"
            );
        }
        api = api.route(path, handler);
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .route_layer(middleware::from_fn_with_state(state.clone(), deadline));
    let health_route = get(health).route_layer(middleware::from_fn_with_state(
        state.clone(),
        credentials_if_given,
    ));
    Router::new()
        .route("/health", health_route)
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(api_doc::openapi()) }),
        )
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Answers 503 `timeout` when a request has not been answered within
/// `request_timeout_secs`, so no client waits without end on a silent store or a hanging
/// remote (the work is dropped with the request).
async fn deadline(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} s: the store or a remote may be unreachable",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Authentication (a failure takes a token from the client address's bucket: 429 once it
/// is empty), the route's role, then the caller's rate limit.
async fn authorize(
    State(state): State<Shared>,
    route: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let principal = match state.authenticator.authenticate(header).await {
        Ok(principal) => principal,
        Err(err) => {
            if err.status == StatusCode::UNAUTHORIZED {
                // Embedded without connect info, all clients share one bucket.
                let peer = request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip().to_string())
                    .unwrap_or_default();
                if let Err(retry_after) = state.failed_auth.check(&peer) {
                    tracing::warn!(%peer, "failed authentication rate limited");
                    return ApiError::rate_limited("this address", retry_after).into_response();
                }
            }
            let mut response = err.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    };
    let needed = match route.as_str() {
        "/health" => Some(HEALTH_DETAIL_ROLE),
        api => required_role(request.method(), api),
    };
    let Some(needed) = needed else {
        return ApiError::forbidden(format!(
            "{} {} is not an API route",
            request.method(),
            route.as_str()
        ))
        .into_response();
    };
    if principal.role < needed {
        return ApiError::forbidden(format!(
            "{} needs the {needed:?} role; this caller is {:?}",
            route.as_str(),
            principal.role
        ))
        .into_response();
    }
    if let Err(retry_after) = state.limiter.check(&principal.name) {
        return ApiError::rate_limited("this key", retry_after).into_response();
    }
    let method = request.method().clone();
    let caller = principal.name.clone();
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    tracing::info!(
        target: "file_orbit::server::access",
        %caller, %method, route = route.as_str(), status = response.status().as_u16(),
        "request"
    );
    response
}

/// `/health` answers anyone; a caller who sends credentials passes `authorize` (as
/// `HEALTH_DETAIL_ROLE` at least) and is answered the detailed view.
async fn credentials_if_given(
    state: State<Shared>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(header::AUTHORIZATION) {
        authorize(state, route, request, next).await
    } else {
        next.run(request).await
    }
}

/// A JSON body whose errors are API errors (400 naming the field or its path, 413, 415).
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(request, state).await?;
        Ok(Body(from_json(value)?))
    }
}

/// Path parameters whose errors are API errors (400 naming the parameter, e.g. a segment
/// that is not UTF-8 once percent-decoded).
struct Path<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// A query string whose errors are API errors (400 naming the parameter).
struct Query<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Query parameters, each known one named; anything else is refused.
fn query_params(
    query: &HashMap<String, String>,
    known: &[&str],
) -> ApiResult<HashMap<String, String>> {
    if let Some(unknown) = query.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(ApiError::invalid(
            unknown,
            format!(
                "unknown query parameter {unknown:?}; known: {}",
                known.join(", ")
            ),
        ));
    }
    Ok(query.clone())
}

fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> ApiResult<i64> {
    let Some(text) = query.get(name) else {
        return Ok(default);
    };
    match text.parse::<i64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(ApiError::invalid(
            name,
            format!(
                "{name} must be an integer from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn id_param(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("{text:?} is not an id")))
}

fn limit_query(query: &HashMap<String, String>) -> ApiResult<i64> {
    let query = query_params(query, &["limit"])?;
    int_param(&query, "limit", 100, 1..=1000)
}

// ---- endpoints ----

async fn list_endpoints(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.endpoints().await?).into_response())
}

async fn endpoint_summary(state: &AppState, name: &str) -> ApiResult<Value> {
    let summary = state
        .orbit
        .endpoints()
        .await?
        .into_iter()
        .find(|endpoint| endpoint.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint named {name:?}")))?;
    Ok(json!(summary))
}

async fn get_endpoint(State(state): State<Shared>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(endpoint_summary(&state, &name).await?).into_response())
}

/// Body: the endpoint as JSON (`type` and its fields; `name` optional, must match the
/// path) plus `max_concurrent` (default 4). 201 when created, 200 when replaced.
async fn put_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    };
    if let Some(path) = masked_secret(&Value::Object(fields.clone()), "") {
        return Err(ApiError::invalid(
            &path,
            "\"***\" is how secrets are shown, not a value: send the real secret",
        ));
    }
    let max_concurrent = match fields.remove("max_concurrent") {
        None => DEFAULT_MAX_CONCURRENT,
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=u32::MAX as u64).contains(n))
            .ok_or_else(|| ApiError::invalid("max_concurrent", "must be a positive integer"))?
            as u32,
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), json!(name));
        }
        Some(given) if given == &json!(name) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "name",
                "the body's name must match the path",
            ));
        }
    }
    // Values leave the message: a secret sent in the wrong shape is never echoed.
    let endpoint: Endpoint = from_json(Value::Object(fields)).map_err(|mut api| {
        api.message = format!("invalid endpoint: {}", api.message);
        api
    })?;
    let existed = state
        .orbit
        .endpoints()
        .await?
        .iter()
        .any(|summary| summary.name == name);
    caller_orbit(&state, &caller)
        .put_endpoint(&endpoint, max_concurrent)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(endpoint_summary(&state, &name).await?)).into_response())
}

/// The path of the first string that is exactly `***` (a secret copied back from a
/// listing), if any.
fn masked_secret(value: &Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) if text == "***" => Some(path.to_string()),
        Value::Object(map) => map
            .iter()
            .find_map(|(key, value)| masked_secret(value, &join(key))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, value)| masked_secret(value, &format!("{path}[{index}]"))),
        _ => None,
    }
}

async fn delete_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn test_endpoint(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let query = query_params(&query, &["write_probe"])?;
    let write_probe = match query.get("write_probe").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "write_probe",
                format!("write_probe {other:?} must be true or false"),
            ));
        }
    };
    let endpoint = state.orbit.endpoint(&name).await?;
    let diagnosis = endpoint
        .test_with(state.orbit.rclone(), TestOptions { write_probe })
        .await;
    Ok(Json(json!({
        "endpoint": diagnosis.endpoint,
        "ok": diagnosis.is_ok(),
        "problem": diagnosis.problem,
        "message": diagnosis.message,
        "warning": diagnosis.warning,
    }))
    .into_response())
}

// ---- templates ----

async fn list_templates(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.templates().await?).into_response())
}

async fn put_template(
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

async fn delete_template(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_template(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_schedules(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.schedules().await?).into_response())
}

async fn list_workers(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.store().worker_nodes().await?).into_response())
}

// ---- jobs ----

/// Body: one job request (201 `{"id"}`), or `{"jobs": [request, ...]}` (at most
/// `max_batch_jobs`): each request is checked on its own, the valid ones are stored in one
/// transaction, and the answer lists, in order, `{"index", "id"}` or `{"index", "error"}`
/// (its field prefixed `jobs[i].`): 201 when every job was stored, 207 otherwise.
async fn submit_job(
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

async fn list_jobs(
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

async fn get_job(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.job(id_param(&id)?).await?).into_response())
}

async fn cancel_job(
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

async fn retry_job(
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

/// Live progress: an `update` event whenever the job's state, attempts, bytes, files or
/// progress (speed, eta, totals; its worker writes it once a second) change (polled every
/// 200 ms), then `end` once it is terminal. Bounded by
/// `max_stream_secs` and by server shutdown.
async fn job_events(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id = id_param(&id)?;
    let first = state.orbit.job(id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let orbit = state.orbit.clone();
    let mut stopping = state.stopping.clone();
    let limit = Duration::from_secs(state.config.max_stream_secs);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let mut last: Option<Value> = None;
        let mut job = first;
        loop {
            let snapshot = json!({
                "id": job.id, "state": job.state, "attempts": job.attempts,
                "bytes": job.bytes, "files": job.files, "progress": job.progress,
                "last_error": job.last_error, "last_error_kind": job.last_error_kind,
            });
            if last.as_ref() != Some(&snapshot) {
                let event = Event::default().event("update").data(snapshot.to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
                last = Some(snapshot);
            }
            if job.state.is_terminal() {
                let end = Event::default()
                    .event("end")
                    .data(json!({"id": id, "state": job.state}).to_string());
                let _ = tx.send(Ok(end)).await;
                return;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = tx.send(Ok(Event::default().event("timeout").data("{}"))).await;
                    return;
                }
                _ = stopping.changed() => return,
                _ = tx.closed() => return,
            }
            job = match orbit.job(id).await {
                Ok(job) => job,
                Err(err) => {
                    let data = json!({"message": err.to_string()}).to_string();
                    let _ = tx
                        .send(Ok(Event::default().event("error").data(data)))
                        .await;
                    return;
                }
            };
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---- events ----

async fn list_events(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = limit_query(&query)?;
    Ok(Json(state.orbit.events(limit).await?).into_response())
}

async fn get_event(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(state.orbit.event(id_param(&id)?).await?).into_response())
}

async fn replay_event(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id)?;
    let job_ids = caller_orbit(&state, &caller).replay_event(id).await?;
    Ok(Json(json!({"id": id, "job_ids": job_ids})).into_response())
}

// ---- API keys ----

/// Body of `POST /api/v1/keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// viewer, operator or admin.
    role: String,
    /// RFC 3339; or `expires_in_days`; neither: the key does not expire.
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// Mints a key: 201 with the key itself (`key`, shown only in this answer) and its listing.
async fn create_key(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<NewKey>,
) -> ApiResult {
    let role: Role = serde_json::from_value(json!(body.role))
        .map_err(|_| ApiError::invalid("role", "must be viewer, operator or admin"))?;
    let expires_at = match (body.expires_at, body.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(text), None) => Some(
            chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|_| {
                    ApiError::invalid(
                        "expires_at",
                        format!("{text:?} is not an RFC 3339 time (2026-11-30T12:00:00Z)"),
                    )
                })?
                .timestamp_millis(),
        ),
        (None, Some(0)) => {
            return Err(ApiError::invalid("expires_in_days", "must be at least 1"));
        }
        (None, Some(days)) => Some(keys::days_from_now(days)),
        (None, None) => None,
    };
    let (key, info) = keys::create_api_key(
        state.orbit.store(),
        &state.config.api_keys,
        &body.name,
        role,
        expires_at,
        &caller.name,
    )
    .await?;
    let mut answer = json!(info);
    answer["key"] = json!(key.expose());
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list_keys(State(state): State<Shared>) -> ApiResult {
    let keys = keys::list_api_keys(state.orbit.store(), &state.config.api_keys).await?;
    Ok(Json(keys).into_response())
}

/// Revokes a managed key: refused at once on every node (204).
async fn revoke_key(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    keys::revoke_api_key(
        state.orbit.store(),
        &state.config.api_keys,
        &name,
        &caller.name,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- audit ----

async fn audit_log(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = limit_query(&query)?;
    Ok(Json(state.orbit.audit_log(limit).await?).into_response())
}

async fn verify_audit(State(state): State<Shared>) -> ApiResult {
    let first_bad = state.orbit.verify_audit_log().await?;
    Ok(Json(json!({"intact": first_bad.is_none(), "first_bad_id": first_bad})).into_response())
}

// ---- logs ----

/// Log lines, newest first: `service`, `level` (this and more severe), `job`, `since` and
/// `until` (RFC 3339), `limit` (default 200).
async fn read_logs(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let query = query_params(
        &query,
        &["service", "level", "job", "since", "until", "limit"],
    )?;
    let Some(dir) = state.config.log.dir.clone() else {
        return Err(ApiError::not_found(
            "no log directory is configured (log.dir or FILE_ORBIT_LOG_DIR)",
        ));
    };
    let time = |name: &str| -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
        query
            .get(name)
            .map(|text| {
                chrono::DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            name,
                            format!("{text:?} is not an RFC 3339 time (2026-11-30T12:00:00Z)"),
                        )
                    })
            })
            .transpose()
    };
    let level = query
        .get("level")
        .map(|text| {
            text.parse::<tracing::Level>().map_err(|_| {
                ApiError::invalid(
                    "level",
                    format!("{text:?} is not a level (error, warn, info, debug, trace)"),
                )
            })
        })
        .transpose()?;
    let job = query
        .get("job")
        .map(|text| {
            id_param(text)
                .map_err(|_| ApiError::invalid("job", format!("{text:?} is not a job id")))
        })
        .transpose()?;
    let log_query = LogQuery {
        service: query.get("service").cloned(),
        level,
        job,
        since: time("since")?,
        until: time("until")?,
        limit: int_param(&query, "limit", 200, 1..=5000)? as usize,
    };
    let lines = tokio::task::spawn_blocking(move || logs::read(&dir, &log_query))
        .await
        .map_err(|err| {
            ApiError::from(crate::error::Error::new(
                crate::error::ErrorKind::Store,
                "reading logs",
                err.to_string(),
            ))
        })??;
    Ok(Json(lines).into_response())
}
