//! The audit page (`/ui/audit`): the log newest first, filtered by time, caller, subject
//! and endpoint as `GET /api/v1/audit` filters it, paged by `before_id`; the hash chain's
//! check; links to the CSV and JSON export of the same filter (the compliance report).

use crate::engine::AuditOrder;
use crate::server::handlers::Shared;
use crate::server::handlers::audit::AuditQuery;
use crate::server::ui::Session;
use crate::server::ui::render::{Page, page_query};
use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use minijinja::context;

/// How much of a record's detail the table shows (the export has all of it).
const DETAIL_CHARS: usize = 400;

pub(crate) async fn page(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
    uri: Uri,
) -> Response {
    let page = Page::new(&session, "audit");
    let query: AuditQuery = match page_query(&uri) {
        Ok(query) => query,
        Err(err) => return page.failed(err),
    };
    let (filter, limit) = match query.filter() {
        Ok(filter) => filter,
        Err(err) => return page.failed(err),
    };
    let records = match state
        .orbit
        .audit_records(&filter, AuditOrder::NewestFirst, limit)
        .await
    {
        Ok(records) => records,
        Err(err) => return page.failed(err),
    };
    let rfc3339 = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|at| at.to_rfc3339());
    let (since, until) = (rfc3339(query.since), rfc3339(query.until));
    // The export takes the same time range, caller and endpoint (not the subject or page).
    let export = |format: &str| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("since", since.as_deref()),
            ("until", until.as_deref()),
            ("actor", query.actor.as_deref()),
            ("endpoint", query.endpoint.as_deref()),
            ("format", Some(format)),
        ] {
            if let Some(value) = value {
                params.append_pair(name, value);
            }
        }
        format!("/api/v1/audit/export?{}", params.finish())
    };
    // The next page keeps the filter and starts below the last record shown.
    let older = (records.len() as i64 == limit)
        .then(|| records.last().map(|last| last.id))
        .flatten()
        .map(|before_id| {
            let mut params = form_urlencoded::Serializer::new(String::new());
            for (name, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            {
                if name != "before_id" && !value.is_empty() {
                    params.append_pair(&name, &value);
                }
            }
            params.append_pair("before_id", &before_id.to_string());
            format!("/ui/audit?{}", params.finish())
        });
    let records: Vec<_> = records
        .into_iter()
        .map(|record| {
            let detail = record.detail.to_string();
            let shown: String = detail.chars().take(DETAIL_CHARS).collect();
            let cut = shown.len() < detail.len();
            context! {
                id => record.id,
                at => record.at,
                actor => record.actor,
                action => record.action,
                subject => record.subject,
                outcome => record.outcome,
                detail => if cut { format!("{shown}…") } else { shown },
            }
        })
        .collect();
    page.render(
        "audit.html",
        context! {
            filter => context! {
                since => since.clone(),
                until => until.clone(),
                actor => query.actor.clone(),
                subject => query.subject.clone(),
                endpoint => query.endpoint.clone(),
                limit => limit,
            },
            records => records,
            older => older,
            export_csv => export("csv"),
            export_json => export("json"),
        },
    )
}
