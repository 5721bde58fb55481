//! The dispatch transaction of notifications: it owns the store's audit cursor while it
//! is open (PostgreSQL: a row lock; SQLite: the one writer), reads the audit records after
//! it and the rules with their rate windows, adds outbox messages, updates digests and
//! windows, and moves the cursor by compare-and-set when it commits. What the records
//! mean and which rule admits them is `notify::dispatch`'s business.

use super::audit::{self, AuditRecord};
use super::store::{Backend, Store, db_error, now_ms};
use crate::error::Result;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

/// A notification's rule and rate window, as the dispatcher reads it.
#[derive(Debug, Clone)]
pub(crate) struct RuleRow {
    pub name: String,
    pub channel: String,
    pub rule: Value,
    pub window_start: Option<i64>,
    pub window_sent: i64,
    pub digest_id: Option<i64>,
}

/// A message the dispatcher adds to the outbox.
pub(crate) struct NewMessage<'a> {
    pub notification: &'a str,
    pub channel: &'a str,
    pub message_id: &'a str,
    pub event: &'a str,
    pub body: &'a Value,
    pub item_count: i64,
    /// `queued`, or `collecting` for a digest.
    pub state: &'a str,
    pub max_attempts: i64,
    pub run_after: i64,
}

/// Turning audit records into messages: one transaction that owns the cursor while it
/// is open (others wait or find it moved), adds messages, and moves the cursor.
pub(crate) struct Dispatch {
    tx: Transaction<'static, Any>,
    cursor: i64,
}

impl Store {
    /// Opens the dispatch transaction, the cursor read under its lock.
    pub(crate) async fn begin_dispatch(&self) -> Result<Dispatch> {
        let context = "reading the notification cursor";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let cursor: i64 = sqlx::query_scalar(&format!(
            "SELECT audit_id FROM notify_cursor WHERE id = 1{lock}"
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(context))?;
        Ok(Dispatch { tx, cursor })
    }
}

impl Dispatch {
    /// Up to `limit` audit records after the cursor, oldest first.
    pub async fn audit_after(&mut self, limit: i64) -> Result<Vec<AuditRecord>> {
        audit::records_after(&mut self.tx, self.cursor, limit).await
    }

    /// The enabled notifications' rules and rate windows.
    pub async fn rules(&mut self) -> Result<Vec<RuleRow>> {
        let context = "reading notification rules";
        let rows = sqlx::query(
            "SELECT name, channel, rule, window_start, window_sent, digest_id \
             FROM notifications WHERE enabled = 1 ORDER BY name",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_error(context))?;
        rows.iter()
            .map(|row| {
                Ok(RuleRow {
                    name: row.try_get("name")?,
                    channel: row.try_get("channel")?,
                    rule: serde_json::from_str(&row.try_get::<String, _>("rule")?)
                        .unwrap_or(Value::Null),
                    window_start: row.try_get("window_start")?,
                    window_sent: row.try_get("window_sent")?,
                    digest_id: row.try_get("digest_id")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error(context))
    }

    /// The body of digest `id` while it still collects (None once a sender took it).
    pub async fn collecting_digest(&mut self, id: i64) -> Result<Option<Value>> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM notification_messages WHERE id = $1 AND state = 'collecting'",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(db_error("reading a digest"))?;
        Ok(body.and_then(|body| serde_json::from_str(&body).ok()))
    }

    /// Adds a message to the outbox; its row id.
    pub async fn insert_message(&mut self, message: &NewMessage<'_>) -> Result<i64> {
        let now = now_ms();
        sqlx::query_scalar(
            "INSERT INTO notification_messages (notification, channel, message_id, event, body, \
                 item_count, state, attempts, max_attempts, run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $10) RETURNING id",
        )
        .bind(message.notification)
        .bind(message.channel)
        .bind(message.message_id)
        .bind(message.event)
        .bind(message.body.to_string())
        .bind(message.item_count)
        .bind(message.state)
        .bind(message.max_attempts)
        .bind(message.run_after)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db_error("adding a notification message"))
    }

    /// Rewrites digest `id`'s body while it still collects; false once a sender took it.
    pub async fn update_digest(&mut self, id: i64, body: &Value, item_count: i64) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE notification_messages SET body = $1, item_count = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'collecting'",
        )
        .bind(body.to_string())
        .bind(item_count)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(db_error("updating a digest"))?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Stores a rule's rate window.
    pub async fn set_window(
        &mut self,
        name: &str,
        start: Option<i64>,
        sent: i64,
        digest_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET window_start = $1, window_sent = $2, digest_id = $3 \
             WHERE name = $4",
        )
        .bind(start)
        .bind(sent)
        .bind(digest_id)
        .bind(name)
        .execute(&mut *self.tx)
        .await
        .map_err(db_error("storing a rate window"))?;
        Ok(())
    }

    /// Moves the cursor to `audit_id` and commits everything added; false (nothing kept)
    /// when another node moved the cursor meanwhile.
    pub async fn commit(mut self, audit_id: i64) -> Result<bool> {
        let context = "moving the notification cursor";
        let moved =
            sqlx::query("UPDATE notify_cursor SET audit_id = $1 WHERE id = 1 AND audit_id = $2")
                .bind(audit_id)
                .bind(self.cursor)
                .execute(&mut *self.tx)
                .await
                .map_err(db_error(context))?
                .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        self.tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }
}
