//! The dashboard (`/ui/`): the queue by state, running transfers with live progress, the
//! last hour's throughput as a server-drawn bar chart, the last day's failures and dead
//! letters, the workers up — from `Orbit::dashboard`, what `GET /api/v1/dashboard`
//! answers, plus the newest dead jobs; this file only draws it.

use crate::engine::{Dashboard, JobFilter, JobState, LiveWorkers, THROUGHPUT_MINUTES};
use crate::server::handlers::Shared;
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

/// Dead jobs of the last day listed by id.
const DEAD_LISTED: i64 = 10;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One bar of the chart, in the SVG's coordinates (`CHART_W` × `CHART_H`).
#[derive(Serialize)]
struct Bar {
    x: i64,
    y: i64,
    height: i64,
    minute: String,
    bytes: i64,
    jobs: i64,
}

const CHART_W: i64 = 600;
const CHART_H: i64 = 140;
/// A bar's width (the step between bars is `CHART_W / THROUGHPUT_MINUTES`).
const BAR_W: i64 = 8;

fn bars(data: &Dashboard) -> Vec<Bar> {
    let peak = data
        .throughput
        .iter()
        .map(|m| m.bytes)
        .max()
        .unwrap_or(0)
        .max(1);
    let step = CHART_W / THROUGHPUT_MINUTES;
    data.throughput
        .iter()
        .enumerate()
        .map(|(i, minute)| {
            // Any traffic shows as at least one unit high.
            let height = match minute.bytes {
                0 => 0,
                bytes => (bytes * CHART_H / peak).max(1),
            };
            Bar {
                x: i as i64 * step + 1,
                y: CHART_H - height,
                height,
                minute: minute.minute.clone(),
                bytes: minute.bytes,
                jobs: minute.jobs,
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
    let dead = JobFilter {
        state: Some(JobState::Dead),
        limit: DEAD_LISTED,
        ..JobFilter::default()
    };
    let (data, dead) = match tokio::try_join!(state.orbit.dashboard(), state.orbit.jobs(&dead)) {
        Ok(read) => read,
        Err(err) => return page.failed(err),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let dead: Vec<_> = dead
        .into_iter()
        .filter(|job| job.finished_at.unwrap_or(job.updated_at) >= now - DAY_MS)
        .map(|job| {
            context! {
                id => job.id,
                source => job.spec.source,
                destination => job.spec.destination,
                last_error => job.last_error,
                finished_at => job.finished_at,
            }
        })
        .collect();
    let queue: Vec<_> = [
        (JobState::Queued, "queued"),
        (JobState::Leased, "running"),
        (JobState::Succeeded, "succeeded"),
        (JobState::Dead, "dead"),
        (JobState::Cancelled, "cancelled"),
    ]
    .into_iter()
    .map(|(job_state, label)| {
        context! {
            state => job_state.as_str(),
            label => label,
            jobs => data.queue.get(job_state.as_str()).copied().unwrap_or(0),
        }
    })
    .collect();
    let moved: i64 = data.throughput.iter().map(|m| m.bytes).sum();
    let peak = data.throughput.iter().map(|m| m.bytes).max().unwrap_or(0);
    page.render(
        "dashboard.html",
        context! {
            at => now,
            queue => queue,
            running => &data.running,
            failures => data.failures_24h,
            dead_count => data.dead_24h,
            dead => dead,
            workers => LiveWorkers::of(&data.workers.nodes),
            workers_listed => data.workers.nodes.len(),
            agents => data.agents,
            moved => moved,
            peak => peak,
            bars => bars(&data),
            chart => context! { width => CHART_W, height => CHART_H, bar => BAR_W },
        },
    )
}
