//! The configuration pages: templates with their schedules' ticks, sources (pause/resume), notifications (send a test), workers, API keys (create, revoke).

use crate::server::handlers::Shared;
use crate::server::ui::render::Page;
use crate::server::ui::session::Session;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;

pub(crate) async fn templates(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "templates").render("templates.html", context! {})
}

pub(crate) async fn sources(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "sources").render("sources.html", context! {})
}

pub(crate) async fn notifications(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "notifications").render("notifications.html", context! {})
}

pub(crate) async fn workers(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "workers").render("workers.html", context! {})
}

pub(crate) async fn keys(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "keys").render("keys.html", context! {})
}
