//! `/api/v1/endpoints`: list, read, create or replace (secrets write-only: `***` is refused,
//! a secret left out of a replace keeps the stored one), delete and test endpoints.

use super::{ApiResult, Body, Path, Query, Shared, caller_orbit, refuse_masked_secrets};
use crate::endpoint::{
    Bandwidth, Endpoint, EndpointConfig, EndpointPlacement, HostKeyCheck, Problem, SftpAuth,
    TestOptions,
};
use crate::engine::{DEFAULT_MAX_CONCURRENT, EndpointSummary};
use crate::error::ErrorKind;
use crate::secret::with_secrets_revealed;
use crate::server::AppState;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorBody, from_json};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

#[utoipa::path(get, path = "/api/v1/endpoints", tag = "endpoints",
    summary = "List endpoints (secrets as ***).",
    responses((status = 200, description = "Every endpoint", body = Vec<EndpointSummary>)))]
pub(crate) async fn list_endpoints(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.endpoints().await?).into_response())
}

async fn endpoint_summary(state: &AppState, name: &str) -> ApiResult<EndpointSummary> {
    state
        .orbit
        .endpoints()
        .await?
        .into_iter()
        .find(|endpoint| endpoint.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint named {name:?}")))
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}", tag = "endpoints",
    summary = "Get one endpoint (secrets as ***).",
    params(("name" = String, Path, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        description = "The endpoint's name: text without control characters, not only spaces.")),
    responses((status = 200, description = "The endpoint", body = EndpointSummary),
        (status = 404, description = "No endpoint of that name", body = ErrorBody)))]
pub(crate) async fn get_endpoint(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(endpoint_summary(&state, &name).await?).into_response())
}

/// The body of `PUT /api/v1/endpoints/{name}`: the endpoint's `type` and its fields, plus
/// `name` (optional; must match the path) and `max_concurrent`. Secrets are write-only; on
/// a replace, a secret the body leaves out keeps the stored one (see `keep_stored_secrets`)
/// and `null` removes an optional one (`auth.passphrase`, `session_token`).
#[derive(Deserialize, ToSchema)]
pub(crate) struct EndpointPut {
    /// Optional; must match the path.
    name: Option<String>,
    /// Transfers at once from or to this endpoint (default 4).
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    max_concurrent: Option<u32>,
    /// Bandwidth limit (`10M`, `10M:2M`, `off`, or a timetable `08:00,512k 19:00,off`);
    /// changing it applies to transfers already running within a second.
    #[schema(value_type = Option<String>, example = "08:00,512k 19:00,off")]
    bandwidth: Option<Bandwidth>,
    /// The agents that may run this endpoint's transfers, by name or label; absent:
    /// anywhere, the control plane's own workers included.
    #[serde(default)]
    placement: EndpointPlacement,
    #[serde(flatten)]
    config: EndpointConfig,
}

/// Body: the endpoint as JSON (`type` and its fields; `name` optional, must match the
/// path) plus `max_concurrent` (default 4). 201 when created, 200 when replaced.
#[utoipa::path(put, path = "/api/v1/endpoints/{name}", tag = "endpoints",
    summary = "Create (201) or replace (200) an endpoint.",
    description = "On a replace, a secret the body leaves out keeps the stored one when it has the \
        same place in the same kind of endpoint: the same `type`; for SFTP the same `auth.method`; \
        for S3 with `access_key_id` given. `null` removes an optional secret (`auth.passphrase`, \
        `session_token`).",
    params(("name" = String, Path, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        description = "The endpoint's name: text without control characters, not only spaces.")),
    request_body = EndpointPut,
    responses((status = 200, description = "Replaced", body = EndpointSummary),
        (status = 201, description = "Created", body = EndpointSummary),
        (status = 400, description = "Not a valid endpoint; `field` names what is wrong", body = ErrorBody)))]
pub(crate) async fn put_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    };
    refuse_masked_secrets(&Value::Object(fields.clone()))?;
    let stored = match state.orbit.endpoint(&name).await {
        Ok(stored) => Some(stored),
        Err(err) if err.kind == ErrorKind::NotFound => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(stored) = &stored {
        let stored =
            with_secrets_revealed(|| serde_json::to_value(&stored.config)).map_err(|err| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", err.to_string())
            })?;
        keep_stored_secrets(&mut fields, &stored);
    }
    // Values leave the message: a secret sent in the wrong shape is never echoed.
    let put: EndpointPut = from_json(Value::Object(fields.clone())).map_err(|api| {
        let mut api = nested_error(&fields).unwrap_or(api);
        api.message = format!("invalid endpoint: {}", api.message);
        api
    })?;
    if put.name.as_ref().is_some_and(|given| *given != name) {
        return Err(ApiError::invalid(
            "name",
            "the body's name must match the path",
        ));
    }
    let max_concurrent = match put.max_concurrent {
        None => DEFAULT_MAX_CONCURRENT,
        Some(0) => {
            return Err(ApiError::invalid(
                "max_concurrent",
                "must be a positive integer",
            ));
        }
        Some(n) => n,
    };
    let endpoint = Endpoint {
        placement: put.placement,
        bandwidth: put.bandwidth,
        name: name.clone(),
        config: put.config,
    };
    caller_orbit(&state, &caller)
        .put_endpoint(&endpoint, max_concurrent)
        .await?;
    let status = if stored.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(endpoint_summary(&state, &name).await?)).into_response())
}

/// The rule for a replace: each secret the body leaves out takes the stored endpoint's
/// value when it has the same place in the same kind of config — the same `type`; for
/// SFTP the same `auth.method`; for S3 only with static keys (`access_key_id`) in the body.
/// So an operator edits an endpoint without retyping its passwords, and a changed kind of
/// login never inherits a secret meant for another.
fn keep_stored_secrets(body: &mut Map<String, Value>, stored: &Value) {
    let Some(stored) = stored.as_object() else {
        return;
    };
    let same = |key: &str, a: &Map<String, Value>, b: &Map<String, Value>| {
        a.get(key).is_some_and(|value| Some(value) == b.get(key))
    };
    if !same("type", body, stored) {
        return;
    }
    let (holder, stored_holder, secrets): (_, _, &[&str]) =
        match stored.get("type").and_then(Value::as_str) {
            Some("s3") if body.contains_key("access_key_id") => {
                (body, stored, &["secret_access_key", "session_token"])
            }
            Some("smb") => (body, stored, &["password"]),
            Some("sftp") => {
                let (Some(Value::Object(auth)), Some(Value::Object(stored_auth))) =
                    (body.get_mut("auth"), stored.get("auth"))
                else {
                    return;
                };
                if !same("method", auth, stored_auth) {
                    return;
                }
                (auth, stored_auth, &["password", "pem", "passphrase"])
            }
            _ => return,
        };
    for secret in secrets {
        if let Some(value) = stored_holder.get(*secret).filter(|value| value.is_string()) {
            holder
                .entry(secret.to_string())
                .or_insert_with(|| value.clone());
        }
    }
}

/// The error inside the body's internally tagged objects (`auth`, `host_key`), whose
/// paths serde loses (it buffers them to read their tag): read on their own, their errors
/// name `auth.password` or `host_key.path` instead of `password` or the whole body.
fn nested_error(fields: &Map<String, Value>) -> Option<ApiError> {
    fn within<T: serde::de::DeserializeOwned>(
        fields: &Map<String, Value>,
        key: &str,
    ) -> Option<ApiError> {
        let mut api = from_json::<T>(fields.get(key)?.clone()).err()?;
        let inner = api.field.take().filter(|field| field != "body");
        api.field = Some(inner.map_or(key.to_string(), |field| format!("{key}.{field}")));
        api.message = format!("{key}: {}", api.message);
        Some(api)
    }
    within::<SftpAuth>(fields, "auth").or_else(|| within::<HostKeyCheck>(fields, "host_key"))
}

#[utoipa::path(delete, path = "/api/v1/endpoints/{name}", tag = "endpoints",
    summary = "Delete an endpoint no queued or running job or template uses (204).",
    params(("name" = String, Path, description = "The endpoint's name.")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "A queued or running job or a template uses it", body = ErrorBody),
        (status = 404, description = "No endpoint of that name", body = ErrorBody)))]
pub(crate) async fn delete_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/endpoints/{name}/test?write_probe=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TestQuery {
    /// Write and remove a hidden probe file (default true); false for an endpoint only
    /// read from.
    write_probe: Option<bool>,
}

/// A diagnosis a person can act on.
#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointTest {
    endpoint: String,
    ok: bool,
    /// None when `ok`.
    problem: Option<Problem>,
    /// What is wrong, where, and what to check.
    message: String,
    /// Something to know about an endpoint that works.
    warning: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/endpoints/{name}/test", tag = "endpoints",
    summary = "Test an endpoint: a diagnosis a person can act on.",
    description = "It writes and removes a hidden probe file unless ?write_probe=false (for endpoints only read from).",
    params(("name" = String, Path, description = "The endpoint's name."), TestQuery),
    responses((status = 200, description = "The diagnosis (a failing endpoint is still a 200)", body = EndpointTest),
        (status = 404, description = "No endpoint of that name", body = ErrorBody)))]
pub(crate) async fn test_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Query(query): Query<TestQuery>,
) -> ApiResult {
    let write_probe = query.write_probe.unwrap_or(true);
    let diagnosis = caller_orbit(&state, &caller)
        .test_endpoint(&name, TestOptions { write_probe })
        .await?;
    Ok(Json(EndpointTest {
        ok: diagnosis.is_ok(),
        endpoint: diagnosis.endpoint,
        problem: diagnosis.problem,
        message: diagnosis.message,
        warning: diagnosis.warning,
    })
    .into_response())
}
