//! The jobs pages: the list (filters by state, endpoint, template and creation time, the
//! same as `GET /api/v1/jobs`; paged by `before_id`) and a job's page (its spec, attempts
//! with their errors, its chain, its log lines, live progress, and the operator's cancel,
//! retry and replay of its event). Both only read; every action is an API call.

use crate::engine::{Job, JobFilter, JobState};
use crate::error::ErrorKind;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::handlers::Bounded;
use crate::server::handlers::jobs::JobsQuery;
use crate::server::handlers::logs::{LogsQuery, read_lines};
use crate::server::handlers::{Shared, parse_query};
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

/// The filters the list's form has, in its order.
const FILTERS: [&str; 7] = [
    "state",
    "endpoint",
    "template",
    "since",
    "until",
    "limit",
    "before_id",
];

/// Page sizes the list offers.
const PAGE_SIZES: [i64; 4] = [25, 50, 100, 200];

/// Log lines a job's page shows at most.
const LOG_LINES: usize = 200;

/// A job as a row or a page shows it: the job and how far its running attempt is.
#[derive(Serialize)]
struct JobView<'a> {
    #[serde(flatten)]
    job: &'a Job,
    percent: u64,
    running: bool,
}

fn view(job: &Job) -> JobView<'_> {
    let percent = match (&job.progress, job.state) {
        (_, JobState::Succeeded) => 100,
        (Some(p), _) if p.total_bytes > 0 => (p.bytes.saturating_mul(100) / p.total_bytes).min(100),
        _ => 0,
    };
    JobView {
        job,
        percent,
        running: !job.state.is_terminal(),
    }
}

/// The list's query as its plain GET form sends it: empty fields dropped, `since` and
/// `until` from a `datetime-local` field (`2026-12-07T21:15`, read as UTC) made RFC 3339.
fn cleaned(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.trim().to_string()))
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| {
            let value = match (key.as_str(), value.len()) {
                ("since" | "until", 16) if value.as_bytes()[10] == b'T' => format!("{value}:00Z"),
                ("since" | "until", 19) if value.as_bytes()[10] == b'T' => format!("{value}Z"),
                _ => value,
            };
            (key, value)
        })
        .collect()
}

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `/ui/jobs`: the filtered list; a bad filter is a 400 page naming it, with the form.
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
    RawQuery(query): RawQuery,
) -> Response {
    let page = Page::new(&session, "jobs");
    let raw: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let pairs = cleaned(&encode(&raw));
    let value = |name: &str| {
        raw.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default()
    };
    let (endpoints, templates) =
        match (state.orbit.endpoints().await, state.orbit.templates().await) {
            (Ok(endpoints), Ok(templates)) => (
                endpoints.into_iter().map(|e| e.name).collect::<Vec<_>>(),
                templates.into_iter().map(|t| t.name).collect::<Vec<_>>(),
            ),
            (Err(err), _) | (_, Err(err)) => return page.failed(err),
        };
    let parsed = parse_query::<JobsQuery>(&encode(&pairs)).and_then(|q| q.filter());
    let limit = parsed
        .as_ref()
        .map_or(100, |filter: &JobFilter| filter.limit);
    let (jobs, error) = match parsed {
        Ok(filter) => match state.orbit.jobs(&filter).await {
            Ok(jobs) => (jobs, None),
            Err(err) => return page.failed(err),
        },
        Err(err) => (Vec::new(), Some(err)),
    };
    // The next page: the same filters, before this page's last job.
    let older = (jobs.len() as i64 >= limit)
        .then(|| jobs.last().map(|job| job.id))
        .flatten()
        .map(|last| {
            let mut next: Vec<(String, String)> = pairs
                .iter()
                .filter(|(key, _)| key != "before_id" && key != "offset")
                .cloned()
                .collect();
            next.push(("before_id".into(), last.to_string()));
            format!("/ui/jobs?{}", encode(&next))
        });
    let newest = pairs.iter().any(|(key, _)| key == "before_id").then(|| {
        let first: Vec<(String, String)> = pairs
            .iter()
            .filter(|(key, _)| key != "before_id" && key != "offset")
            .cloned()
            .collect();
        format!("/ui/jobs?{}", encode(&first))
    });
    let views: Vec<JobView> = jobs.iter().map(view).collect();
    let form: std::collections::BTreeMap<&str, String> =
        FILTERS.iter().map(|name| (*name, value(name))).collect();
    let status = error.as_ref().map(|err| err.status);
    let error = error.map(|err: ApiError| {
        context! { field => err.field, message => err.message }
    });
    let mut response = page.render(
        "jobs.html",
        context! {
            jobs => views, form => form, error => error, older => older, newest => newest,
            endpoints => endpoints, templates => templates, page_sizes => PAGE_SIZES,
            states => ["queued", "leased", "succeeded", "dead", "cancelled"],
            limit => limit,
        },
    );
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    response
}

/// The event a job's chain came from: its first job's idempotency key starts
/// `event:<id>:` when an event (ingested or replayed) made it.
fn event_of(chain_head: &Job) -> Option<i64> {
    let key = chain_head.idempotency_key.as_deref()?;
    let rest = key.strip_prefix("event:")?;
    rest.split(':').next()?.parse().ok()
}

/// `/ui/jobs/{id}`: one job; 404 when there is none.
pub(crate) async fn detail(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&session, "jobs");
    let Some(id) = id.parse::<i64>().ok().filter(|id| *id >= 1) else {
        return page.error(
            StatusCode::BAD_REQUEST,
            "Not a valid request",
            "id: must be an integer of at least 1",
        );
    };
    let job = match state.orbit.job(id).await {
        Ok(job) => job,
        Err(err) => return page.failed(err),
    };
    let store = state.orbit.store();
    let (attempts, chain) = match (
        store.job_attempts(id).await,
        store.chain(job.chain_id).await,
    ) {
        (Ok(attempts), Ok(chain)) => (attempts, chain),
        (Err(err), _) | (_, Err(err)) => return page.failed(err),
    };
    let head = chain.first().unwrap_or(&job);
    let event = match event_of(head) {
        Some(event) => match state.orbit.event(event).await {
            Ok(record) => Some(record.id),
            Err(err) if err.kind == ErrorKind::NotFound => None,
            Err(err) => return page.failed(err),
        },
        None => None,
    };
    let can_operate = session.principal.role >= Role::Operator;
    let (log_lines, log_note) = if can_operate {
        let query = LogsQuery {
            job: Some(Bounded(id)),
            limit: Some(Bounded(LOG_LINES as i64)),
            ..LogsQuery::default()
        };
        match read_lines(&state, query).await {
            Ok(mut lines) => {
                lines.reverse();
                (lines, None)
            }
            Err(err) => (Vec::new(), Some(format!("No log lines: {}", err.message))),
        }
    } else {
        (
            Vec::new(),
            Some("Log lines are shown to operators.".to_string()),
        )
    };
    let chain: Vec<JobView> = chain.iter().map(view).collect();
    page.render(
        "job.html",
        context! {
            job => view(&job), attempts => attempts, chain => chain, event => event,
            log_lines => log_lines, log_note => log_note, log_limit => LOG_LINES,
            can_cancel => matches!(job.state, JobState::Queued | JobState::Leased),
            can_retry => matches!(job.state, JobState::Dead | JobState::Cancelled),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_as_the_api_does() {
        let pairs =
            cleaned("state=&endpoint=+src+&since=2026-12-07T21%3A15&until=2026-12-07T22%3A00%3A30");
        assert_eq!(
            pairs,
            vec![
                ("endpoint".to_string(), "src".to_string()),
                ("since".to_string(), "2026-12-07T21:15:00Z".to_string()),
                ("until".to_string(), "2026-12-07T22:00:30Z".to_string()),
            ]
        );
        let filter = parse_query::<JobsQuery>(&encode(&pairs))
            .and_then(|q| q.filter())
            .unwrap();
        assert_eq!(filter.endpoint.as_deref(), Some("src"));
        let since = chrono::DateTime::parse_from_rfc3339("2026-12-07T21:15:00Z").unwrap();
        assert_eq!(filter.since, Some(since.timestamp_millis()));
    }
}
