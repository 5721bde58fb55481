//! The web console's sessions as stored: who signed in, with which role and credential,
//! until when — under the SHA-256 of the session cookie, never the cookie. Signing in and
//! out is audited in the same transaction. Minting cookies and checking them belong to the
//! server; this module only stores and finds sessions.

use super::audit;
use super::store::{Store, db_error, now_ms};
use crate::error::Result;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The caller's audit name (`key:<name>`, `jwt:<sub>`).
    pub principal: String,
    /// The role's name (`viewer`, `operator`, `admin`).
    pub role: String,
    /// The API key's SHA-256 (hex) it was opened with; None for a JWT.
    pub credential: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub expires_at: i64,
}

fn session_from_row(row: &AnyRow) -> Result<StoredSession> {
    let read = || -> std::result::Result<StoredSession, sqlx::Error> {
        Ok(StoredSession {
            principal: row.try_get("principal")?,
            role: row.try_get("role")?,
            credential: row.try_get("credential")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    };
    read().map_err(db_error("reading a session"))
}

impl Store {
    /// Stores a session under `sha256` (of its cookie), audited as `session.opened` by its
    /// principal; sessions already expired are deleted in the same transaction.
    pub async fn open_session(&self, sha256: &str, session: &StoredSession) -> Result<()> {
        let context = "opening a console session";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(db_error(context))?;
        sqlx::query(
            "INSERT INTO ui_sessions (sha256, principal, role, credential, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sha256)
        .bind(&session.principal)
        .bind(&session.role)
        .bind(session.credential.as_deref())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error(context))?;
        audit::append(
            &mut tx,
            self.backend,
            &session.principal,
            "session.opened",
            "console",
            "ok",
            &json!({"role": session.role, "expires_at": session.expires_at}),
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// The unexpired session stored under `sha256`, if any.
    pub async fn session(&self, sha256: &str) -> Result<Option<StoredSession>> {
        sqlx::query(
            "SELECT principal, role, credential, created_at, expires_at FROM ui_sessions \
             WHERE sha256 = $1 AND expires_at > $2",
        )
        .bind(sha256)
        .bind(now_ms())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error("finding a session"))?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    /// Ends the session stored under `sha256` (audited as `session.closed` when there was
    /// one); ending an ended session changes nothing.
    pub async fn close_session(&self, sha256: &str) -> Result<()> {
        let context = "closing a console session";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let row = sqlx::query("DELETE FROM ui_sessions WHERE sha256 = $1 RETURNING principal")
            .bind(sha256)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error(context))?;
        if let Some(row) = row {
            let principal: String = row.try_get("principal").map_err(db_error(context))?;
            audit::append(
                &mut tx,
                self.backend,
                &principal,
                "session.closed",
                "console",
                "ok",
                &json!({}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_open_expire_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let now = now_ms();
        let live = StoredSession {
            principal: "key:ann".into(),
            role: "viewer".into(),
            credential: Some("ab".repeat(32)),
            created_at: now,
            expires_at: now + 60_000,
        };
        store.open_session("live", &live).await.unwrap();
        let expired = StoredSession {
            expires_at: now - 1,
            ..live.clone()
        };
        store.open_session("old", &expired).await.unwrap();
        assert_eq!(store.session("live").await.unwrap(), Some(live));
        assert_eq!(store.session("old").await.unwrap(), None);
        store.close_session("live").await.unwrap();
        store.close_session("live").await.unwrap();
        assert_eq!(store.session("live").await.unwrap(), None);
        let actions: Vec<String> = store
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .map(|record| record.action)
            .collect();
        assert_eq!(actions.iter().filter(|a| *a == "session.closed").count(), 1);
    }
}
