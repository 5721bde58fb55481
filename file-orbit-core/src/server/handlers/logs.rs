//! `/api/v1/logs`: the service's log lines, filtered, newest first.

use super::{ApiError, ApiResult, Bounded, Id, Query, Shared};
use crate::server::AppState;
use crate::server::error::ErrorBody;
use crate::service::logs::{self, LogLine, LogQuery};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A log level; a filter keeps it and the more severe ones.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for tracing::Level {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// `GET /api/v1/logs`: filters.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    /// Only this service's files (`server`, `worker`): letters, digits, '-' or '_'.
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub(crate) service: Option<String>,
    /// This level and more severe ones.
    #[param(inline)]
    pub(crate) level: Option<LogLevel>,
    /// Only lines logged for this job.
    #[param(inline)]
    pub(crate) job: Option<Id>,
    /// Not before this time (RFC 3339).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Not after this time (RFC 3339).
    pub(crate) until: Option<DateTime<Utc>>,
    /// At most this many lines (default 200).
    #[param(inline)]
    pub(crate) limit: Option<Bounded<1, 5000>>,
}

/// Log lines, newest first: `service`, `level` (this and more severe), `job`, `since` and
/// `until` (RFC 3339), `limit` (default 200).
#[utoipa::path(get, path = "/api/v1/logs", tag = "logs",
    summary = "Log lines, newest first.",
    params(LogsQuery),
    responses((status = 200, description = "The lines", body = Vec<LogLine>),
        (status = 404, description = "No log directory is configured", body = ErrorBody)))]
pub(crate) async fn read_logs(
    State(state): State<Shared>,
    Query(query): Query<LogsQuery>,
) -> ApiResult {
    Ok(Json(read_lines(&state, query).await?).into_response())
}

/// The lines `query` asks for, from the configured log directory (the API's and the
/// console's one reading).
pub(crate) async fn read_lines(state: &AppState, query: LogsQuery) -> ApiResult<Vec<LogLine>> {
    let Some(dir) = state.config.log.dir.clone() else {
        return Err(ApiError::not_found(
            "no log directory is configured (log.dir or FILE_ORBIT_LOG_DIR)",
        ));
    };
    let log_query = LogQuery {
        service: query.service,
        level: query.level.map(tracing::Level::from),
        job: query.job.map(|job| job.0),
        since: query.since,
        until: query.until,
        limit: query.limit.map_or(200, |limit| limit.0) as usize,
    };
    let lines = tokio::task::spawn_blocking(move || logs::read(&dir, &log_query))
        .await
        .map_err(|err| {
            ApiError::from(crate::error::Error::new(
                crate::error::ErrorKind::Store,
                "reading logs",
                err.to_string(),
            ))
        })??;
    Ok(lines)
}
