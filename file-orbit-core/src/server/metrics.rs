//! `/metrics`: Prometheus (OpenMetrics text) read from the store on each scrape, so every
//! node of a cluster reports the same totals — transfers by outcome and endpoint, bytes,
//! attempts and their durations, retries, dead letters, queue depth, active transfers per
//! endpoint, events — plus this node's workers.

use super::AppState;
use super::error::ApiError;
use crate::engine::JobState;
use crate::error::{Error, ErrorKind};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

type Labels = Vec<(&'static str, String)>;

fn store_error(context: &'static str) -> impl Fn(sqlx::Error) -> ApiError {
    move |err| ApiError::from(Error::new(ErrorKind::Store, context, err.to_string()))
}

/// The metrics text and its content type.
pub(super) async fn render(state: &AppState) -> Result<(String, &'static str), ApiError> {
    let store = state.orbit.store();
    let pool = &store.pool;
    let counts = store.job_counts().await?;
    // Per state and endpoint pair: jobs, bytes, retries (attempts after the first).
    let jobs: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT state, source_endpoint, destination_endpoint, COUNT(*), \
             CAST(COALESCE(SUM(bytes), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END), 0) AS BIGINT) \
         FROM jobs GROUP BY state, source_endpoint, destination_endpoint",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error("reading job totals"))?;
    let attempts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT outcome, COUNT(*), CAST(COALESCE(SUM(finished_at - started_at), 0) AS BIGINT) \
         FROM job_attempts WHERE finished_at IS NOT NULL AND outcome IS NOT NULL GROUP BY outcome",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error("reading attempt totals"))?;
    let events: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM events GROUP BY state")
            .fetch_all(pool)
            .await
            .map_err(store_error("counting events"))?;

    let mut registry = Registry::default();
    let count = |wanted: JobState| -> i64 {
        counts
            .iter()
            .filter(|(state, _)| *state == wanted)
            .map(|(_, n)| n)
            .sum()
    };
    let label = |name: &'static str, value: &str| -> Labels { vec![(name, value.to_string())] };

    let transfers = Family::<Labels, Counter>::default();
    let by_endpoint = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    let active = Family::<Labels, Gauge>::default();
    let retries = Counter::<u64>::default();
    for (outcome, state) in [
        ("succeeded", JobState::Succeeded),
        ("dead", JobState::Dead),
        ("cancelled", JobState::Cancelled),
    ] {
        transfers
            .get_or_create(&label("outcome", outcome))
            .inc_by(count(state) as u64);
    }
    let mut leased: BTreeMap<String, i64> = BTreeMap::new();
    for (job_state, source, destination, jobs, job_bytes, job_retries) in &jobs {
        retries.inc_by(*job_retries as u64);
        let sides = [("source", source), ("destination", destination)];
        match job_state.as_str() {
            "succeeded" | "dead" | "cancelled" => {
                for (side, endpoint) in sides {
                    let labels = vec![
                        ("endpoint", endpoint.clone()),
                        ("side", side.to_string()),
                        ("outcome", job_state.clone()),
                    ];
                    by_endpoint.get_or_create(&labels).inc_by(*jobs as u64);
                    if job_state == "succeeded" {
                        let labels = vec![("endpoint", endpoint.clone()), ("side", side.into())];
                        bytes.get_or_create(&labels).inc_by(*job_bytes as u64);
                    }
                }
            }
            "leased" => {
                *leased.entry(source.clone()).or_default() += jobs;
                if destination != source {
                    *leased.entry(destination.clone()).or_default() += jobs;
                }
            }
            _ => {}
        }
    }
    for (endpoint, running) in leased {
        active
            .get_or_create(&label("endpoint", &endpoint))
            .set(running);
    }
    registry.register(
        "file_orbit_transfers",
        "Finished transfers (jobs) by outcome",
        transfers,
    );
    registry.register(
        "file_orbit_endpoint_transfers",
        "Finished transfers by endpoint, side (source or destination) and outcome",
        by_endpoint,
    );
    registry.register(
        "file_orbit_endpoint_bytes",
        "Bytes of succeeded transfers by endpoint and side",
        bytes,
    );
    registry.register(
        "file_orbit_active_transfers",
        "Transfers running now (leased jobs) by endpoint",
        active,
    );
    registry.register(
        "file_orbit_retries",
        "Attempts after a job's first (retries and re-runs after a lost worker)",
        retries,
    );
    let dead = Gauge::<i64>::default();
    dead.set(count(JobState::Dead));
    registry.register(
        "file_orbit_dead_letters",
        "Jobs in the dead-letter state now",
        dead,
    );

    let attempt_count = Family::<Labels, Counter>::default();
    let attempt_seconds = Family::<Labels, Counter<f64, AtomicU64>>::default();
    for (outcome, n, millis) in &attempts {
        attempt_count
            .get_or_create(&label("outcome", outcome))
            .inc_by(*n as u64);
        attempt_seconds
            .get_or_create(&label("outcome", outcome))
            .inc_by(*millis as f64 / 1e3);
    }
    registry.register(
        "file_orbit_attempts",
        "Finished attempts by outcome (succeeded, failed, lost, cancelled)",
        attempt_count,
    );
    registry.register(
        "file_orbit_attempt_duration_seconds",
        "Time spent in finished attempts by outcome (divide by attempts for the mean)",
        attempt_seconds,
    );

    let depth = Family::<Labels, Gauge>::default();
    for (name, state) in [("queued", JobState::Queued), ("leased", JobState::Leased)] {
        depth.get_or_create(&label("state", name)).set(count(state));
    }
    registry.register(
        "file_orbit_queue_depth",
        "Jobs waiting or running, by state",
        depth,
    );
    let received = Family::<Labels, Counter>::default();
    for known in ["received", "processed", "dead"] {
        let n: i64 = events
            .iter()
            .filter(|(state, _)| state == known)
            .map(|(_, n)| n)
            .sum();
        received
            .get_or_create(&label("state", known))
            .inc_by(n as u64);
    }
    registry.register(
        "file_orbit_events_received",
        "Stored events by state",
        received,
    );
    let workers = Gauge::<i64>::default();
    workers.set(state.workers.count.load(Ordering::Relaxed) as i64);
    registry.register(
        "file_orbit_workers",
        "In-process workers of this node",
        workers,
    );

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|err| {
        ApiError::from(Error::new(
            ErrorKind::Protocol,
            "encoding metrics",
            err.to_string(),
        ))
    })?;
    Ok((
        text,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ))
}
