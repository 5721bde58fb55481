//! Managed API keys as stored: name, role, creator, expiry, last use, revocation and the
//! key's SHA-256 — never the key. Minting keys and checking roles belong to the server;
//! this module only stores and finds them, each change audited in its transaction.

use super::audit;
use super::store::{Store, db_error, now_ms};
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A managed API key as stored (without its hash).
#[derive(Debug, Clone, Serialize)]
pub struct StoredApiKey {
    pub name: String,
    /// The role's name (`viewer`, `operator`, `admin`).
    pub role: String,
    /// Milliseconds since the Unix epoch, like every time below.
    pub created_at: i64,
    /// Who created it (its audit name).
    pub created_by: String,
    pub expires_at: Option<i64>,
    /// When it last authenticated a request, to the minute.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl StoredApiKey {
    /// Neither revoked nor expired at `now`.
    pub fn usable_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| expires > now)
    }
}

const KEY_COLUMNS: &str =
    "name, role, created_at, created_by, expires_at, last_used_at, revoked_at";

fn key_from_row(row: &AnyRow) -> Result<StoredApiKey> {
    let read = || -> std::result::Result<StoredApiKey, sqlx::Error> {
        Ok(StoredApiKey {
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
            expires_at: row.try_get("expires_at")?,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    };
    read().map_err(db_error("reading an API key"))
}

/// How stale `last_used_at` may get before a use writes it again: at most one write per
/// key and minute, however many requests it sends.
const LAST_USED_PRECISION_MS: i64 = 60_000;

impl Store {
    /// Stores a new key `name` with `role` under its SHA-256 (hex), audited as
    /// `api_key.created` by `actor`. A revoked key's name may be used again (its old key
    /// stays refused); an active key's may not.
    pub async fn create_api_key(
        &self,
        name: &str,
        role: &str,
        sha256: &str,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<StoredApiKey> {
        let context = format!("creating API key {name:?}");
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(db_error(&context))?;
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (name, role, sha256, created_at, created_by, expires_at, \
                 last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) \
             ON CONFLICT (name) DO UPDATE SET role = $2, sha256 = $3, created_at = $4, \
                 created_by = $5, expires_at = $6, last_used_at = NULL, revoked_at = NULL \
                 WHERE api_keys.revoked_at IS NOT NULL \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(name)
        .bind(role)
        .bind(sha256)
        .bind(now)
        .bind(actor)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(&context))?;
        let Some(row) = row else {
            return Err(Error::invalid_field(
                context,
                "name",
                format!("an API key named {name:?} exists; revoke it first"),
            ));
        };
        let key = key_from_row(&row)?;
        audit::append(
            &mut tx,
            self.backend,
            actor,
            "api_key.created",
            &format!("api_key/{name}"),
            "ok",
            &json!({"role": role, "expires_at": expires_at}),
        )
        .await?;
        tx.commit().await.map_err(db_error(&context))?;
        Ok(key)
    }

    /// Every managed key (revoked ones too), by name.
    pub async fn api_keys(&self) -> Result<Vec<StoredApiKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing API keys"))?
            .iter()
            .map(key_from_row)
            .collect()
    }

    /// The key stored under `sha256`, revoked or expired ones included (the caller says
    /// why it refuses them); its last use is recorded when older than a minute.
    pub async fn api_key_by_hash(&self, sha256: &str) -> Result<Option<StoredApiKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE sha256 = $1"
        ))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("finding an API key"))?;
        let Some(key) = row.as_ref().map(key_from_row).transpose()? else {
            return Ok(None);
        };
        let now = now_ms();
        if key.usable_at(now)
            && key
                .last_used_at
                .is_none_or(|used| now - used >= LAST_USED_PRECISION_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE sha256 = $2")
                .bind(now)
                .bind(sha256)
                .execute(&self.pool)
                .await
                .map_err(db_error("recording an API key's use"))?;
        }
        Ok(Some(key))
    }

    /// Revokes key `name` at once for every node (audited as `api_key.revoked` by
    /// `actor`); revoking a revoked key changes nothing. NotFound when there is no such key.
    pub async fn revoke_api_key(&self, name: &str, actor: &str) -> Result<()> {
        let set = "revoked_at = $1";
        self.revoke_named(("api_keys", "api_key", "API key"), set, name, actor)
            .await
    }
}
