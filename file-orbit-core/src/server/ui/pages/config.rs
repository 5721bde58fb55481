//! The configuration pages: templates with their schedules' ticks, sources (pause/resume),
//! notifications (send a test) with the outbox, workers, API keys (create, revoke). Each
//! reads what the matching API listing reads and hands the template plain rows: times as
//! milliseconds for the `time` filter, secrets (`***` in every stored listing) as "set",
//! and, for an admin's editor, the object as the JSON body its `PUT` takes.

use super::path_segment;
use crate::engine::{MessageFilter, NotificationSummary, SourceStatus, TransferTemplate};
use crate::server::handlers::Shared;
use crate::server::keys;
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use serde_json::{Value, json};

/// How many outbox messages the notifications page shows (the newest).
const OUTBOX_SHOWN: i64 = 50;

/// `value` as the indented JSON an editor shows.
fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A stored object's fields for reading: `***` (a secret) becomes "set", nested objects
/// and lists become compact JSON.
fn fields(object: &Value) -> Vec<(String, String)> {
    let Some(map) = object.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, value)| {
            let shown = match value {
                Value::String(text) if text == "***" => "set (write-only)".to_string(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (key.clone(), shown)
        })
        .collect()
}

#[derive(Serialize)]
struct TemplateRow {
    name: String,
    /// The name as a path segment.
    segment: String,
    enabled: bool,
    source: String,
    path_glob: String,
    /// The matcher's other conditions, in words.
    conditions: Vec<String>,
    destination: String,
    destination_path: String,
    mode: Value,
    priority: i64,
    next_hops: usize,
    cron: Option<String>,
    missed: Option<Value>,
    next_fire_at: Option<i64>,
    last_fired_at: Option<i64>,
    json: String,
}

fn template_row(
    template: &TransferTemplate,
    ticks: Option<(Option<i64>, Option<i64>)>,
) -> TemplateRow {
    let matcher = &template.matcher;
    let mut conditions = Vec::new();
    if let Some(min) = matcher.min_size {
        conditions.push(format!("at least {min} bytes"));
    }
    if let Some(max) = matcher.max_size {
        conditions.push(format!("at most {max} bytes"));
    }
    if let Some(age) = matcher.min_age_seconds {
        conditions.push(format!("at least {age} s old"));
    }
    if let Some(kind) = &matcher.content_type {
        conditions.push(format!("type {kind}"));
    }
    for (key, pattern) in &matcher.metadata {
        conditions.push(format!("{key} = {pattern}"));
    }
    let (next_fire_at, last_fired_at) = ticks.unwrap_or_default();
    TemplateRow {
        name: template.name.clone(),
        segment: path_segment(&template.name),
        enabled: template.enabled,
        source: matcher.source.clone(),
        path_glob: matcher.path_glob.clone(),
        conditions,
        destination: template.spec.destination.clone(),
        destination_path: template.spec.destination_path.to_string(),
        mode: serde_json::to_value(template.spec.mode).unwrap_or(Value::Null),
        priority: template.priority,
        next_hops: template.next_hops.len(),
        cron: template.schedule.as_ref().map(|s| s.cron.clone()),
        missed: template
            .schedule
            .as_ref()
            .map(|s| serde_json::to_value(s.missed).unwrap_or(Value::Null)),
        next_fire_at,
        last_fired_at,
        json: pretty(template),
    }
}

/// `/ui/templates`: every template with its schedule's next and last tick.
pub(crate) async fn templates(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "templates");
    let (templates, schedules) =
        match tokio::try_join!(state.orbit.templates(), state.orbit.schedules()) {
            Ok(read) => read,
            Err(err) => return page.failed(err),
        };
    let rows: Vec<TemplateRow> = templates
        .iter()
        .map(|template| {
            let ticks = schedules
                .iter()
                .find(|s| s.template == template.name)
                .map(|s| {
                    (
                        s.next_fire_at.map(|at| at.timestamp_millis()),
                        s.last_fired_at.map(|at| at.timestamp_millis()),
                    )
                });
            template_row(template, ticks)
        })
        .collect();
    page.render("templates.html", context! { templates => rows })
}

#[derive(Serialize)]
struct SourceRow {
    #[serde(flatten)]
    status: SourceStatus,
    segment: String,
    spec_fields: Vec<(String, String)>,
    json: String,
}

fn source_row(status: SourceStatus) -> SourceRow {
    let body = json!({
        "kind": status.kind,
        "spec": status.spec,
        "enabled": status.enabled,
        "placement": status.placement,
    });
    SourceRow {
        segment: path_segment(&status.name),
        spec_fields: fields(&status.spec),
        json: pretty(&body),
        status,
    }
}

/// `/ui/sources`: every stored source with its state, owner, counters and last error.
pub(crate) async fn sources(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "sources");
    match state.orbit.sources().await {
        Ok(sources) => {
            let rows: Vec<SourceRow> = sources.into_iter().map(source_row).collect();
            page.render("sources.html", context! { sources => rows })
        }
        Err(err) => page.failed(err),
    }
}

#[derive(Serialize)]
struct NotificationRow {
    #[serde(flatten)]
    summary: NotificationSummary,
    segment: String,
    channel_fields: Vec<(String, String)>,
    events: Vec<String>,
    /// `templates: a, b` per non-empty filter list.
    filters: Vec<String>,
    rate_limit: Option<String>,
    json: String,
}

fn notification_row(summary: NotificationSummary) -> NotificationRow {
    let rule = &summary.rule;
    let names = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let filters = rule["filter"]
        .as_object()
        .map(|filter| {
            filter
                .iter()
                .map(|(key, value)| (key, names(value)))
                .filter(|(_, names)| !names.is_empty())
                .map(|(key, names)| format!("{key}: {}", names.join(", ")))
                .collect()
        })
        .unwrap_or_default();
    let rate_limit = match (
        rule["rate_limit"]["messages"].as_u64(),
        rule["rate_limit"]["per_secs"].as_u64(),
    ) {
        (Some(messages), Some(per_secs)) => Some(format!("{messages} per {per_secs} s")),
        _ => None,
    };
    let mut body = json!({ "channel": summary.channel, "enabled": summary.enabled });
    if let (Some(body), Some(rule)) = (body.as_object_mut(), rule.as_object()) {
        body.extend(rule.clone());
    }
    let channel_fields = fields(&summary.channel)
        .into_iter()
        .filter(|(key, _)| key != "type")
        .collect();
    NotificationRow {
        segment: path_segment(&summary.name),
        channel_fields,
        events: names(&rule["events"]),
        filters,
        rate_limit,
        json: pretty(&body),
        summary,
    }
}

/// `/ui/notifications`: every notification (secrets as "set") and the newest outbox
/// messages.
pub(crate) async fn notifications(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "notifications");
    let filter = MessageFilter {
        limit: OUTBOX_SHOWN,
        ..MessageFilter::default()
    };
    let (notifications, outbox) = match tokio::try_join!(
        state.orbit.notifications(),
        state.orbit.notification_messages(&filter)
    ) {
        Ok(read) => read,
        Err(err) => return page.failed(err),
    };
    let rows: Vec<NotificationRow> = notifications.into_iter().map(notification_row).collect();
    page.render(
        "notifications.html",
        context! { notifications => rows, outbox => outbox, outbox_shown => OUTBOX_SHOWN },
    )
}

/// `/ui/workers`: the worker processes seen in the last day, live or not.
pub(crate) async fn workers(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "workers");
    match state.orbit.store().worker_nodes().await {
        Ok(nodes) => page.render("workers.html", context! { workers => nodes }),
        Err(err) => page.failed(err),
    }
}

/// `/ui/keys`: the configuration's keys (names and roles only) and the managed ones.
pub(crate) async fn keys(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "keys");
    match keys::list_api_keys(state.orbit.store(), &state.config.api_keys).await {
        Ok(keys) => page.render("keys.html", context! { keys => keys }),
        Err(err) => page.failed(err),
    }
}
