//! The console's HTML: the templates compiled into the binary (minijinja, every value
//! HTML-escaped unless a template says otherwise — none does), the filters they share
//! (sizes, times) and `Page`, which renders a template with what every page shows (the
//! caller, the CSRF token, the section for the navigation bar).

use super::Session;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::handlers::parse_query;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::sync::LazyLock;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("transfer.html", include_str!("templates/transfer.html")),
    ("endpoints.html", include_str!("templates/endpoints.html")),
    (
        "endpoint_new.html",
        include_str!("templates/endpoint_new.html"),
    ),
    ("endpoint.html", include_str!("templates/endpoint.html")),
    ("templates.html", include_str!("templates/templates.html")),
    ("sources.html", include_str!("templates/sources.html")),
    (
        "notifications.html",
        include_str!("templates/notifications.html"),
    ),
    ("workers.html", include_str!("templates/workers.html")),
    ("agents.html", include_str!("templates/agents.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("logs.html", include_str!("templates/logs.html")),
];

static TEMPLATE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A misspelt variable is an error, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("bytes", bytes);
    env.add_filter("time", time);
    env.add_filter("duration", duration);
    for (name, source) in TEMPLATES {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(template = name, %err, "a console template does not parse");
        }
    }
    env
});

/// `1536 | bytes` → `1.5 KiB`.
fn bytes(value: f64) -> String {
    bytesize::ByteSize::b(value.max(0.0) as u64)
        .display()
        .iec()
        .to_string()
}

/// Milliseconds since the epoch → `2026-12-07 21:15:07 UTC`.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Seconds → `1h 02m 03s`.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// A page's filter form read from its query string, as the API reads its parameters
/// (the same types and bounds), except that an empty field is a field left out: a plain
/// GET form sends every field, filled or not. An error is a 400 naming the field.
pub(crate) fn page_query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    let filled = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(_, value)| !value.is_empty());
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(filled)
        .finish();
    parse_query(&query)
}

/// What a page knows of its caller.
pub(crate) struct Page {
    session: Option<Session>,
    section: &'static str,
}

impl Page {
    /// A page for a signed-in caller, in navigation section `section`.
    pub(crate) fn new(session: &Session, section: &'static str) -> Page {
        Page {
            session: Some(session.clone()),
            section,
        }
    }

    /// A page for no one yet (sign-in).
    pub(crate) fn anonymous() -> Page {
        Page {
            session: None,
            section: "",
        }
    }

    /// Renders template `name` with `values` and what every page shows: `me` (name,
    /// role, `can_operate`, `can_admin`), `csrf`, `section`.
    pub(crate) fn render(&self, name: &str, values: Value) -> Response {
        let me = self.session.as_ref().map(|session| {
            let role = session.principal.role;
            context! {
                name => &session.principal.name,
                role => role.as_str(),
                can_operate => role >= Role::Operator,
                can_admin => role >= Role::Admin,
            }
        });
        let csrf = self.session.as_ref().map(|session| session.csrf.as_str());
        let page = context! { me => me, csrf => csrf, section => self.section, ..values };
        match TEMPLATE_ENV
            .get_template(name)
            .and_then(|template| template.render(page))
        {
            Ok(html) => Html(html).into_response(),
            Err(err) => {
                tracing::error!(template = name, err = %format!("{err:#}"), "a console page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>This page failed to render; the server's log says why.</p>"),
                )
                    .into_response()
            }
        }
    }

    /// The error page of a failed read or a refused filter (404 for a missing job or
    /// endpoint, 400 naming the field, 503 when the store does not answer, ...).
    pub(crate) fn failed(&self, err: impl Into<ApiError>) -> Response {
        let api = err.into();
        let title = match api.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Not a valid request",
            _ => "Something went wrong",
        };
        let message = match &api.field {
            Some(field) if !api.message.starts_with(field.as_str()) => {
                format!("{field}: {}", api.message)
            }
            _ => api.message.clone(),
        };
        self.error(api.status, title, &message)
    }

    /// An error page: `status`, a title and a message.
    pub(crate) fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        let mut response = self.render(
            "error.html",
            context! { title => title, message => message, status => status.as_u16() },
        );
        *response.status_mut() = status;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            TEMPLATE_ENV
                .get_template(name)
                .unwrap_or_else(|err| panic!("{name}: {err:#}"));
        }
    }

    #[test]
    fn values_are_escaped() {
        let env = &*TEMPLATE_ENV;
        let html = env
            .get_template("error.html")
            .unwrap()
            .render(context! {
                me => None::<()>, csrf => None::<()>, section => "",
                title => "t", status => 400, message => "<img src=x onerror=alert(1)>.txt",
            })
            .unwrap();
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
        assert!(!html.contains("<img src=x"));
    }

    #[test]
    fn filters_read_well() {
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(duration(3723.0), "1h 02m 03s");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
    }
}
