//! Notifications in the store: a row per notification (its rule plain, its channel sealed
//! and with secrets as `***`), the outbox of messages with their leases, tries and
//! outcomes, and totals by channel (the audit cursor and rate windows are
//! `notify_cursor`'s). Only sealed bytes and JSON pass through here: what a
//! rule admits and what a message says is `notify`'s business.

use super::audit;
use super::store::{Backend, Cell, Store, db_error, now_ms, page_limit, put_named};
use crate::error::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// A notification as it is stored: what `Store::put_notification` writes.
pub(crate) struct StoredNotification<'a> {
    pub name: &'a str,
    /// `webhook`, `email`, `slack`, `teams`.
    pub channel: &'a str,
    /// Events, filter, rate limit, tries.
    pub rule: &'a Value,
    /// The channel with its secrets as `***`.
    pub public_channel: &'a Value,
    /// The channel, sealed under `key_id`.
    pub sealed_channel: &'a str,
    pub key_id: &'a str,
    pub enabled: bool,
}

/// A notification as listed (secrets as `***`), with its messages by state.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct NotificationSummary {
    pub name: String,
    /// The channel's type.
    pub kind: String,
    /// The channel's fields, secrets as `***`.
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub channel: Value,
    /// `events`, `filter`, `rate_limit`, `max_attempts`.
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub rule: Value,
    pub enabled: bool,
    pub key_id: String,
    /// Messages waiting (queued, collecting a digest, or being sent).
    pub pending: i64,
    pub sent: i64,
    pub dead: i64,
    /// When the last message went out (ms since the epoch).
    pub last_sent_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One message of the outbox.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    /// The outbox row.
    pub id: i64,
    pub notification: String,
    pub channel: String,
    /// The stable id receivers see (webhook header, mail Message-ID).
    pub message_id: String,
    /// The event's name, or `digest`.
    pub event: String,
    /// The message as JSON (`notify::Message`).
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub body: Value,
    pub item_count: i64,
    /// `collecting` (a digest whose window is open), `queued`, `sending`, `sent`, `dead`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// When it is (next) due, ms since the epoch.
    pub run_after: i64,
    pub last_error: Option<String>,
    /// What the channel answered to the send that worked.
    pub answer: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str = "id, notification, channel, message_id, event, body, item_count, \
    state, attempts, max_attempts, run_after, last_error, answer, created_at, updated_at, sent_at";

fn message_from_row(row: &AnyRow) -> Result<OutboxMessage> {
    let read = || -> std::result::Result<OutboxMessage, sqlx::Error> {
        Ok(OutboxMessage {
            id: row.try_get("id")?,
            notification: row.try_get("notification")?,
            channel: row.try_get("channel")?,
            message_id: row.try_get("message_id")?,
            event: row.try_get("event")?,
            body: serde_json::from_str(&row.try_get::<String, _>("body")?).unwrap_or(Value::Null),
            item_count: row.try_get("item_count")?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            last_error: row.try_get("last_error")?,
            answer: row.try_get("answer")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            sent_at: row.try_get("sent_at")?,
        })
    };
    read().map_err(db_error("reading a notification message"))
}

/// Which outbox messages to list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub notification: Option<String>,
    pub state: Option<String>,
    /// Only messages older than this row (paging, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Creates or replaces a notification (its rate window starts afresh) and audits
    /// `notification.created` / `.edited`.
    pub(crate) async fn put_notification(
        &self,
        stored: &StoredNotification<'_>,
        actor: &str,
    ) -> Result<()> {
        let context = "storing a notification";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let rule = stored.rule.to_string();
        let public = stored.public_channel.to_string();
        let existed = put_named(
            &mut tx,
            "notifications",
            stored.name,
            &[
                ("channel", Cell::Text(stored.channel)),
                ("rule", Cell::Text(&rule)),
                ("public_channel", Cell::Text(&public)),
                ("sealed_channel", Cell::Text(stored.sealed_channel)),
                ("key_id", Cell::Text(stored.key_id)),
                ("enabled", Cell::Int(stored.enabled as i64)),
                ("window_sent", Cell::Int(0)),
            ],
            context,
        )
        .await?;
        sqlx::query(
            "UPDATE notifications SET window_start = NULL, digest_id = NULL WHERE name = $1",
        )
        .bind(stored.name)
        .execute(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let action = if existed {
            "notification.edited"
        } else {
            "notification.created"
        };
        let detail = json!({"channel": stored.channel, "rule": stored.rule,
                            "enabled": stored.enabled});
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &format!("notification/{}", stored.name),
            "ok",
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// Deletes a notification; its messages stay in the outbox as history (unsent ones
    /// die at their next try, saying why).
    pub(crate) async fn delete_notification(&self, name: &str, actor: &str) -> Result<()> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("deleting a notification"))?;
        self.delete_named(
            tx,
            "DELETE FROM notifications WHERE name = $1",
            "notification",
            name,
            actor,
        )
        .await
    }

    /// Every notification, by name, with its messages counted by state.
    pub async fn notifications(&self) -> Result<Vec<NotificationSummary>> {
        self.notification_summaries(None).await
    }

    /// One notification's summary; NotFound when there is none of that name.
    pub async fn notification(&self, name: &str) -> Result<NotificationSummary> {
        self.notification_summaries(Some(name))
            .await?
            .pop()
            .ok_or_else(|| no_notification("reading a notification", name))
    }

    async fn notification_summaries(&self, name: Option<&str>) -> Result<Vec<NotificationSummary>> {
        let context = "reading notifications";
        let rows = sqlx::query(
            "SELECT n.name, n.channel, n.rule, n.public_channel, n.enabled, n.key_id, \
                 n.created_at, n.updated_at, \
                 (SELECT COUNT(*) FROM notification_messages m WHERE m.notification = n.name \
                     AND m.state IN ('queued', 'collecting', 'sending')) AS pending, \
                 (SELECT COUNT(*) FROM notification_messages m WHERE m.notification = n.name \
                     AND m.state = 'sent') AS sent, \
                 (SELECT COUNT(*) FROM notification_messages m WHERE m.notification = n.name \
                     AND m.state = 'dead') AS dead, \
                 (SELECT MAX(sent_at) FROM notification_messages m WHERE m.notification = n.name) \
                     AS last_sent_at \
             FROM notifications n WHERE ($1 IS NULL OR n.name = $1) ORDER BY n.name",
        )
        .bind(name)
        .fetch_all(&self.reader)
        .await
        .map_err(db_error(context))?;
        rows.iter()
            .map(|row| {
                let json = |column: &str| -> std::result::Result<Value, sqlx::Error> {
                    Ok(serde_json::from_str(&row.try_get::<String, _>(column)?)
                        .unwrap_or(Value::Null))
                };
                Ok(NotificationSummary {
                    name: row.try_get("name")?,
                    kind: row.try_get("channel")?,
                    channel: json("public_channel")?,
                    rule: json("rule")?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    key_id: row.try_get("key_id")?,
                    pending: row.try_get("pending")?,
                    sent: row.try_get("sent")?,
                    dead: row.try_get("dead")?,
                    last_sent_at: row.try_get("last_sent_at")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error(context))
    }

    /// A notification's sealed channel and the key id that sealed it.
    pub(crate) async fn sealed_notification(&self, name: &str) -> Result<(String, String)> {
        let context = "reading a notification";
        let row = sqlx::query("SELECT sealed_channel, key_id FROM notifications WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error(context))?
            .ok_or_else(|| no_notification(context, name))?;
        Ok((
            row.try_get(0).map_err(db_error(context))?,
            row.try_get(1).map_err(db_error(context))?,
        ))
    }

    /// The notifications sealed by another key than `current`.
    pub(crate) async fn notifications_sealed_by_other_keys(
        &self,
        current: &str,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM notifications WHERE key_id <> $1")
            .bind(current)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("finding notifications to re-seal"))
    }

    /// Outbox messages, newest first (`limit` 1 to 1,000; default 100).
    pub async fn notification_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM notification_messages \
             WHERE ($1 IS NULL OR notification = $1) AND ($2 IS NULL OR state = $2) \
                 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
        .bind(filter.notification.as_deref())
        .bind(filter.state.as_deref())
        .bind(filter.before_id)
        .bind(page_limit(filter.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("listing notification messages"))?;
        rows.iter().map(message_from_row).collect()
    }

    /// Messages sent, attempts failed and messages dead, by channel type:
    /// `(channel, outcome, count)` with outcome `sent`, `failed` or `dead`.
    pub async fn notification_totals(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT channel, outcome, count FROM notification_totals")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("reading notification totals"))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error("reading notification totals"))
    }

    /// Leases up to `limit` due messages to `owner` until `lease_until` (a message whose
    /// sender died is due again when its lease ends), counting the try.
    pub(crate) async fn lease_messages(
        &self,
        owner: &str,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let now = now_ms();
        let due = "((state IN ('queued', 'collecting') AND run_after <= $3) \
                    OR (state = 'sending' AND lease_expires_at < $3))";
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE notification_messages SET state = 'sending', lease_owner = $1, \
                 lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM notification_messages WHERE {due} \
                 ORDER BY run_after, id LIMIT $4{lock}) AND {due} \
             RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("leasing notification messages"))?;
        rows.iter().map(message_from_row).collect()
    }

    /// Records that message `id`, leased by `owner`, was delivered; false when the lease
    /// was lost (another node sends it).
    pub(crate) async fn message_sent(&self, id: i64, owner: &str, answer: &str) -> Result<bool> {
        let context = "recording a sent notification";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let now = now_ms();
        let channel: Option<String> = sqlx::query_scalar(
            "UPDATE notification_messages SET state = 'sent', answer = $1, sent_at = $2, \
                 updated_at = $2, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND lease_owner = $4 AND state = 'sending' RETURNING channel",
        )
        .bind(answer)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let Some(channel) = channel else {
            return Ok(false);
        };
        count_outcome(&mut tx, &channel, "sent").await?;
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }

    /// Records a failed try of message `id`: due again at `retry_at`, or dead (with an
    /// audit record) when that is None. False when the lease was lost.
    pub(crate) async fn message_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let context = "recording a failed notification";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let now = now_ms();
        let state = if retry_at.is_some() { "queued" } else { "dead" };
        let row = sqlx::query(
            "UPDATE notification_messages SET state = $1, run_after = $2, last_error = $3, \
                 updated_at = $4, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND lease_owner = $6 AND state = 'sending' \
             RETURNING channel, notification, message_id, attempts",
        )
        .bind(state)
        .bind(retry_at.unwrap_or(now))
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let channel: String = row.try_get(0).map_err(db_error(context))?;
        count_outcome(&mut tx, &channel, "failed").await?;
        if retry_at.is_none() {
            count_outcome(&mut tx, &channel, "dead").await?;
            let notification: String = row.try_get(1).map_err(db_error(context))?;
            let message_id: String = row.try_get(2).map_err(db_error(context))?;
            let attempts: i64 = row.try_get(3).map_err(db_error(context))?;
            audit::append(
                &mut tx,
                self.backend,
                owner,
                "notification.dead",
                &format!("notification/{notification}"),
                "failed",
                &json!({"message": id, "message_id": message_id, "attempts": attempts,
                        "error": error}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }

    /// Queues a dead message again for `max_attempts` more tries (the operator's retry).
    pub(crate) async fn retry_message(&self, id: i64, actor: &str) -> Result<()> {
        let context = "retrying a notification message";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let now = now_ms();
        let notification: Option<String> = sqlx::query_scalar(
            "UPDATE notification_messages SET state = 'queued', run_after = $1, updated_at = $1, \
                 max_attempts = attempts + max_attempts WHERE id = $2 AND state = 'dead' \
             RETURNING notification",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let Some(notification) = notification else {
            return Err(Error::new(
                ErrorKind::NotFound,
                context,
                format!("no dead notification message {id}"),
            ));
        };
        audit::append(
            &mut tx,
            self.backend,
            actor,
            "notification.retried",
            &format!("notification/{notification}"),
            "ok",
            &json!({"message": id}),
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }
}

async fn count_outcome(tx: &mut Transaction<'_, Any>, channel: &str, outcome: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_totals (channel, outcome, count) VALUES ($1, $2, 1) \
         ON CONFLICT (channel, outcome) DO UPDATE SET count = notification_totals.count + 1",
    )
    .bind(channel)
    .bind(outcome)
    .execute(&mut **tx)
    .await
    .map_err(db_error("counting notifications"))?;
    Ok(())
}

fn no_notification(context: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        context,
        format!("no notification named {name:?}"),
    )
}
