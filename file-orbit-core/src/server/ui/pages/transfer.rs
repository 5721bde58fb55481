//! The new-transfer form (`/ui/transfers/new`): endpoints, folder browsing, filters, conflict policy, a destination template with a live preview, submit.

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
    Page::new(&session, "transfer").render("transfer.html", context! {})
}
