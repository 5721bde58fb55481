//! `Orbit::dashboard`: the console's overview in a few bounded reads: jobs per state (the
//! kept totals), the running jobs with their progress (at most `MAX_RUNNING`), bytes and
//! jobs finished per minute over the last hour, attempt failures and dead jobs of the
//! last day, and the worker processes. It reads only.

use super::store::{db_error, now_ms};
use super::{JobFilter, JobState, LiveWorkers, Orbit, WorkerNode};
use crate::error::Result;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// The most running jobs listed (the newest ones, when more run).
pub const MAX_RUNNING: i64 = 100;
/// Minutes in the throughput series.
pub const THROUGHPUT_MINUTES: i64 = 60;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// The console's overview.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Jobs per state (every state, 0 included).
    pub queue: BTreeMap<String, i64>,
    /// Jobs running now (leased), oldest first: the newest `MAX_RUNNING` of them.
    pub running: Vec<RunningJob>,
    /// One bucket per minute of the last hour, oldest first: succeeded jobs that finished
    /// in that minute and their bytes.
    pub throughput: Vec<ThroughputMinute>,
    /// Attempts that failed in the last 24 hours.
    pub failures_24h: i64,
    /// Jobs that went dead in the last 24 hours.
    pub dead_24h: i64,
    pub workers: WorkersOverview,
    pub agents: AgentsOverview,
}

/// The agents: how many are enrolled (not revoked) and how many of those are online.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AgentsOverview {
    pub enrolled: i64,
    pub online: i64,
}

/// A running job and its progress as its worker last reported it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct RunningJob {
    pub id: i64,
    pub source: String,
    pub destination: String,
    pub template: Option<String>,
    /// The worker slot holding it.
    pub worker: Option<String>,
    /// Bytes moved so far in this attempt.
    pub bytes: u64,
    /// Bytes this attempt moves in all, once known (0 before).
    pub total_bytes: u64,
    /// 0 to 100; None while the total is unknown.
    pub percent: Option<f64>,
    /// Bytes per second.
    pub speed: f64,
    pub eta_secs: Option<u64>,
}

/// One minute of throughput.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThroughputMinute {
    /// The minute's start (RFC 3339, UTC).
    pub minute: String,
    pub bytes: i64,
    pub jobs: i64,
}

/// The worker processes: how many are alive and each one listed.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct WorkersOverview {
    pub live: i64,
    pub slots: i64,
    pub nodes: Vec<WorkerNode>,
}

const STATES: [JobState; 5] = [
    JobState::Queued,
    JobState::Leased,
    JobState::Succeeded,
    JobState::Dead,
    JobState::Cancelled,
];

impl Orbit {
    /// The console's overview now (see `Dashboard`).
    pub async fn dashboard(&self) -> Result<Dashboard> {
        self.dashboard_at(now_ms()).await
    }

    async fn dashboard_at(&self, now: i64) -> Result<Dashboard> {
        let store = self.store();
        let counts = store.job_counts().await?;
        let queue = STATES
            .iter()
            .map(|state| (state.as_str().to_string(), counts.get(*state)))
            .collect();
        let mut running: Vec<RunningJob> = store
            .jobs(&JobFilter {
                state: Some(JobState::Leased),
                limit: MAX_RUNNING,
                ..JobFilter::default()
            })
            .await?
            .into_iter()
            .map(|job| {
                let progress = job.progress.as_ref();
                let bytes = progress.map_or(0, |p| p.bytes);
                let total_bytes = progress.map_or(0, |p| p.total_bytes);
                RunningJob {
                    id: job.id,
                    source: job.spec.source.clone(),
                    destination: job.spec.destination.clone(),
                    template: job.template.clone(),
                    worker: job.lease_owner.clone(),
                    bytes,
                    total_bytes,
                    percent: (total_bytes > 0)
                        .then(|| (bytes as f64 * 100.0 / total_bytes as f64).min(100.0)),
                    speed: progress.map_or(0.0, |p| p.speed),
                    eta_secs: progress.and_then(|p| p.eta_secs),
                }
            })
            .collect();
        running.sort_by_key(|job| job.id);
        let first_minute = (now / MINUTE_MS - (THROUGHPUT_MINUTES - 1)) * MINUTE_MS;
        let rows = sqlx::query(
            "SELECT finished_at / 60000 AS minute, COUNT(*) AS jobs, \
             CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS bytes FROM jobs \
             WHERE finished_at >= $1 AND state = 'succeeded' \
             GROUP BY finished_at / 60000",
        )
        .bind(first_minute)
        .fetch_all(&store.reader)
        .await
        .map_err(db_error("reading the throughput"))?;
        let mut per_minute: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for row in &rows {
            let minute: i64 = row
                .try_get("minute")
                .map_err(db_error("reading the throughput"))?;
            let jobs: i64 = row
                .try_get("jobs")
                .map_err(db_error("reading the throughput"))?;
            let bytes: i64 = row
                .try_get("bytes")
                .map_err(db_error("reading the throughput"))?;
            per_minute.insert(minute, (bytes, jobs));
        }
        let throughput = (0..THROUGHPUT_MINUTES)
            .map(|i| {
                let start = first_minute + i * MINUTE_MS;
                let (bytes, jobs) = per_minute
                    .get(&(start / MINUTE_MS))
                    .copied()
                    .unwrap_or_default();
                ThroughputMinute {
                    minute: rfc3339(start),
                    bytes,
                    jobs,
                }
            })
            .collect();
        let day_ago = now - DAY_MS;
        let count = |sql: &'static str| async move {
            sqlx::query(sql)
                .bind(day_ago)
                .fetch_one(&store.reader)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .map_err(db_error("reading the last day's failures"))
        };
        let failures_24h = count(
            "SELECT COUNT(*) FROM job_attempts WHERE finished_at >= $1 AND outcome = 'failed'",
        )
        .await?;
        let dead_24h =
            count("SELECT COUNT(*) FROM jobs WHERE finished_at >= $1 AND state = 'dead'").await?;
        let nodes = store.worker_nodes().await?;
        let live = LiveWorkers::of(&nodes);
        let agents = self.agents().await?;
        let count = |status: &str| agents.iter().filter(|a| a.status == status).count() as i64;
        let agents = AgentsOverview {
            enrolled: count("online") + count("offline"),
            online: count("online"),
        };
        Ok(Dashboard {
            agents,
            queue,
            running,
            throughput,
            failures_24h,
            dead_24h,
            workers: WorkersOverview {
                live: live.alive,
                slots: live.slots,
                nodes,
            },
        })
    }
}

/// `ms` since the epoch as RFC 3339 (UTC, seconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
