//! The logs page: filters by service, level and job, and following new lines live.

use crate::server::handlers::Shared;
use crate::server::ui::render::Page;
use crate::server::ui::session::Session;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;

pub(crate) async fn page(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "logs").render("logs.html", context! {})
}
