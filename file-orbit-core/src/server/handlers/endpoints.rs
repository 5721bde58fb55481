//! `/api/v1/endpoints`: list, read, create or replace (secrets write-only: `***` is refused),
//! delete and test endpoints.

use super::{ApiResult, Body, Path, Query, Shared, caller_orbit, query_params};
use crate::endpoint::{Endpoint, TestOptions};
use crate::engine::DEFAULT_MAX_CONCURRENT;
use crate::server::AppState;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, from_json};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(crate) async fn list_endpoints(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.endpoints().await?).into_response())
}

pub(crate) async fn endpoint_summary(state: &AppState, name: &str) -> ApiResult<Value> {
    let summary = state
        .orbit
        .endpoints()
        .await?
        .into_iter()
        .find(|endpoint| endpoint.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint named {name:?}")))?;
    Ok(json!(summary))
}

pub(crate) async fn get_endpoint(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(endpoint_summary(&state, &name).await?).into_response())
}

/// Body: the endpoint as JSON (`type` and its fields; `name` optional, must match the
/// path) plus `max_concurrent` (default 4). 201 when created, 200 when replaced.
pub(crate) async fn put_endpoint(
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

pub(crate) async fn delete_endpoint(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller).delete_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn test_endpoint(
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
