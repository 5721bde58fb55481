//! The agents page: every agent with its status, host, version, slots, backends, last
//! contact and running jobs; for an admin, the enrolment form (its script shows the
//! one-time token and a ready `[agent]` configuration) and a revoke button per agent not
//! revoked. It reads what `GET /api/v1/agents` reads; the buttons call the API.

use super::path_segment;
use crate::engine::AgentSummary;
use crate::server::handlers::Shared;
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

/// An agent as the page shows it: the summary plus its API path.
#[derive(Serialize)]
struct AgentRow {
    #[serde(flatten)]
    summary: AgentSummary,
    /// `/api/v1/agents/<name>`, the name as a path segment.
    api: String,
}

/// `/ui/agents`: every agent; enrol and revoke for an admin.
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "agents");
    match state.orbit.agents().await {
        Ok(agents) => {
            let rows: Vec<AgentRow> = agents
                .into_iter()
                .map(|summary| AgentRow {
                    api: format!("/api/v1/agents/{}", path_segment(&summary.name)),
                    summary,
                })
                .collect();
            page.render(
                "agents.html",
                context! {
                    agents => rows,
                    enrolment_ttl_secs => state.config.agents.enrolment_ttl_secs,
                },
            )
        }
        Err(err) => page.failed(err),
    }
}
