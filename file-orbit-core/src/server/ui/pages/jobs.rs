//! The jobs pages: the list (filters by state, endpoint, template, time; paged by `before_id`) and a job's page (spec, attempts, chain, log lines, live progress, cancel/retry/replay).

use crate::server::handlers::Shared;
use crate::server::ui::render::Page;
use crate::server::ui::session::Session;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;

pub(crate) async fn list(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "jobs").render("jobs.html", context! {})
}

pub(crate) async fn detail(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "jobs").render("job.html", context! {})
}
