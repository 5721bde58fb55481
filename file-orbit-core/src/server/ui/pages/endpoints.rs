//! The endpoints pages: the list, the create form and an endpoint's page (edit with write-only secrets, test connection, bandwidth and concurrency).

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
    Page::new(&session, "endpoints").render("endpoints.html", context! {})
}

pub(crate) async fn new(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "endpoints").render("endpoint_new.html", context! {})
}

pub(crate) async fn detail(
    State(_state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Page::new(&session, "endpoints").render("endpoint.html", context! {})
}
