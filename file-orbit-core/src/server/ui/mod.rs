//! The web console at `/ui/`: server-rendered pages over the same `Orbit` the API uses,
//! our own small script and style sheet compiled into the binary, sign-in with a session
//! cookie (`session`). Every page is in `CONSOLE_ROUTES` with the role it needs; a page's
//! forms and buttons call the API (`/api/v1`) with the session cookie and its CSRF token,
//! so the API's role checks and validation hold for the console too. Every response gets a
//! strict Content-Security-Policy (no inline script or style, nothing from another origin,
//! no framing).

mod pages;
mod render;
mod session;

pub(crate) use session::{CSRF_HEADER, SESSION_COOKIE, cookie_value, csrf_matches, session_of};

use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::handlers::Shared;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use render::Page;
use std::sync::LazyLock;

/// A signed-in caller of the console.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) principal: crate::server::auth::Principal,
    /// The token every form and script call must send back.
    pub(crate) csrf: String,
}

/// What every response of the server carries: no script, style, image or connection from
/// another origin, no inline script or style, no framing, no MIME sniffing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// One console route: its path and method, and the role it needs (None: open to anyone,
/// only for signing in and the static assets).
#[derive(Debug, Clone)]
pub struct ConsoleRoute {
    pub method: Method,
    pub path: &'static str,
    pub role: Option<Role>,
}

/// The console's pages (each a GET in the navigation's sections) with the role each needs.
fn pages() -> Vec<(&'static str, Role, MethodRouter<Shared>)> {
    use Role::{Admin, Operator, Viewer};
    use pages::{agents, audit, config, dashboard, endpoints, jobs, logs, transfer};
    vec![
        ("/ui/", Viewer, get(dashboard::page)),
        ("/ui/jobs", Viewer, get(jobs::list)),
        ("/ui/jobs/{id}", Viewer, get(jobs::detail)),
        ("/ui/transfers/new", Operator, get(transfer::page)),
        ("/ui/endpoints", Viewer, get(endpoints::list)),
        ("/ui/endpoints/new", Admin, get(endpoints::new)),
        ("/ui/endpoints/{name}", Viewer, get(endpoints::detail)),
        ("/ui/templates", Viewer, get(config::templates)),
        ("/ui/sources", Viewer, get(config::sources)),
        ("/ui/notifications", Viewer, get(config::notifications)),
        ("/ui/workers", Viewer, get(config::workers)),
        ("/ui/agents", Viewer, get(agents::list)),
        ("/ui/keys", Admin, get(config::keys)),
        ("/ui/audit", Viewer, get(audit::page)),
        ("/ui/logs", Operator, get(logs::page)),
    ]
}

/// Every console route, the open ones included.
pub static CONSOLE_ROUTES: LazyLock<Vec<ConsoleRoute>> = LazyLock::new(|| {
    let open = |method, path| ConsoleRoute {
        method,
        path,
        role: None,
    };
    let mut routes = vec![
        open(Method::GET, "/"),
        open(Method::GET, "/ui"),
        open(Method::GET, "/ui/login"),
        open(Method::POST, "/ui/login"),
        open(Method::POST, "/ui/logout"),
        open(Method::GET, "/ui/assets/{name}"),
    ];
    routes.extend(pages().into_iter().map(|(path, role, _)| ConsoleRoute {
        method: Method::GET,
        path,
        role: Some(role),
    }));
    routes
});

/// The console's static files: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/jobs.js"),
    ),
    (
        "transfer.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/transfer.js"),
    ),
    (
        "endpoints.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/endpoints.js"),
    ),
    (
        "config.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/config.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/audit.js"),
    ),
    (
        "agents.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/agents.js"),
    ),
    (
        "logs.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/logs.js"),
    ),
];

/// The console's routes.
pub(crate) fn router(state: Shared) -> Router<Shared> {
    let mut pages_router = Router::new();
    for (path, _, handler) in pages() {
        pages_router = pages_router.route(path, handler);
    }
    let pages_router = pages_router.route_layer(middleware::from_fn_with_state(state, signed_in));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/login",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/ui/logout", post(session::sign_out))
        .route("/ui/assets/{name}", get(asset))
        .merge(pages_router)
}

/// A page needs a session (else the sign-in form, coming back here after) and its role
/// (else 403), and takes a token from its caller's rate limit like an API call (else 429).
async fn signed_in(
    State(state): State<Shared>,
    route: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match session_of(&state, request.headers()).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            let here = request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_default();
            let next = form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>();
            return Redirect::to(&format!("/ui/login?next={next}")).into_response();
        }
        Err(err) => return err.into_response(),
    };
    let needed = CONSOLE_ROUTES
        .iter()
        .find(|r| r.method == Method::GET && r.path == route.as_str())
        .and_then(|r| r.role);
    let Some(needed) = needed else {
        return ApiError::forbidden("not a console page").into_response();
    };
    if session.principal.role < needed {
        return Page::new(&session, "").error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "This page needs the {} role; you are {}.",
                needed.as_str(),
                session.principal.role.as_str()
            ),
        );
    }
    if let Err(retry_after) = state.limiter.check(&session.principal.name) {
        let mut response = Page::new(&session, "").error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!("Too many requests for this caller: try again in {retry_after} s."),
        );
        if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found("no such asset").into_response(),
    }
}

/// The security headers of every response (pages, API, errors).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let is_page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if is_page {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
