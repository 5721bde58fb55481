//! `/metrics`: Prometheus (OpenMetrics text) read from the store on each scrape, so every
//! node of a cluster reports the same totals — transfers by outcome and endpoint, bytes,
//! attempts and a histogram of their durations, retries, dead letters, queue depth, active
//! transfers per endpoint, events, the live worker processes, each event source's counters,
//! state and last event (never a field of its spec) — plus this node's workers and its
//! bandwidth per endpoint (limit in force, bytes per second, bytes moved).
//! Everything comes from `Store` methods reading the totals the store keeps (a few rows,
//! however many jobs it holds), never from counting jobs.

use super::AppState;
use super::error::ApiError;
use crate::engine::{
    AgentSummary, AttemptTotals, BandwidthUsage, Job, JobCounts, JobFilter, JobState, LiveWorkers,
    SourceState, SourceStatus,
};
use crate::error::{Error, ErrorKind};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of `/metrics`: OpenMetrics text.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The metrics text and its content type.
pub(super) async fn render(state: &AppState) -> Result<(String, &'static str), ApiError> {
    let store = state.orbit.store();
    let jobs = store.job_totals().await?;
    let attempts = StoredHistograms::of(&store.attempt_totals().await?);
    let events = store.event_totals().await?;
    let nodes = store.worker_nodes().await?;
    let sources = store.sources().await?;
    let notifications = store.notification_totals().await?;
    let agents = state.orbit.agents().await?;
    let running_jobs = store
        .jobs(&JobFilter {
            state: Some(JobState::Leased),
            limit: 1000,
            ..JobFilter::default()
        })
        .await?;
    let counts = JobCounts::of(&jobs);

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
    for total in &jobs {
        retries.inc_by(total.retries as u64);
        let sides = [
            ("source", &total.source_endpoint),
            ("destination", &total.destination_endpoint),
        ];
        match total.state {
            JobState::Succeeded | JobState::Dead | JobState::Cancelled => {
                for (side, endpoint) in sides {
                    let labels = vec![
                        ("endpoint", endpoint.clone()),
                        ("side", side.to_string()),
                        ("outcome", total.state.as_str().to_string()),
                    ];
                    by_endpoint.get_or_create(&labels).inc_by(total.jobs as u64);
                    if total.state == JobState::Succeeded {
                        let labels = vec![("endpoint", endpoint.clone()), ("side", side.into())];
                        bytes.get_or_create(&labels).inc_by(total.bytes as u64);
                    }
                }
            }
            JobState::Leased => {
                *leased.entry(total.source_endpoint.clone()).or_default() += total.jobs;
                if total.destination_endpoint != total.source_endpoint {
                    *leased
                        .entry(total.destination_endpoint.clone())
                        .or_default() += total.jobs;
                }
            }
            JobState::Queued => {}
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

    register_sources(&mut registry, &sources);
    register_agents(&mut registry, &agents, &running_jobs);
    register_bandwidth(&mut registry, &state.orbit.bandwidth_usage());
    register_notifications(&mut registry, &notifications);

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|err| {
        ApiError::from(Error::new(
            ErrorKind::Protocol,
            "encoding metrics",
            err.to_string(),
        ))
    })?;
    Ok((text, CONTENT_TYPE))
}

/// Per source (its name the only label from it): the counters summed over every node that
/// ran it, its state, and when it last saw something.
/// Agents by status, and the progress of running transfers by who runs them (an agent's
/// name, or `control_plane` for the servers' and workers' own slots), as they last reported.
fn register_agents(registry: &mut Registry, agents: &[AgentSummary], running: &[Job]) {
    let by_status = Family::<Labels, Gauge>::default();
    for status in ["pending", "online", "offline", "revoked"] {
        let count = agents.iter().filter(|agent| agent.status == status).count();
        by_status
            .get_or_create(&vec![("status", status.to_string())])
            .set(count as i64);
    }
    registry.register("file_orbit_agents", "Agents by status", by_status);
    let (bytes, speed) = (
        Family::<Labels, Gauge>::default(),
        Family::<Labels, Gauge<f64, AtomicU64>>::default(),
    );
    for job in running {
        let runner = job
            .lease_owner
            .as_deref()
            .and_then(|owner| owner.strip_prefix("agent:"))
            .and_then(|rest| rest.split_once('/'))
            .map_or("control_plane", |(agent, _)| agent);
        let labels = vec![("runner", runner.to_string())];
        let progress = job.progress.as_ref();
        bytes
            .get_or_create(&labels)
            .inc_by(progress.map_or(0, |p| p.bytes) as i64);
        speed
            .get_or_create(&labels)
            .inc_by(progress.map_or(0.0, |p| p.speed));
    }
    registry.register(
        "file_orbit_running_bytes",
        "Bytes moved so far by the running transfers, by who runs them (agent or control_plane)",
        bytes,
    );
    registry.register(
        "file_orbit_running_speed_bytes_per_second",
        "Speed of the running transfers, by who runs them (agent or control_plane)",
        speed,
    );
}

fn register_sources(registry: &mut Registry, sources: &[SourceStatus]) {
    let events = Family::<Labels, Counter>::default();
    let states = Family::<Labels, Gauge>::default();
    let last_event = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for source in sources {
        let name = || ("source", source.name.clone());
        let counters = source.counters;
        for (counter, n) in [
            ("received", counters.received),
            ("ingested", counters.ingested),
            ("duplicates", counters.duplicates),
            ("dead", counters.dead),
            ("errors", counters.errors),
        ] {
            events
                .get_or_create(&vec![name(), ("counter", counter.to_string())])
                .inc_by(n);
        }
        for state in [
            SourceState::Running,
            SourceState::Starting,
            SourceState::Failing,
            SourceState::Paused,
        ] {
            states
                .get_or_create(&vec![name(), ("state", state.as_str().to_string())])
                .set(i64::from(source.state == state));
        }
        if let Some(at) = source.last_event_at {
            last_event.get_or_create(&vec![name()]).set(at as f64 / 1e3);
        }
    }
    registry.register(
        "file_orbit_source_events",
        "What each event source has done, summed over the nodes that ran it: received, \
         ingested, duplicates, dead, errors",
        events,
    );
    registry.register(
        "file_orbit_source_state",
        "Each event source's state (running, starting, failing, paused): 1 for the one it is in",
        states,
    );
    registry.register(
        "file_orbit_source_last_event_timestamp_seconds",
        "When each event source last saw something (unix seconds)",
        last_event,
    );
}

/// Per channel type: messages sent, tries failed and messages dead (store-wide totals,
/// kept as they happen). Every channel and outcome appears, at 0 before its first.
fn register_notifications(registry: &mut Registry, totals: &[(String, String, i64)]) {
    let messages = Family::<Labels, Counter>::default();
    for channel in crate::notify::channel::CHANNEL_TYPES {
        for outcome in ["sent", "failed", "dead"] {
            let n = totals
                .iter()
                .find(|(c, o, _)| c == channel && o == outcome)
                .map_or(0, |(_, _, n)| *n);
            messages
                .get_or_create(&vec![
                    ("channel", channel.to_string()),
                    ("outcome", outcome.to_string()),
                ])
                .inc_by(n.max(0) as u64);
        }
    }
    registry.register(
        "file_orbit_notification_messages",
        "Notification messages by channel type: sent, failed (a try that did not work) and \
         dead (given up after the rule's tries or a permanent refusal)",
        messages,
    );
}

/// Per endpoint of this node (`endpoint=""` is the service-wide limit) and direction: the
/// limit in force (0: none), bytes per second over the last seconds, bytes moved.
fn register_bandwidth(registry: &mut Registry, usage: &[BandwidthUsage]) {
    let limits = Family::<Labels, Gauge>::default();
    let rates = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let moved = Family::<Labels, Counter>::default();
    for endpoint in usage {
        let name = endpoint.endpoint.clone().unwrap_or_default();
        for (direction, limit, rate, bytes) in [
            (
                "upload",
                endpoint.limit.upload,
                endpoint.upload_rate,
                endpoint.upload_bytes,
            ),
            (
                "download",
                endpoint.limit.download,
                endpoint.download_rate,
                endpoint.download_bytes,
            ),
        ] {
            let labels = vec![
                ("endpoint", name.clone()),
                ("direction", direction.to_string()),
            ];
            let limit = limit.map_or(0, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
            limits.get_or_create(&labels).set(limit);
            rates.get_or_create(&labels).set(rate);
            moved.get_or_create(&labels).inc_by(bytes);
        }
    }
    registry.register(
        "file_orbit_endpoint_bandwidth_limit_bytes_per_second",
        "Each endpoint's bandwidth limit in force on this node (endpoint=\"\": the service-wide \
         limit on remote endpoints; 0: no limit)",
        limits,
    );
    registry.register(
        "file_orbit_endpoint_throughput_bytes_per_second",
        "Bytes per second this node's transfers move to (upload) and from (download) each \
         endpoint, over the last seconds",
        rates,
    );
    registry.register(
        "file_orbit_endpoint_transferred_bytes",
        "Bytes this node's transfers moved to (upload) and from (download) each endpoint \
         since it started",
        moved,
    );
}

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

impl StoredHistograms {
    /// Finished attempts by outcome as duration histograms, from the store's totals per
    /// outcome and bucket (a bucket bound of `i64::MAX` ms is `+Inf`).
    fn of(totals: &AttemptTotals) -> StoredHistograms {
        let bound = |le_ms: i64| match le_ms {
            i64::MAX => f64::MAX,
            ms => ms as f64 / 1e3,
        };
        let mut histograms: Vec<(Labels, StoredHistogram)> = Vec::new();
        for total in &totals.totals {
            let labels = vec![("outcome", total.outcome.clone())];
            let index = match histograms.iter().position(|(known, _)| *known == labels) {
                Some(index) => index,
                None => {
                    let buckets = totals.buckets.iter().map(|le| (bound(*le), 0)).collect();
                    let empty = StoredHistogram {
                        buckets,
                        ..StoredHistogram::default()
                    };
                    histograms.push((labels, empty));
                    histograms.len() - 1
                }
            };
            let histogram = &mut histograms[index].1;
            histogram.count += total.attempts as u64;
            histogram.sum += total.millis as f64 / 1e3;
            if let Some(bucket) = histogram
                .buckets
                .iter_mut()
                .find(|(le, _)| *le == bound(total.le_ms))
            {
                bucket.1 += total.attempts as u64;
            }
        }
        StoredHistograms(histograms)
    }
}
