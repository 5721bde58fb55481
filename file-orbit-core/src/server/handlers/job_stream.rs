//! `/api/v1/jobs/{id}/events`: a job's live progress as Server-Sent Events.

use super::{ApiResult, Id, IdPath, Path, Shared};
use crate::engine::{JobProgress, JobState};
use crate::server::error::ErrorBody;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

/// Live progress: an `update` event whenever the job's state, attempts, bytes, files or
/// progress (speed, eta, totals; its worker writes it once a second) change (polled every
/// 200 ms), then `end` once it is terminal. Bounded by
/// `max_stream_secs` and by server shutdown.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    summary = "Live progress as Server-Sent Events.",
    description = "`update` events (data: a `JobUpdate`) whenever the job changes, then `end` \
        (data: `{\"id\", \"state\"}`) once it is terminal; `timeout` after max_stream_secs; \
        `error` (data: `{\"message\"}`) if the store fails.",
    params(("id" = inline(Id), Path, description = "The job's id.")),
    responses((status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No job of that id", body = ErrorBody)))]
pub(crate) async fn job_events(
    State(state): State<Shared>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    let id = id.0;
    let first = state.orbit.job(id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let orbit = state.orbit.clone();
    let mut stopping = state.stopping.clone();
    let limit = Duration::from_secs(state.config.max_stream_secs);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let mut last: Option<JobUpdate> = None;
        let mut job = first;
        loop {
            let snapshot = JobUpdate {
                id: job.id,
                state: job.state,
                attempts: job.attempts,
                bytes: job.bytes,
                files: job.files,
                progress: job.progress.clone(),
                last_error: job.last_error.clone(),
                last_error_kind: job.last_error_kind.clone(),
            };
            if last.as_ref() != Some(&snapshot) {
                let event = Event::default()
                    .event("update")
                    .data(json!(snapshot).to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
                last = Some(snapshot);
            }
            if job.state.is_terminal() {
                let end = Event::default()
                    .event("end")
                    .data(json!({"id": id, "state": job.state}).to_string());
                let _ = tx.send(Ok(end)).await;
                return;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = tx.send(Ok(Event::default().event("timeout").data("{}"))).await;
                    return;
                }
                _ = stopping.changed() => return,
                _ = tx.closed() => return,
            }
            job = match orbit.job(id).await {
                Ok(job) => job,
                Err(err) => {
                    let data = json!({"message": err.to_string()}).to_string();
                    let _ = tx
                        .send(Ok(Event::default().event("error").data(data)))
                        .await;
                    return;
                }
            };
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The data of a live-progress `update` event.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub(crate) struct JobUpdate {
    id: i64,
    state: JobState,
    attempts: i64,
    bytes: i64,
    files: i64,
    progress: Option<JobProgress>,
    last_error: Option<String>,
    last_error_kind: Option<String>,
}
