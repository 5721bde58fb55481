//! `/metrics`: Prometheus (OpenMetrics text) read from the store on each scrape, so every
//! node of a cluster reports the same totals — transfers by outcome and endpoint, bytes,
//! attempts and a histogram of their durations (counted in SQL), retries, dead letters,
//! queue depth, active transfers per endpoint, events, the live worker processes — plus
//! this node's workers.

use super::AppState;
use super::error::ApiError;
use crate::engine::{JobState, LiveWorkers};
use crate::error::{Error, ErrorKind};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

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
    let attempts = attempt_durations(pool).await?;
    let nodes = store.worker_nodes().await?;
    let events: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM events GROUP BY state")
            .fetch_all(pool)
            .await
            .map_err(store_error("counting events"))?;

    let mut registry = Registry::default();
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
            .inc_by(counts.get(state) as u64);
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
    dead.set(counts.get(JobState::Dead));
    registry.register(
        "file_orbit_dead_letters",
        "Jobs in the dead-letter state now",
        dead,
    );

    let attempt_count = Family::<Labels, Counter>::default();
    for (labels, histogram) in &attempts.0 {
        attempt_count.get_or_create(labels).inc_by(histogram.count);
    }
    registry.register(
        "file_orbit_attempts",
        "Finished attempts by outcome (succeeded, failed, lost, cancelled)",
        attempt_count,
    );
    registry.register(
        "file_orbit_attempt_duration_seconds",
        "Duration of finished attempts by outcome",
        attempts,
    );

    let depth = Family::<Labels, Gauge>::default();
    for (name, state) in [("queued", JobState::Queued), ("leased", JobState::Leased)] {
        depth
            .get_or_create(&label("state", name))
            .set(counts.get(state));
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
    let live = LiveWorkers::of(&nodes);
    let (processes, slots, running) = (
        Gauge::<i64>::default(),
        Gauge::<i64>::default(),
        Gauge::<i64>::default(),
    );
    processes.set(live.alive);
    slots.set(live.slots);
    running.set(live.running);
    registry.register(
        "file_orbit_worker_processes",
        "Worker processes of the cluster alive now (worker registry)",
        processes,
    );
    registry.register(
        "file_orbit_worker_slots",
        "Transfer slots of the cluster's live worker processes",
        slots,
    );
    registry.register(
        "file_orbit_worker_running",
        "Transfers the cluster's live worker processes reported running at their last renewal",
        running,
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

/// Upper bounds (seconds) of the attempt duration buckets; the last one is `+Inf`.
const DURATION_BUCKETS: [f64; 10] = [
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    f64::MAX,
];

/// A histogram counted by the store, not observed in this process: per bucket counts (not
/// cumulative, as the encoder wants them).
#[derive(Debug, Default)]
struct StoredHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

/// Stored histograms by label set: encoded as one histogram family.
#[derive(Debug, Default)]
struct StoredHistograms(Vec<(Labels, StoredHistogram)>);

impl TypedMetric for StoredHistograms {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StoredHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, histogram) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(
                    histogram.sum,
                    histogram.count,
                    &histogram.buckets,
                    None,
                )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Finished attempts by outcome as duration histograms, counted in SQL.
async fn attempt_durations(pool: &sqlx::AnyPool) -> Result<StoredHistograms, ApiError> {
    let finite = &DURATION_BUCKETS[..DURATION_BUCKETS.len() - 1];
    let at_most: Vec<String> = (1..=finite.len())
        .map(|n| {
            format!(
                "CAST(SUM(CASE WHEN finished_at - started_at <= ${n} THEN 1 ELSE 0 END) AS BIGINT)"
            )
        })
        .collect();
    let sql = format!(
        "SELECT outcome, COUNT(*), CAST(COALESCE(SUM(finished_at - started_at), 0) AS BIGINT), {} \
         FROM job_attempts WHERE finished_at IS NOT NULL AND outcome IS NOT NULL GROUP BY outcome",
        at_most.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for bound in finite {
        query = query.bind((bound * 1e3) as i64);
    }
    let rows = query
        .fetch_all(pool)
        .await
        .map_err(store_error("reading attempt durations"))?;
    let read = |row: &sqlx::any::AnyRow| -> Result<(Labels, StoredHistogram), sqlx::Error> {
        use sqlx::Row;
        let count: i64 = row.try_get(1)?;
        let millis: i64 = row.try_get(2)?;
        // Cumulative counts from SQL; the last bucket holds the rest.
        let mut below = 0;
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len());
        for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
            let cumulative = match index {
                i if i < finite.len() => row.try_get::<i64, _>(3 + i)?,
                _ => count,
            };
            buckets.push((*bound, (cumulative - below).max(0) as u64));
            below = cumulative;
        }
        let labels = vec![("outcome", row.try_get::<String, _>(0)?)];
        let histogram = StoredHistogram {
            sum: millis as f64 / 1e3,
            count: count as u64,
            buckets,
        };
        Ok((labels, histogram))
    };
    rows.iter()
        .map(read)
        .collect::<Result<_, _>>()
        .map(StoredHistograms)
        .map_err(store_error("reading attempt durations"))
}
