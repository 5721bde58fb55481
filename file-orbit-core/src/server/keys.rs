//! Managed API keys: minted here (`fo_` + 256 random bits, shown once), kept in the store
//! only as their SHA-256 so every node of a cluster sees them at once; created, listed and
//! revoked through `/api/v1/keys` and the example server's `keys` command. Keys declared in
//! the configuration (`api_keys`) are listed beside them but changed only in the file.

use super::config::{ApiKeyEntry, Role, generate_api_key};
use crate::engine::{Store, StoredApiKey};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use serde::Serialize;

/// An API key as listed: never the key, never its hash.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub name: String,
    pub role: Role,
    /// `store` (managed) or `config` (declared in the configuration file).
    pub source: &'static str,
    /// Milliseconds since the Unix epoch, like every time below; None for config keys.
    pub created_at: Option<i64>,
    pub created_by: Option<String>,
    pub expires_at: Option<i64>,
    /// When it last authenticated a request, to the minute (managed keys only).
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked: bool,
    pub expired: bool,
}

impl ApiKeyInfo {
    fn stored(key: &StoredApiKey, role: Role, now: i64) -> ApiKeyInfo {
        ApiKeyInfo {
            name: key.name.clone(),
            role,
            source: "store",
            created_at: Some(key.created_at),
            created_by: Some(key.created_by.clone()),
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            revoked: key.revoked_at.is_some(),
            expired: key.expires_at.is_some_and(|expires| expires <= now),
        }
    }
}

fn invalid(field: &str, message: String) -> Error {
    Error::invalid_field("API key", field, message)
}

/// The role a stored key names (a name no role has makes the key unusable).
pub(crate) fn stored_role(key: &StoredApiKey) -> Result<Role> {
    serde_json::from_value(serde_json::json!(key.role)).map_err(|_| {
        Error::new(
            ErrorKind::Store,
            "reading an API key",
            format!("API key {:?} has an unknown role", key.name),
        )
    })
}

/// Checks a key name: 1 to 64 of `A-Z a-z 0-9 . _ -`, and not a key of the configuration.
fn check_name(name: &str, declared: &[ApiKeyEntry]) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "name",
            "1 to 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    if declared.iter().any(|entry| entry.name == name) {
        return Err(invalid(
            "name",
            format!("the configuration declares a key named {name:?}"),
        ));
    }
    Ok(())
}

/// The time (ms since the epoch) `days` days from now: an expiry.
pub fn days_from_now(days: u32) -> i64 {
    chrono::Utc::now().timestamp_millis() + i64::from(days) * 86_400_000
}

/// Mints a key `name` with `role`, valid until `expires_at` (ms since the epoch, in the
/// future) or for ever, stores its hash (audited under `actor`) and returns the key — the
/// only time anyone sees it.
pub async fn create_api_key(
    store: &Store,
    declared: &[ApiKeyEntry],
    name: &str,
    role: Role,
    expires_at: Option<i64>,
    actor: &str,
) -> Result<(Secret, ApiKeyInfo)> {
    check_name(name, declared)?;
    let now = chrono::Utc::now().timestamp_millis();
    if expires_at.is_some_and(|expires| expires <= now) {
        return Err(invalid("expires_at", "must be in the future".into()));
    }
    let (key, entry) = generate_api_key(name, role);
    let role_name = serde_json::to_value(role)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let stored = store
        .create_api_key(name, &role_name, &entry.sha256, expires_at, actor)
        .await?;
    Ok((key, ApiKeyInfo::stored(&stored, role, now)))
}

/// The keys of the configuration, then the managed ones (revoked and expired included).
pub async fn list_api_keys(store: &Store, declared: &[ApiKeyEntry]) -> Result<Vec<ApiKeyInfo>> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut keys: Vec<ApiKeyInfo> = declared
        .iter()
        .map(|entry| ApiKeyInfo {
            name: entry.name.clone(),
            role: entry.role,
            source: "config",
            created_at: None,
            created_by: None,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            revoked: false,
            expired: false,
        })
        .collect();
    for key in store.api_keys().await? {
        keys.push(ApiKeyInfo::stored(&key, stored_role(&key)?, now));
    }
    Ok(keys)
}

/// Revokes managed key `name` on every node at once (audited under `actor`).
pub async fn revoke_api_key(
    store: &Store,
    declared: &[ApiKeyEntry],
    name: &str,
    actor: &str,
) -> Result<()> {
    if declared.iter().any(|entry| entry.name == name) {
        return Err(invalid(
            "name",
            format!("{name:?} is declared in the configuration file; remove it there"),
        ));
    }
    store.revoke_api_key(name, actor).await
}
