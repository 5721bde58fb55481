//! The endpoints pages: the list, the create form and an endpoint's page (its facts, the
//! edit form with write-only secrets, test connection, delete). Everything comes from the
//! stored public config, where a set secret reads `***`: no page ever holds a secret's
//! value, only whether it is set.

use super::path_segment;
use crate::endpoint::{EndpointPlacement, Rates};
use crate::engine::EndpointSummary;
use crate::server::handlers::Shared;
use crate::server::ui::Session;
use crate::server::ui::render::Page;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Every secret field of every endpoint type, as the form and the API name it.
const SECRETS: &[&str] = &[
    "auth.password",
    "auth.pem",
    "auth.passphrase",
    "password",
    "secret_access_key",
    "session_token",
];

/// How the stored public config shows a secret that is set.
const MASK: &str = "***";

/// The endpoint types the form offers: value and label.
const TYPES: &[(&str, &str)] = &[
    ("local", "Local disk"),
    ("s3", "S3 or S3-compatible"),
    ("sftp", "SFTP"),
    ("smb", "SMB (Windows share)"),
];

/// An endpoint as the list and its page show it.
#[derive(Serialize)]
struct Row {
    name: String,
    /// Its page, the name escaped as a path segment.
    href: String,
    /// Its API path (`/api/v1/endpoints/<name>`).
    api: String,
    kind: String,
    /// Where it is: directory, bucket and prefix, user@host:port and root, //host/share.
    place: String,
    /// The limit as written, or `unlimited`.
    bandwidth: String,
    /// The rates in force now, in words.
    bandwidth_now: String,
    /// When a timetable changes the rates next, and to what.
    bandwidth_next: Option<String>,
    max_concurrent: i64,
    /// Where its transfers may run: `anywhere`, or `agents b; labels dmz`.
    placement: String,
}

impl Row {
    fn of(summary: &EndpointSummary) -> Row {
        let segment = path_segment(&summary.name);
        Row {
            name: summary.name.clone(),
            href: format!("/ui/endpoints/{segment}"),
            api: format!("/api/v1/endpoints/{segment}"),
            kind: summary.kind.clone(),
            place: place(&summary.kind, &summary.config),
            bandwidth: summary
                .bandwidth
                .clone()
                .unwrap_or_else(|| "unlimited".into()),
            bandwidth_now: rates_in_words(&summary.bandwidth_now),
            bandwidth_next: summary.bandwidth_next.as_ref().map(|change| {
                format!(
                    "{}: {}",
                    change.at.format("%a %Y-%m-%d %H:%M %Z"),
                    rates_in_words(&change.rates)
                )
            }),
            max_concurrent: summary.max_concurrent,
            placement: placement_of(&summary.config).describe(),
        }
    }
}

/// The placement in an endpoint's public config (absent: anywhere).
fn placement_of(config: &Value) -> EndpointPlacement {
    config
        .get("placement")
        .and_then(|placement| serde_json::from_value(placement.clone()).ok())
        .unwrap_or_default()
}

/// `config[key]` as text (empty when absent).
fn text<'a>(config: &'a Value, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Where an endpoint of `kind` is, from its public config.
fn place(kind: &str, config: &Value) -> String {
    let port = config.get("port").and_then(Value::as_u64).unwrap_or(0);
    match kind {
        "local" => text(config, "root").to_string(),
        "s3" => {
            let mut place = text(config, "bucket").to_string();
            if !text(config, "prefix").is_empty() {
                place = format!("{place}/{}", text(config, "prefix"));
            }
            match text(config, "endpoint_url") {
                "" => place,
                url => format!("{place} at {url}"),
            }
        }
        "sftp" => {
            let place = format!("{}@{}:{port}", text(config, "user"), text(config, "host"));
            match text(config, "root") {
                "" => place,
                root => format!("{place} {root}"),
            }
        }
        "smb" => {
            let place = format!("//{}/{}", text(config, "host"), text(config, "share"));
            match text(config, "root").trim_matches('/') {
                "" => place,
                root => format!("{place}/{root}"),
            }
        }
        _ => String::new(),
    }
}

/// `512.0 KiB/s`, `up 1.0 MiB/s, down unlimited`, `unlimited`.
fn rates_in_words(rates: &Rates) -> String {
    let rate = |rate: Option<u64>| match rate {
        Some(bytes) => format!("{}/s", bytesize::ByteSize::b(bytes).display().iec()),
        None => "unlimited".into(),
    };
    if rates.upload == rates.download {
        rate(rates.upload)
    } else {
        format!("up {}, down {}", rate(rates.upload), rate(rates.download))
    }
}

/// The public config's fields by dotted name (`auth.method`), as text; arrays one item a
/// line, except the placement's lists (one-line fields, comma-separated); secrets and empty
/// values left out.
fn form_values(config: &Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    flatten(config, "", &mut |key, value| {
        if value != MASK && !value.is_empty() {
            values.insert(key.to_string(), value.to_string());
        }
    });
    let placement = placement_of(config);
    for (key, names) in [
        ("placement.agents", &placement.agents),
        ("placement.labels", &placement.labels),
    ] {
        if !names.is_empty() {
            values.insert(key.into(), names.join(", "));
        }
    }
    values
}

/// Calls `each` with every scalar (or array, joined by newlines) of `value` by dotted path.
fn flatten(value: &Value, path: &str, each: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(value, &path, each);
            }
        }
        Value::Array(items) => {
            let lines: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            each(path, &lines.join("\n"));
        }
        Value::String(text) => each(path, text),
        Value::Null => {}
        other => each(path, &other.to_string()),
    }
}

/// The endpoint's facts for its page: (field, value) with a set secret as `set`, without
/// the name, type, bandwidth and placement the page shows apart.
fn facts(config: &Value) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    flatten(config, "", &mut |key, value| {
        if matches!(key, "name" | "type" | "bandwidth") || key.starts_with("placement.") {
            return;
        }
        let value = match value {
            MASK => "set",
            "" => "(empty)",
            value => value,
        };
        facts.push((key.to_string(), value.to_string()));
    });
    facts
}

/// Whether each secret field is stored: `set` or `not set`.
fn secret_states(config: &Value) -> BTreeMap<&'static str, &'static str> {
    SECRETS
        .iter()
        .map(|name| {
            let value = name
                .split('.')
                .try_fold(config, |value, key| value.get(key))
                .and_then(Value::as_str);
            (
                *name,
                if value == Some(MASK) {
                    "set"
                } else {
                    "not set"
                },
            )
        })
        .collect()
}

/// `/ui/endpoints`: every endpoint.
pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let page = Page::new(&session, "endpoints");
    match state.orbit.endpoints().await {
        Ok(endpoints) => {
            let rows: Vec<Row> = endpoints.iter().map(Row::of).collect();
            page.render("endpoints.html", context! { endpoints => rows })
        }
        Err(err) => page.failed(err),
    }
}

/// `/ui/endpoints/new` (admin): the empty form.
pub(crate) async fn new(Extension(session): Extension<Session>) -> Response {
    let mut defaults = Map::new();
    defaults.insert("type".into(), "sftp".into());
    Page::new(&session, "endpoints").render(
        "endpoint_new.html",
        context! {
            mode => "new",
            types => TYPES,
            v => form_values(&Value::Object(defaults)),
            secrets => secret_states(&Value::Null),
        },
    )
}

/// `/ui/endpoints/{name}`: its facts; the edit form for an admin; test for an operator.
pub(crate) async fn detail(
    State(state): State<Shared>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let page = Page::new(&session, "endpoints");
    let endpoints = match state.orbit.endpoints().await {
        Ok(endpoints) => endpoints,
        Err(err) => return page.failed(err),
    };
    let Some(summary) = endpoints.iter().find(|endpoint| endpoint.name == name) else {
        return page.error(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no endpoint named {name:?}."),
        );
    };
    let mut values = form_values(&summary.config);
    values.insert("max_concurrent".into(), summary.max_concurrent.to_string());
    page.render(
        "endpoint.html",
        context! {
            mode => "edit",
            types => TYPES,
            endpoint => Row::of(summary),
            facts => facts(&summary.config),
            v => values,
            secrets => secret_states(&summary.config),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_know_secrets_only_as_set_or_not() {
        let config = json!({"name": "p", "type": "sftp", "host": "h", "port": 22, "user": "u",
            "auth": {"method": "key_pem", "pem": "***", "passphrase": null},
            "host_key": {"check": "pinned", "keys": ["ssh-ed25519 AAAA", "ssh-rsa BBBB"]}});
        let values = form_values(&config);
        assert_eq!(values["auth.method"], "key_pem");
        assert_eq!(values["host_key.keys"], "ssh-ed25519 AAAA\nssh-rsa BBBB");
        assert!(!values.contains_key("auth.pem"), "{values:?}");
        let states = secret_states(&config);
        assert_eq!(states["auth.pem"], "set");
        assert_eq!(states["auth.passphrase"], "not set");
        let facts = facts(&config);
        assert!(
            facts.contains(&("auth.pem".into(), "set".into())),
            "{facts:?}"
        );
        assert!(!facts.iter().any(|(key, _)| key == "name"));
        assert_eq!(place("sftp", &config), "u@h:22");
    }

    #[test]
    fn placement_reads_as_words_and_fills_one_line_fields() {
        let placed = json!({"name": "b-files", "type": "local", "root": "/srv",
            "placement": {"agents": ["b", "c"], "labels": ["dmz"]}});
        assert_eq!(placement_of(&placed).describe(), "agents b, c; labels dmz");
        let values = form_values(&placed);
        assert_eq!(values["placement.agents"], "b, c");
        assert_eq!(values["placement.labels"], "dmz");
        assert!(
            !facts(&placed)
                .iter()
                .any(|(key, _)| key.starts_with("placement"))
        );
        let anywhere = json!({"name": "x", "type": "local", "root": "/srv"});
        assert_eq!(placement_of(&anywhere).describe(), "anywhere");
        assert!(!form_values(&anywhere).contains_key("placement.agents"));
    }

    #[test]
    fn places_and_rates_read_well() {
        let s3 = json!({"bucket": "b", "prefix": "in", "endpoint_url": "http://m:9000"});
        assert_eq!(place("s3", &s3), "b/in at http://m:9000");
        let smb = json!({"host": "fs", "share": "data", "root": "/x/"});
        assert_eq!(place("smb", &smb), "//fs/data/x");
        let rates = Rates {
            upload: Some(512 * 1024),
            download: None,
        };
        assert_eq!(rates_in_words(&rates), "up 512.0 KiB/s, down unlimited");
        assert_eq!(rates_in_words(&Rates::UNLIMITED), "unlimited");
    }
}
