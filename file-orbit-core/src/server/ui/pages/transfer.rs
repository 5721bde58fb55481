//! The new-transfer form (`/ui/transfers/new`): the stored endpoints to pick from, the
//! spec's choices (mode, scope, conflict policy), the retry policy's defaults; its script
//! browses folders, previews the destination template and submits to `POST /api/v1/jobs`.

use crate::engine::RetryPolicy;
use crate::server::handlers::Shared;
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;

pub(crate) async fn page(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "transfer");
    let endpoints = match state.orbit.endpoints().await {
        Ok(endpoints) => endpoints,
        Err(err) => return page.failed(err),
    };
    let endpoints: Vec<_> = endpoints
        .into_iter()
        .map(|e| context! { name => e.name, kind => e.kind })
        .collect();
    let retry = RetryPolicy::default();
    page.render(
        "transfer.html",
        context! {
            endpoints => endpoints,
            modes => [("copy", "Copy"), ("move", "Move (delete the source after)"), ("sync", "Sync (make the destination equal)")],
            scopes => [("file", "One file"), ("tree", "A folder tree")],
            conflicts => [
                ("overwrite", "Overwrite unless it already matches"),
                ("skip_existing", "Skip files that exist"),
                ("newer_only", "Replace only when the source is newer"),
            ],
            retry => retry,
        },
    )
}
