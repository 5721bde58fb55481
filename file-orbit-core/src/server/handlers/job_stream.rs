//! `/api/v1/jobs/{id}/events`: a job's live progress as Server-Sent Events.

use super::{ApiResult, Path, Shared, id_param};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// Live progress: an `update` event whenever the job's state, attempts, bytes, files or
/// progress (speed, eta, totals; its worker writes it once a second) change (polled every
/// 200 ms), then `end` once it is terminal. Bounded by
/// `max_stream_secs` and by server shutdown.
pub(crate) async fn job_events(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id = id_param(&id)?;
    let first = state.orbit.job(id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(16);
    let orbit = state.orbit.clone();
    let mut stopping = state.stopping.clone();
    let limit = Duration::from_secs(state.config.max_stream_secs);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let mut last: Option<Value> = None;
        let mut job = first;
        loop {
            let snapshot = json!({
                "id": job.id, "state": job.state, "attempts": job.attempts,
                "bytes": job.bytes, "files": job.files, "progress": job.progress,
                "last_error": job.last_error, "last_error_kind": job.last_error_kind,
            });
            if last.as_ref() != Some(&snapshot) {
                let event = Event::default().event("update").data(snapshot.to_string());
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
