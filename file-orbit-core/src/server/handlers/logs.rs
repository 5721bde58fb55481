//! `/api/v1/logs`: the service's log lines, filtered, newest first.

use super::{ApiError, ApiResult, Query, Shared, id_param, int_param, query_params};
use crate::service::logs::{self, LogQuery};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use std::collections::HashMap;

/// Log lines, newest first: `service`, `level` (this and more severe), `job`, `since` and
/// `until` (RFC 3339), `limit` (default 200).
pub(crate) async fn read_logs(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let query = query_params(
        &query,
        &["service", "level", "job", "since", "until", "limit"],
    )?;
    let Some(dir) = state.config.log.dir.clone() else {
        return Err(ApiError::not_found(
            "no log directory is configured (log.dir or FILE_ORBIT_LOG_DIR)",
        ));
    };
    let time = |name: &str| -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
        query
            .get(name)
            .map(|text| {
                chrono::DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            name,
                            format!("{text:?} is not an RFC 3339 time (2026-11-30T12:00:00Z)"),
                        )
                    })
            })
            .transpose()
    };
    let level = query
        .get("level")
        .map(|text| {
            text.parse::<tracing::Level>().map_err(|_| {
                ApiError::invalid(
                    "level",
                    format!("{text:?} is not a level (error, warn, info, debug, trace)"),
                )
            })
        })
        .transpose()?;
    let job = query
        .get("job")
        .map(|text| {
            id_param(text)
                .map_err(|_| ApiError::invalid("job", format!("{text:?} is not a job id")))
        })
        .transpose()?;
    let log_query = LogQuery {
        service: query.get("service").cloned(),
        level,
        job,
        since: time("since")?,
        until: time("until")?,
        limit: int_param(&query, "limit", 200, 1..=5000)? as usize,
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
    Ok(Json(lines).into_response())
}
