//! The API's handlers, one file per resource, and what they share: the extractors whose
//! errors are API errors (400 naming the field, 413, 415), query-parameter checks and the
//! caller's `Orbit`. The routes, their roles and the middleware are `server::routes`.

pub(crate) mod audit;
pub(crate) mod endpoints;
pub(crate) mod events;
pub(crate) mod job_stream;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod logs;
pub(crate) mod templates;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, from_json};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) type Shared = Arc<AppState>;
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// The Orbit that names this request's caller in the audit log (`key:<name>`, `jwt:<sub>`).
pub(crate) fn caller_orbit(state: &AppState, caller: &Principal) -> crate::engine::Orbit {
    state.orbit.acting_as(&caller.name)
}

/// A JSON body whose errors are API errors (400 naming the field or its path, 413, 415).
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(request, state).await?;
        Ok(Body(from_json(value)?))
    }
}

/// Path parameters whose errors are API errors (400 naming the parameter, e.g. a segment
/// that is not UTF-8 once percent-decoded).
pub(crate) struct Path<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// A query string whose errors are API errors (400 naming the parameter).
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Query parameters, each known one named; anything else is refused.
pub(crate) fn query_params(
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

pub(crate) fn int_param(
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

pub(crate) fn id_param(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("{text:?} is not an id")))
}

pub(crate) fn limit_query(query: &HashMap<String, String>) -> ApiResult<i64> {
    let query = query_params(query, &["limit"])?;
    int_param(&query, "limit", 100, 1..=1000)
}
