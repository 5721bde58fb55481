//! The API's handlers, one file per resource, and what they share: the extractors whose
//! errors are API errors (400 naming the field, 413, 415), query-parameter checks, the
//! refusal of `***` secrets copied back from a listing, and the caller's `Orbit`. The
//! routes, their roles and the middleware are `server::routes`.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod dashboard;
pub(crate) mod endpoints;
pub(crate) mod events;
pub(crate) mod files;
pub(crate) mod job_stream;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod logs;
pub(crate) mod notifications;
pub(crate) mod sources;
pub(crate) mod templates;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, from_json};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::sync::Arc;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

pub(crate) type Shared = Arc<AppState>;
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// The Orbit that names this request's caller in the audit log (`key:<name>`, `jwt:<sub>`).
pub(crate) fn caller_orbit(state: &AppState, caller: &Principal) -> crate::engine::Orbit {
    state.orbit.acting_as(&caller.name)
}

/// Refuses a body holding a secret copied back from a listing: a string that is exactly
/// `***` is a 400 naming its path (e.g. `auth.password`, `spec.secret_access_key`).
pub(crate) fn refuse_masked_secrets(body: &Value) -> ApiResult<()> {
    match masked_secret(body, "") {
        Some(path) => Err(ApiError::invalid(
            &path,
            "\"***\" is how secrets are shown, not a value: send the real secret",
        )),
        None => Ok(()),
    }
}

/// The path of the first string that is exactly `***`, if any.
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

/// A query string read into `T` (its fields the known parameters; any other is refused):
/// an error is a 400 naming the parameter, without the value.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// A query string read into `T`: an error is a 400 naming the parameter, without the value.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let mut api = ApiError::from_serde(&err.inner().to_string(), "query");
        if path != "." && api.field.as_deref() == Some("query") {
            api.message = format!("{path}: {}", api.message);
            api.field = Some(path);
        }
        api
    })
}

/// An integer from `MIN` to `MAX` (a query or path parameter): anything else is refused by
/// name, and the OpenAPI document states the range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounded<const MIN: i64, const MAX: i64>(pub(crate) i64);

/// A stored row's id (jobs, events): 1 or more.
pub(crate) type Id = Bounded<1, { i64::MAX }>;

/// A path's `{id}`, read by name so an error names it.
#[derive(Deserialize)]
pub(crate) struct IdPath {
    pub(crate) id: Id,
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        if (MIN..=MAX).contains(&value) {
            Ok(Bounded(value))
        } else if MAX == i64::MAX {
            Err(D::Error::custom(format!(
                "must be an integer of at least {MIN}"
            )))
        } else {
            Err(D::Error::custom(format!(
                "must be an integer from {MIN} to {MAX}"
            )))
        }
    }
}

impl<const MIN: i64, const MAX: i64> utoipa::PartialSchema for Bounded<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(MIN));
        if MAX == i64::MAX {
            schema.into()
        } else {
            schema.maximum(Some(MAX)).into()
        }
    }
}

impl<const MIN: i64, const MAX: i64> utoipa::ToSchema for Bounded<MIN, MAX> {}
