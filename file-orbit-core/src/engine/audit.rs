//! The append-only audit log: who did what to which subject, when, with what outcome.
//! Each record carries the hash of the one before it (`prev_hash` is UNIQUE, so the chain
//! cannot fork); `verify` recomputes the chain and finds the first tampered record.
//! Callers pass details without secrets. Also the deletion of a named row with its record.

use super::store::{Backend, Store, db_error, now_ms, placeholder_rows};
use crate::error::{Error, ErrorKind, Result};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyConnection, Row, Transaction};

const GENESIS: &str = "genesis";

/// One audit record.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

fn record_hash(
    prev: &str,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: &str,
) -> String {
    let mut hasher = Sha256::new();
    for part in [
        prev,
        &at.to_string(),
        actor,
        action,
        subject,
        outcome,
        detail,
    ] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// One record for `append_many`.
pub(crate) struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: String,
    pub outcome: &'a str,
    pub detail: Value,
}

/// Appends a record inside the caller's transaction (so it commits with the change it
/// describes).
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    actor: &str,
    action: &str,
    subject: &str,
    outcome: &str,
    detail: &Value,
) -> Result<()> {
    let entry = Entry {
        actor,
        action,
        subject: subject.to_string(),
        outcome,
        detail: detail.clone(),
    };
    append_many(tx, backend, &[entry]).await
}

/// Appends `entries` in order inside the caller's transaction: one lock, one read of the
/// chain's end and one INSERT for the lot.
pub(crate) async fn append_many(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    entries: &[Entry<'_>],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let conn: &mut AnyConnection = tx;
    if backend == Backend::Postgres {
        // Serialises appends across nodes; released at commit.
        sqlx::query("SELECT pg_advisory_xact_lock(7243001)")
            .execute(&mut *conn)
            .await
            .map_err(db_error("locking the audit log"))?;
    }
    let mut prev: String = sqlx::query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("reading the audit log"))?
        .map(|row| row.try_get::<String, _>(0))
        .transpose()
        .map_err(db_error("reading the audit log"))?
        .unwrap_or_else(|| GENESIS.to_string());
    let at = now_ms();
    // Rows are inserted (and numbered) in the order of the VALUES list.
    let sql = format!(
        "INSERT INTO audit_log (at, actor, action, subject, outcome, detail, prev_hash, hash) \
         VALUES {}",
        placeholder_rows(1, entries.len(), &["$"; 8])
    );
    let mut query = sqlx::query(&sql);
    for entry in entries {
        let detail = entry.detail.to_string();
        let hash = record_hash(
            &prev,
            at,
            entry.actor,
            entry.action,
            &entry.subject,
            entry.outcome,
            &detail,
        );
        query = query
            .bind(at)
            .bind(entry.actor)
            .bind(entry.action)
            .bind(entry.subject.as_str())
            .bind(entry.outcome)
            .bind(detail)
            .bind(std::mem::replace(&mut prev, hash.clone()))
            .bind(hash);
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(db_error("appending to the audit log"))?;
    Ok(())
}

fn records_from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<AuditRecord>> {
    rows.iter()
        .map(|row| {
            Ok(AuditRecord {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                subject: row.try_get("subject")?,
                outcome: row.try_get("outcome")?,
                detail: serde_json::from_str(&row.try_get::<String, _>("detail")?)
                    .unwrap_or(Value::Null),
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_error("reading the audit log"))
}

/// Up to `limit` records after record `after`, oldest first, inside the caller's
/// transaction (records commit in id order: appends are serialised).
pub(crate) async fn records_after(
    tx: &mut Transaction<'_, Any>,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, outcome, detail, prev_hash, hash \
         FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error("reading the audit log"))?;
    records_from_rows(&rows)
}

/// Which audit records to read: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Before this time (ms since the epoch).
    pub until: Option<i64>,
    /// Exactly this actor (`key:<name>`, `jwt:<sub>`, a worker).
    pub actor: Option<String>,
    /// Subjects containing this text (case-sensitive), e.g. `endpoint/in`.
    pub subject: Option<String>,
    /// Records about this endpoint: subject `endpoint/<name>`, or a job (`job/<id>`)
    /// whose source or destination it is.
    pub endpoint: Option<String>,
    /// Records with a smaller id (the next page, newest first).
    pub before_id: Option<i64>,
}

/// Which end of the log a read starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOrder {
    NewestFirst,
    OldestFirst,
}

impl Store {
    /// The newest `limit` audit records, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        self.audit_records(&AuditFilter::default(), AuditOrder::NewestFirst, limit)
            .await
    }

    /// Up to `limit` records matching `filter`, in `order` (id order, which is the order
    /// they were appended), filtered in SQL with every value bound, never spliced.
    pub async fn audit_records(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        enum Bound {
            Int(i64),
            Text(String),
        }
        let mut conditions = Vec::new();
        let mut binds: Vec<Bound> = Vec::new();
        let mut param = |bind: Bound| {
            binds.push(bind);
            format!("${}", binds.len())
        };
        if let Some(since) = filter.since {
            conditions.push(format!("at >= {}", param(Bound::Int(since))));
        }
        if let Some(until) = filter.until {
            conditions.push(format!("at < {}", param(Bound::Int(until))));
        }
        if let Some(before) = filter.before_id {
            conditions.push(format!("id < {}", param(Bound::Int(before))));
        }
        if let Some(actor) = &filter.actor {
            conditions.push(format!("actor = {}", param(Bound::Text(actor.clone()))));
        }
        if let Some(part) = &filter.subject {
            let position = match self.backend {
                Backend::Sqlite => "instr",
                Backend::Postgres => "strpos",
            };
            let part = param(Bound::Text(part.clone()));
            conditions.push(format!("{position}(subject, {part}) > 0"));
        }
        if let Some(name) = &filter.endpoint {
            let subject = param(Bound::Text(format!("endpoint/{name}")));
            let (source, destination) = (
                param(Bound::Text(name.clone())),
                param(Bound::Text(name.clone())),
            );
            conditions.push(format!(
                "(subject = {subject} OR subject IN (SELECT 'job/' || CAST(id AS TEXT) \
                 FROM jobs WHERE source_endpoint = {source} \
                 OR destination_endpoint = {destination}))"
            ));
        }
        let limit_param = param(Bound::Int(limit));
        let direction = match order {
            AuditOrder::NewestFirst => "DESC",
            AuditOrder::OldestFirst => "ASC",
        };
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, actor, action, subject, outcome, detail, prev_hash, hash \
             FROM audit_log {filter_sql} ORDER BY id {direction} LIMIT {limit_param}"
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bound::Int(value) => query.bind(value),
                Bound::Text(value) => query.bind(value),
            };
        }
        let rows = query
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("reading the audit log"))?;
        records_from_rows(&rows)
    }

    /// Recomputes the whole chain; `Ok(None)` when intact, else the id of the first record
    /// whose content or link does not match.
    pub async fn verify_audit_log(&self) -> Result<Option<i64>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, outcome, detail, prev_hash, hash \
             FROM audit_log ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("reading the audit log"))?;
        let mut expected_prev = GENESIS.to_string();
        for row in rows {
            let get = |name: &str| row.try_get::<String, _>(name).unwrap_or_default();
            let id: i64 = row
                .try_get("id")
                .map_err(db_error("reading the audit log"))?;
            let at: i64 = row
                .try_get("at")
                .map_err(db_error("reading the audit log"))?;
            let prev = get("prev_hash");
            let hash = record_hash(
                &prev,
                at,
                &get("actor"),
                &get("action"),
                &get("subject"),
                &get("outcome"),
                &get("detail"),
            );
            if prev != expected_prev || hash != get("hash") {
                return Ok(Some(id));
            }
            expected_prev = hash;
        }
        Ok(None)
    }
}

impl Store {
    /// Appends one record on its own (an action that changes nothing else in the store:
    /// a connection test, a test message).
    pub(crate) async fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        outcome: &str,
        detail: &Value,
    ) -> Result<()> {
        let context = "appending to the audit log";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        append(
            &mut tx,
            self.backend,
            actor,
            action,
            subject,
            outcome,
            detail,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// Deletes the row of `kind` (`endpoint`, `template`) named `name` with `delete` (a
    /// fixed `DELETE ... WHERE name = $1`) inside `tx`, audits `<kind>.deleted` by `actor`
    /// and commits; NotFound when there is no such row.
    pub(crate) async fn delete_named(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        delete: &'static str,
        kind: &str,
        name: &str,
        actor: &str,
    ) -> Result<()> {
        let context = format!("deleting {kind} {name:?}");
        let deleted = sqlx::query(delete)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error(&context))?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::new(
                ErrorKind::NotFound,
                context,
                format!("no {kind} named {name:?}"),
            ));
        }
        append(
            &mut tx,
            self.backend,
            actor,
            &format!("{kind}.deleted"),
            &format!("{kind}/{name}"),
            "ok",
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await.map_err(db_error(&context))
    }
}
