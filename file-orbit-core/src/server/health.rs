//! `/health` (ok or not per component for anyone, the details for a viewer; each store
//! read bounded) and `/metrics` (Prometheus text from the store's totals).

use super::AppState;
use super::auth::Principal;
use super::config::Role;
use super::error::{ApiError, ErrorBody};
use crate::engine::{JobState, LiveWorkers};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

type Shared = Arc<AppState>;
type ApiResult<T = Response> = Result<T, ApiError>;

/// How long `/health` waits for each read of the store before it reports the database
/// down (an unreachable store would otherwise hold it for the pool's 30 s per read).
const HEALTH_STORE_WAIT: Duration = Duration::from_secs(5);

/// `read` of the store, or why it failed or did not answer within `HEALTH_STORE_WAIT`.
async fn health_read<T>(read: impl Future<Output = crate::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(HEALTH_STORE_WAIT, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            HEALTH_STORE_WAIT.as_secs()
        )),
    }
}

/// The role that sees `/health` in detail.
pub(super) const HEALTH_DETAIL_ROLE: Role = Role::Viewer;

/// Healthy (200) or not (503), with ok or not per component (database, workers, disks)
/// for anyone; an authenticated caller also reads the details: the store's backend and
/// latency or error, rclone's version, queue depth, this node's and the cluster's
/// workers, and each disk's path and free bytes.
#[utoipa::path(get, path = "/health", tag = "health",
    summary = "Health: 503 when unhealthy.",
    description = "Anyone reads ok or not per component (database, workers, disks); a viewer or \
        above also reads the details (store backend and latency, rclone, queue depth, workers, \
        disk paths and free space).",
    security((), ("api_key" = []), ("jwt" = [])),
    responses((status = 200, description = "Healthy", body = Object),
        (status = 503, description = "Unhealthy", body = Object),
        (status = 401, description = "Credentials sent but not valid", body = ErrorBody),
        (status = 403, description = "Credentials of a role below viewer", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody)))]
pub(super) async fn health(
    State(state): State<Shared>,
    caller: Option<Extension<Principal>>,
) -> Response {
    let orbit = &state.orbit;
    let started = std::time::Instant::now();
    let database = health_read(orbit.store().job_counts()).await;
    let db_ms = started.elapsed().as_millis() as u64;
    let workers = state.workers.count.load(Ordering::Relaxed);
    let draining = state.workers.draining.load(Ordering::Relaxed);
    // A node with no workers (API only) is healthy; a draining one is not.
    let workers_ok = !draining;
    let disks = disk_health(&state, database.is_ok()).await;
    let disks_ok = disks.iter().all(|disk| disk["ok"] == true);
    let healthy = database.is_ok() && workers_ok && disks_ok;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let summary = if healthy { "ok" } else { "unavailable" };
    if caller.is_none() {
        let body = json!({
            "status": summary,
            "database": {"ok": database.is_ok()},
            "workers": {"ok": workers_ok},
            "disks": {"ok": disks_ok},
        });
        return (status, Json(body)).into_response();
    }
    let (database_json, queue) = match &database {
        Ok(counts) => {
            let (queued, running) = (counts.get(JobState::Queued), counts.get(JobState::Leased));
            (
                json!({"ok": true, "latency_ms": db_ms, "backend": format!("{:?}", orbit.store().backend()).to_lowercase()}),
                json!({"depth": queued + running, "queued": queued, "running": running}),
            )
        }
        Err(message) => (json!({"ok": false, "error": message}), Value::Null),
    };
    // The cluster's worker processes, from the registry (informational: a node serving
    // the API stays healthy when workers elsewhere are down).
    let cluster = match &database {
        Ok(_) => match health_read(orbit.store().worker_nodes()).await {
            Ok(nodes) => json!(LiveWorkers::of(&nodes)),
            Err(err) => json!({"error": err}),
        },
        Err(_) => json!({"error": "the database is unavailable"}),
    };
    let body = json!({
        "status": summary,
        "database": database_json,
        "rclone": {"version": orbit.rclone().version().version},
        "queue": queue,
        "workers": {"ok": workers_ok, "count": workers, "draining": draining, "cluster": cluster},
        "disks": disks,
    });
    (status, Json(body)).into_response()
}

/// Free space where this node writes: the log directory and each local endpoint's root
/// (the nearest existing directory above it; read from the store when it answers), each
/// `ok` while at least `min_free_disk_mb` is free.
async fn disk_health(state: &AppState, store_answers: bool) -> Vec<Value> {
    let mut places: Vec<(String, std::path::PathBuf)> = Vec::new();
    if let Some(dir) = &state.config.log.dir {
        places.push(("log_dir".into(), dir.clone()));
    }
    let endpoints = if store_answers {
        health_read(state.orbit.endpoints()).await.ok()
    } else {
        None
    };
    if let Some(endpoints) = endpoints {
        for endpoint in endpoints.iter().filter(|e| e.kind == "local") {
            if let Some(root) = endpoint.config["root"].as_str() {
                places.push((format!("endpoint:{}", endpoint.name), root.into()));
            }
        }
    }
    let min_free = state.config.min_free_disk_mb.saturating_mul(1024 * 1024);
    let checked = tokio::task::spawn_blocking(move || {
        places
            .into_iter()
            .map(|(what, path)| {
                let free = path
                    .ancestors()
                    .find_map(|dir| rustix::fs::statvfs(dir).ok())
                    .map(|stat| stat.f_bavail.saturating_mul(stat.f_frsize));
                match free {
                    Some(free) => json!({"what": what, "path": path, "free_bytes": free,
                                         "ok": free >= min_free}),
                    None => json!({"what": what, "path": path, "ok": false,
                                   "error": "no file system found for this path"}),
                }
            })
            .collect()
    })
    .await;
    checked.unwrap_or_default()
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    summary = "Prometheus metrics (OpenMetrics text).",
    responses((status = 200, description = "The metrics",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub(crate) async fn metrics(State(state): State<Shared>) -> ApiResult {
    let (text, content_type) = super::metrics::render(&state).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
