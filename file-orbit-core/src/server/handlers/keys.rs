//! `/api/v1/keys`: mint, list and revoke managed API keys (the key store is `server::keys`).

use super::{ApiResult, Body, Path, Shared};
use crate::server::auth::Principal;
use crate::server::config::Role;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::keys::{self, ApiKeyInfo};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /api/v1/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// Unique among the keys that are not revoked, and not a key of the configuration.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    role: Role,
    /// RFC 3339, in the future; or `expires_in_days`; neither: the key does not expire.
    #[serde(default)]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    expires_at: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    expires_in_days: Option<u32>,
}

/// A minted key: its listing and the key itself, shown only in this answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct MintedKey {
    #[serde(flatten)]
    info: ApiKeyInfo,
    /// The key (`fo_...`): shown only now.
    key: String,
}

/// Mints a key: 201 with the key itself (`key`, shown only in this answer) and its listing.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys",
    summary = "Mint an API key, stored only as its SHA-256: 201 with the key in `key`, shown only in this answer.",
    request_body = NewKey,
    responses((status = 201, description = "Minted", body = MintedKey),
        (status = 400, description = "A bad name, role or expiry, or a name in use; `field` names it", body = ErrorBody)))]
pub(crate) async fn create_key(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Body(body): Body<NewKey>,
) -> ApiResult {
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
        body.role,
        expires_at,
        &caller.name,
    )
    .await?;
    let answer = MintedKey {
        info,
        key: key.expose().to_string(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    summary = "List API keys, the configuration's and the managed ones.",
    description = "Name, role, source, created, expires, last used (to the minute), revoked. Never a key or its hash.",
    responses((status = 200, description = "The keys", body = Vec<ApiKeyInfo>)))]
pub(crate) async fn list_keys(State(state): State<Shared>) -> ApiResult {
    let keys = keys::list_api_keys(state.orbit.store(), &state.config.api_keys).await?;
    Ok(Json(keys).into_response())
}

/// Revokes a managed key: refused at once on every node (204).
#[utoipa::path(delete, path = "/api/v1/keys/{name}", tag = "keys",
    summary = "Revoke a managed API key: refused at once on every node (204).",
    params(("name" = String, Path, description = "The key's name.")),
    responses((status = 204, description = "Revoked (or already revoked)"),
        (status = 400, description = "A key of the configuration file: remove it there", body = ErrorBody),
        (status = 404, description = "No managed key of that name", body = ErrorBody)))]
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
