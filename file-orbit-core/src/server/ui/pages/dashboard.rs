//! The dashboard (`/ui/`): the queue by state, running transfers with live progress, the
//! last hour's throughput as a server-drawn bar chart, the last day's failures and dead
//! letters, the workers up. `dashboard_data` gathers it (bounded reads: the totals the
//! store keeps, at most `RECENT` jobs per list), the page only draws it.

use crate::engine::{JobFilter, JobState, LiveWorkers, Orbit};
use crate::error::Result;
use crate::server::handlers::Shared;
use crate::server::ui::render::Page;
use crate::server::ui::session::Session;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

/// The most jobs one list of the dashboard reads (newest first).
const RECENT: i64 = 1000;
/// Throughput buckets: one a minute over the last hour.
const BUCKETS: i64 = 60;
const BUCKET_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Dead jobs of the last day listed by id.
const DEAD_LISTED: usize = 10;

/// Jobs in one state.
#[derive(Debug, Clone, Serialize)]
pub struct StateCount {
    pub state: JobState,
    pub jobs: i64,
}

/// A running transfer.
#[derive(Debug, Clone, Serialize)]
pub struct RunningJob {
    pub id: i64,
    pub source: String,
    pub destination: String,
    pub template: Option<String>,
    /// 0 to 100, from its last reported progress.
    pub percent: u64,
    pub bytes: u64,
    pub total_bytes: u64,
    /// Bytes per second.
    pub speed: f64,
}

/// Bytes that succeeded jobs moved in one minute (credited at each job's finish).
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputBucket {
    /// The minute's start, ms since the epoch.
    pub start: i64,
    pub bytes: i64,
    pub jobs: i64,
}

/// A job that died in the last day.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    pub id: i64,
    pub source: String,
    pub destination: String,
    pub last_error: Option<String>,
    pub finished_at: Option<i64>,
}

/// What the dashboard shows.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardData {
    /// When it was read, ms since the epoch.
    pub at: i64,
    /// Jobs per state, every state listed (from the store's totals).
    pub queue: Vec<StateCount>,
    /// Jobs a worker holds now (at most `RECENT`).
    pub running: Vec<RunningJob>,
    /// The last hour, oldest minute first.
    pub throughput: Vec<ThroughputBucket>,
    /// Bytes of the last hour's busiest minute.
    pub throughput_peak: i64,
    pub throughput_bytes: i64,
    /// Jobs updated in the last day that saw a failed attempt (among the newest `RECENT`).
    pub failures_last_day: i64,
    /// Jobs that died in the last day (among the newest `RECENT` dead ones).
    pub dead_last_day: i64,
    /// The newest of them.
    pub dead: Vec<DeadJob>,
    pub workers: LiveWorkers,
    /// Worker processes listed (alive or not, seen in the last day).
    pub workers_listed: usize,
}

/// Reads what the dashboard shows.
pub(crate) async fn dashboard_data(orbit: &Orbit) -> Result<DashboardData> {
    let now = chrono::Utc::now().timestamp_millis();
    let recent = |state| JobFilter {
        state,
        limit: RECENT,
        ..JobFilter::default()
    };
    let store = orbit.store();
    let (leased, done, died, any) = (
        recent(Some(JobState::Leased)),
        recent(Some(JobState::Succeeded)),
        recent(Some(JobState::Dead)),
        recent(None),
    );
    let (totals, running, succeeded, dead, latest, nodes) = tokio::try_join!(
        store.job_totals(),
        orbit.jobs(&leased),
        orbit.jobs(&done),
        orbit.jobs(&died),
        orbit.jobs(&any),
        store.worker_nodes(),
    )?;
    let counts = crate::engine::JobCounts::of(&totals);
    let queue = [
        JobState::Queued,
        JobState::Leased,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ]
    .into_iter()
    .map(|state| StateCount {
        state,
        jobs: counts.get(state),
    })
    .collect();
    let running = running
        .into_iter()
        .map(|job| {
            let (bytes, total_bytes, speed) = job
                .progress
                .map_or((0, 0, 0.0), |p| (p.bytes, p.total_bytes, p.speed));
            let percent = bytes
                .saturating_mul(100)
                .checked_div(total_bytes)
                .unwrap_or(0)
                .min(100);
            RunningJob {
                id: job.id,
                source: job.spec.source,
                destination: job.spec.destination,
                template: job.template,
                percent,
                bytes,
                total_bytes,
                speed,
            }
        })
        .collect();
    // Minute buckets ending with the current minute.
    let first = (now / BUCKET_MS - (BUCKETS - 1)) * BUCKET_MS;
    let mut throughput: Vec<ThroughputBucket> = (0..BUCKETS)
        .map(|i| ThroughputBucket {
            start: first + i * BUCKET_MS,
            bytes: 0,
            jobs: 0,
        })
        .collect();
    for job in &succeeded {
        let Some(finished) = job.finished_at.filter(|at| *at >= first) else {
            continue;
        };
        let index = ((finished - first) / BUCKET_MS).min(BUCKETS - 1) as usize;
        throughput[index].bytes += job.bytes;
        throughput[index].jobs += 1;
    }
    let dead_today: Vec<DeadJob> = dead
        .into_iter()
        .filter(|job| job.finished_at.unwrap_or(job.updated_at) >= now - DAY_MS)
        .map(|job| DeadJob {
            id: job.id,
            source: job.spec.source,
            destination: job.spec.destination,
            last_error: job.last_error,
            finished_at: job.finished_at,
        })
        .collect();
    let failures_last_day = latest
        .iter()
        .filter(|job| job.updated_at >= now - DAY_MS && job.last_error.is_some())
        .count() as i64;
    Ok(DashboardData {
        at: now,
        queue,
        running,
        throughput_peak: throughput.iter().map(|b| b.bytes).max().unwrap_or(0),
        throughput_bytes: throughput.iter().map(|b| b.bytes).sum(),
        throughput,
        failures_last_day,
        dead_last_day: dead_today.len() as i64,
        dead: dead_today.into_iter().take(DEAD_LISTED).collect(),
        workers: LiveWorkers::of(&nodes),
        workers_listed: nodes.len(),
    })
}

/// One bar of the chart, in the SVG's coordinates (`CHART_W` × `CHART_H`).
#[derive(Serialize)]
struct Bar {
    x: i64,
    y: i64,
    height: i64,
    start: i64,
    bytes: i64,
    jobs: i64,
}

const CHART_W: i64 = 600;
const CHART_H: i64 = 140;
/// A bar's width and the gap after it.
const BAR_W: i64 = 8;
const BAR_STEP: i64 = CHART_W / BUCKETS;

fn bars(data: &DashboardData) -> Vec<Bar> {
    let peak = data.throughput_peak.max(1);
    data.throughput
        .iter()
        .enumerate()
        .map(|(i, bucket)| {
            // Any traffic shows as at least one unit high.
            let height = match bucket.bytes {
                0 => 0,
                bytes => (bytes * CHART_H / peak).max(1),
            };
            Bar {
                x: i as i64 * BAR_STEP + 1,
                y: CHART_H - height,
                height,
                start: bucket.start,
                bytes: bucket.bytes,
                jobs: bucket.jobs,
            }
        })
        .collect()
}

/// `/ui/`: the dashboard.
pub(crate) async fn page(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "dashboard");
    match dashboard_data(&state.orbit).await {
        Ok(data) => page.render(
            "dashboard.html",
            context! {
                bars => bars(&data),
                chart => context! { width => CHART_W, height => CHART_H, bar => BAR_W },
                data => data,
            },
        ),
        Err(err) => page.failed(err),
    }
}
