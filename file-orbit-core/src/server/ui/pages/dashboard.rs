//! The dashboard (`/ui/`): the queue, running transfers with live progress, the last
//! hour's throughput, the last day's failures, the workers.

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
    Page::new(&session, "dashboard").render("dashboard.html", context! {})
}
