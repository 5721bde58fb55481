//! `/api/v1/audit`: the audit log (filtered, paged), its export as CSV or JSON (the
//! compliance report) and the check of its hash chain.

use super::{ApiResult, Bounded, Id, Query, Shared};
use crate::engine::{AuditFilter, AuditOrder, AuditRecord};
use crate::server::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The most records one export holds.
pub(crate) const MAX_EXPORT_ROWS: usize = 100_000;
/// The longest actor, subject or endpoint filter, in characters.
const MAX_FILTER_CHARS: usize = 1024;

/// `GET /api/v1/audit?since=&until=&actor=&subject=&endpoint=&before_id=&limit=`.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// At most this many records (default 100).
    #[param(inline)]
    pub(crate) limit: Option<Bounded<1, 1000>>,
    /// Records at or after this time (RFC 3339; write `+` as `%2B`).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    pub(crate) until: Option<DateTime<Utc>>,
    /// Records by exactly this actor (`key:<name>`, `jwt:<sub>`, a worker).
    #[param(max_length = 1024)]
    pub(crate) actor: Option<String>,
    /// Records whose subject contains this text (`endpoint/in`, `job/42`).
    #[param(max_length = 1024)]
    pub(crate) subject: Option<String>,
    /// Records about this endpoint: its own (`endpoint/<name>`) and those of the jobs
    /// from or to it.
    #[param(max_length = 1024)]
    pub(crate) endpoint: Option<String>,
    /// Records with a smaller id: the page after one ending at that id.
    #[param(inline)]
    pub(crate) before_id: Option<Id>,
}

impl AuditQuery {
    /// The store's filter and the page size (the API's and the console's one reading).
    pub(crate) fn filter(&self) -> ApiResult<(AuditFilter, i64)> {
        let (since, until) = time_range(self.since, self.until)?;
        let filter = AuditFilter {
            since,
            until,
            actor: bounded_text("actor", self.actor.clone())?,
            subject: bounded_text("subject", self.subject.clone())?,
            endpoint: bounded_text("endpoint", self.endpoint.clone())?,
            before_id: self.before_id.map(|id| id.0),
        };
        Ok((filter, self.limit.map_or(100, |limit| limit.0)))
    }
}

/// A text filter no longer than `MAX_FILTER_CHARS`, else a 400 naming `field`.
fn bounded_text(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(text) if text.chars().count() > MAX_FILTER_CHARS => Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_FILTER_CHARS} characters"),
        )),
        value => Ok(value),
    }
}

/// A time range whose end is not before its start, else a 400 naming `until`.
fn time_range(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> ApiResult<(Option<i64>, Option<i64>)> {
    if let (Some(since), Some(until)) = (since, until) {
        if until < since {
            return Err(ApiError::invalid("until", "must not be before since"));
        }
    }
    Ok((
        since.map(|at| at.timestamp_millis()),
        until.map(|at| at.timestamp_millis()),
    ))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    summary = "The audit log, newest first, filtered by time, actor, subject and endpoint.",
    params(AuditQuery),
    responses((status = 200, description = "The records", body = Vec<AuditRecord>)))]
pub(crate) async fn audit_log(
    State(state): State<Shared>,
    Query(query): Query<AuditQuery>,
) -> ApiResult {
    let (filter, limit) = query.filter()?;
    let records = state
        .orbit
        .audit_records(&filter, AuditOrder::NewestFirst, limit)
        .await?;
    Ok(Json(records).into_response())
}

/// The export's format.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExportFormat {
    Csv,
    Json,
}

/// `GET /api/v1/audit/export?since=&until=&actor=&endpoint=&format=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// Records at or after this time (RFC 3339; write `+` as `%2B`).
    since: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Records by exactly this actor.
    #[param(max_length = 1024)]
    actor: Option<String>,
    /// Records about this endpoint: its own (`endpoint/<name>`) and those of the jobs
    /// from or to it.
    #[param(max_length = 1024)]
    endpoint: Option<String>,
    /// `csv` (the default) or `json`.
    #[param(inline)]
    format: Option<ExportFormat>,
}

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    summary = "Export the audit log as CSV or JSON, oldest first (the compliance report).",
    description = "Every matching record in time order, at most 100000: when there were more, \
        the answer says `X-File-Orbit-Truncated: true` (narrow the time range). CSV has a header \
        row: id, at (RFC 3339), actor, action, subject, outcome, detail (JSON), hash.",
    params(ExportQuery),
    responses((status = 200, description = "The records, as an attachment",
        headers(("X-File-Orbit-Truncated" = String, description = "`true` when more records matched than the export holds"),
            ("Content-Disposition" = String, description = "attachment; filename=\"audit-<since>-<until>.csv\"")),
        content((String = "text/csv"), (Vec<AuditRecord> = "application/json")))))]
pub(crate) async fn export_audit(
    State(state): State<Shared>,
    Query(query): Query<ExportQuery>,
) -> ApiResult {
    let (since, until) = time_range(query.since, query.until)?;
    let filter = AuditFilter {
        since,
        until,
        actor: bounded_text("actor", query.actor)?,
        subject: None,
        endpoint: bounded_text("endpoint", query.endpoint)?,
        before_id: None,
    };
    let mut records = state
        .orbit
        .audit_records(&filter, AuditOrder::OldestFirst, MAX_EXPORT_ROWS as i64 + 1)
        .await?;
    let truncated = records.len() > MAX_EXPORT_ROWS;
    records.truncate(MAX_EXPORT_ROWS);
    let format = query.format.unwrap_or(ExportFormat::Csv);
    let stamp = |at: Option<DateTime<Utc>>, otherwise: &str| {
        at.map_or(otherwise.to_string(), |at| {
            at.format("%Y%m%dT%H%M%SZ").to_string()
        })
    };
    let (extension, content_type, body) = match format {
        ExportFormat::Csv => ("csv", "text/csv; charset=utf-8", to_csv(&records)?),
        ExportFormat::Json => (
            "json",
            "application/json",
            serde_json::to_vec(&records).map_err(|err| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "export",
                    err.to_string(),
                )
            })?,
        ),
    };
    let filename = format!(
        "audit-{}-{}.{extension}",
        stamp(query.since, "start"),
        stamp(query.until, "now")
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        "x-file-orbit-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok(response)
}

/// The records as CSV: a header row, then one row per record, quoted where needed.
fn to_csv(records: &[AuditRecord]) -> ApiResult<Vec<u8>> {
    let failed = |err: csv::Error| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "export",
            format!("writing CSV: {err}"),
        )
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "id", "at", "actor", "action", "subject", "outcome", "detail", "hash",
        ])
        .map_err(failed)?;
    for record in records {
        let at = DateTime::from_timestamp_millis(record.at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        writer
            .write_record([
                record.id.to_string().as_str(),
                &at,
                &record.actor,
                &record.action,
                &record.subject,
                &record.outcome,
                &record.detail.to_string(),
                &record.hash,
            ])
            .map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|err| failed(err.into_error().into()))
}

/// Whether the audit log's hash chain is intact, else its first bad record.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditCheck {
    intact: bool,
    first_bad_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    summary = "Check the audit log's hash chain.",
    responses((status = 200, description = "The check", body = AuditCheck)))]
pub(crate) async fn verify_audit(State(state): State<Shared>) -> ApiResult {
    let first_bad = state.orbit.verify_audit_log().await?;
    Ok(Json(AuditCheck {
        intact: first_bad.is_none(),
        first_bad_id: first_bad,
    })
    .into_response())
}
