//! `/api/v1/audit`: the audit log and the check of its hash chain.

use super::{ApiResult, LimitQuery, Query, Shared};
use crate::engine::AuditRecord;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    summary = "The audit log, newest first.",
    params(LimitQuery),
    responses((status = 200, description = "The records", body = Vec<AuditRecord>)))]
pub(crate) async fn audit_log(
    State(state): State<Shared>,
    Query(query): Query<LimitQuery>,
) -> ApiResult {
    Ok(Json(state.orbit.audit_log(query.limit()).await?).into_response())
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
