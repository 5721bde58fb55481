//! The logs page (`/ui/logs`, Operator): the service's log lines filtered by service,
//! level, job and time, newest first, read as `GET /api/v1/logs` reads them; its script
//! follows new lines live through that route.

use crate::server::handlers::Shared;
use crate::server::handlers::logs::{LogsQuery, read_lines};
use crate::server::ui::Session;
use crate::server::ui::render::{Page, page_query};
use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use minijinja::context;

pub(crate) async fn page(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
    uri: Uri,
) -> Response {
    let page = Page::new(&session, "logs");
    let query: LogsQuery = match page_query(&uri) {
        Ok(query) => query,
        Err(err) => return page.failed(err),
    };
    let filter = context! {
        service => query.service.clone(),
        level => query.level.map(|level| serde_json::json!(level)),
        job => query.job.map(|job| job.0),
        since => query.since.map(|at| at.to_rfc3339()),
        until => query.until.map(|at| at.to_rfc3339()),
        limit => query.limit.map_or(200, |limit| limit.0),
    };
    let (lines, error) = match read_lines(&state, query).await {
        Ok(lines) => (lines, None),
        Err(err) => (Vec::new(), Some(err.message)),
    };
    let lines: Vec<_> = lines
        .into_iter()
        .map(|line| {
            context! {
                service => line.service,
                time => line.time.map(|at| at.to_rfc3339()),
                level => line.level,
                job => line.job,
                line => line.line,
            }
        })
        .collect();
    page.render(
        "logs.html",
        context! { filter => filter, lines => lines, error => error },
    )
}
