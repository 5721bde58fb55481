//! `/api/v1/keys`: mint, list and revoke managed API keys (the key store is `server::keys`).

use super::{ApiResult, Body, Path, Shared};
use crate::server::auth::Principal;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::keys;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

/// Body of `POST /api/v1/keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
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
pub(crate) async fn create_key(
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

pub(crate) async fn list_keys(State(state): State<Shared>) -> ApiResult {
    let keys = keys::list_api_keys(state.orbit.store(), &state.config.api_keys).await?;
    Ok(Json(keys).into_response())
}

/// Revokes a managed key: refused at once on every node (204).
pub(crate) async fn revoke_key(
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
