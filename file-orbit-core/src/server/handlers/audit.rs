//! `/api/v1/audit`: the audit log and the check of its hash chain.

use super::{ApiResult, Query, Shared, limit_query};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;
use std::collections::HashMap;

pub(crate) async fn audit_log(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = limit_query(&query)?;
    Ok(Json(state.orbit.audit_log(limit).await?).into_response())
}

pub(crate) async fn verify_audit(State(state): State<Shared>) -> ApiResult {
    let first_bad = state.orbit.verify_audit_log().await?;
    Ok(Json(json!({"intact": first_bad.is_none(), "first_bad_id": first_bad})).into_response())
}
