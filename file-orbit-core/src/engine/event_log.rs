//! The stored events: one row per distinct event (UNIQUE dedup key), its payload, the
//! templates it matched and the jobs it made.

use super::audit;
use super::store::{Store, db_error, now_ms};
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// What became of an event.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Stored; its jobs may not all be submitted yet (a crash in between is resumed).
    Received,
    Processed,
    /// Unusable (malformed payload, ...): kept with the reason, never retried by itself.
    Dead,
}

/// A stored event.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub id: i64,
    /// Which kind of source saw it: `local-watch`, `sqs`, `schedule`, `poll`, `manual`.
    pub source: String,
    /// The stored source that produced it (None: a direct call, a schedule, a replay).
    pub source_name: Option<String>,
    pub dedup_key: Option<String>,
    pub payload: Value,
    pub matched_templates: Vec<String>,
    pub job_ids: Vec<i64>,
    pub state: EventState,
    pub error: Option<String>,
    pub created_at: i64,
}

impl EventState {
    fn parse(text: &str) -> EventState {
        match text {
            "processed" => EventState::Processed,
            "dead" => EventState::Dead,
            _ => EventState::Received,
        }
    }
}

const EVENT_COLUMNS: &str = "id, source, source_name, dedup_key, payload, matched_templates, job_ids, state, error, created_at";

fn event_from_row(row: &AnyRow) -> Result<EventRecord> {
    let read = || -> Result<EventRecord, sqlx::Error> {
        let json = |name: &str| -> Result<Value, sqlx::Error> {
            Ok(serde_json::from_str(&row.try_get::<String, _>(name)?).unwrap_or(Value::Null))
        };
        Ok(EventRecord {
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            source_name: row.try_get("source_name")?,
            dedup_key: row.try_get("dedup_key")?,
            payload: json("payload")?,
            matched_templates: serde_json::from_value(json("matched_templates")?)
                .unwrap_or_default(),
            job_ids: serde_json::from_value(json("job_ids")?).unwrap_or_default(),
            state: EventState::parse(&row.try_get::<String, _>("state")?),
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
        })
    };
    read().map_err(db_error("reading an event"))
}

impl Store {
    /// Stores an event from `source` (a kind; `source_name`: the stored source) unless one
    /// with `dedup_key` exists; returns the id and state of the stored one.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_event(
        &self,
        source: &str,
        source_name: Option<&str>,
        dedup_key: Option<&str>,
        payload: &Value,
        state: &str,
        error: Option<&str>,
    ) -> Result<(i64, EventState)> {
        let context = "storing an event";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let inserted = sqlx::query(
            "INSERT INTO events (source, dedup_key, payload, matched_templates, job_ids, state, error, created_at, source_name) \
             VALUES ($1, $2, $3, '[]', '[]', $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        )
        .bind(source)
        .bind(dedup_key)
        .bind(payload.to_string())
        .bind(state)
        .bind(error)
        .bind(now_ms())
        .bind(source_name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        if let Some(row) = inserted {
            let id: i64 = row.try_get(0).map_err(db_error(context))?;
            let state = EventState::parse(state);
            if state == EventState::Dead {
                // A rejected event is announced (notifications read the audit log).
                audit::append(
                    &mut tx,
                    self.backend,
                    source_name.unwrap_or(source),
                    "event.rejected",
                    &format!("event/{id}"),
                    "failed",
                    &json!({"source": source, "source_name": source_name, "error": error}),
                )
                .await?;
            }
            tx.commit().await.map_err(db_error(context))?;
            return Ok((id, state));
        }
        tx.commit().await.map_err(db_error(context))?;
        let row = sqlx::query("SELECT id, state FROM events WHERE dedup_key = $1")
            .bind(dedup_key)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("finding a duplicate event"))?;
        let id = row
            .try_get("id")
            .map_err(db_error("finding a duplicate event"))?;
        let state: String = row
            .try_get("state")
            .map_err(db_error("finding a duplicate event"))?;
        Ok((id, EventState::parse(&state)))
    }

    /// Records the templates an event matched and the jobs it made (appending on replay).
    pub async fn event_processed(
        &self,
        id: i64,
        templates: &[String],
        job_ids: &[i64],
    ) -> Result<()> {
        let mut record = self.event(id).await?;
        record.matched_templates.extend(templates.iter().cloned());
        record.job_ids.extend(job_ids);
        sqlx::query("UPDATE events SET matched_templates = $1, job_ids = $2, state = 'processed' WHERE id = $3")
            .bind(serde_json::to_string(&record.matched_templates).unwrap_or_default())
            .bind(serde_json::to_string(&record.job_ids).unwrap_or_default())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error("recording an event's jobs"))?;
        Ok(())
    }

    pub async fn event(&self, id: i64) -> Result<EventRecord> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error("reading an event"))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "reading an event",
                    format!("no event {id}"),
                )
            })?;
        event_from_row(&row)
    }

    /// The newest `limit` events, newest first.
    pub async fn events(&self, limit: i64) -> Result<Vec<EventRecord>> {
        self.newest_events(None, limit).await
    }

    /// The newest `limit` events the stored source `source_name` produced, newest first.
    pub async fn events_of_source(
        &self,
        source_name: &str,
        limit: i64,
    ) -> Result<Vec<EventRecord>> {
        self.newest_events(Some(source_name), limit).await
    }

    /// The newest `limit` events (at most 10,000), of stored source `source_name` if given.
    async fn newest_events(
        &self,
        source_name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRecord>> {
        let (filter, limit_at) = match source_name {
            Some(_) => ("WHERE source_name = $1 ", 2),
            None => ("", 1),
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events {filter}ORDER BY id DESC LIMIT ${limit_at}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(name) = source_name {
            query = query.bind(name);
        }
        let rows = query
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("listing events"))?;
        rows.iter().map(event_from_row).collect()
    }
}

impl Store {
    /// Schedules whose next tick is due at `now`: (template, tick).
    pub async fn due_schedules(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT template, next_fire_at FROM schedules WHERE next_fire_at <= $1 ORDER BY template")
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("reading schedules"))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_error("reading schedules"))
    }

    /// Moves a schedule from tick `due` to `next`; true for the one caller that did it.
    pub async fn claim_schedule_tick(&self, template: &str, due: i64, next: i64) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE schedules SET next_fire_at = $1, last_fired_at = $2 WHERE template = $3 AND next_fire_at = $2",
        )
        .bind(next)
        .bind(due)
        .bind(template)
        .execute(&self.pool)
        .await
        .map_err(db_error("claiming a schedule tick"))?
        .rows_affected();
        Ok(claimed == 1)
    }
}
