//! The router: every route with its handler (from `handlers/`), the role checks, the
//! request deadline, authentication and rate limits; `/health` and `/metrics` are answered
//! by `health.rs`.

use super::api_doc;
use super::api_doc::required_role;
use super::auth::Principal;
use super::error::ApiError;
use super::guards::{failed_auth_limited, peer_of, within};
use super::handlers::Shared;
use super::health::{HEALTH_DETAIL_ROLE, health};
use super::ui;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;

pub(super) fn router(state: Shared) -> Router {
    // Method and path from each handler's annotation, its role from the same table entry.
    let mut api = Router::new();
    for (_, (_, paths, handler)) in api_doc::handlers() {
        for path in paths.paths.keys() {
            api = api.route(path, handler.clone());
        }
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .route_layer(middleware::from_fn_with_state(state.clone(), deadline));
    let health_route = get(health).route_layer(middleware::from_fn_with_state(
        state.clone(),
        credentials_if_given,
    ));
    // The console's pages answer within the request deadline too.
    let console = match state.config.console.enabled {
        true => ui::router(state.clone())
            .route_layer(middleware::from_fn_with_state(state.clone(), deadline)),
        false => Router::new(),
    };
    let agents = super::agent_api::router(state.clone());
    Router::new()
        .route("/health", health_route)
        .merge(agents)
        .route("/api/v1/openapi.json", get(api_doc::document))
        .merge(api)
        .merge(console)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn(ui::security_headers))
        .with_state(state)
}

/// Answers 503 `timeout` when a request has not been answered within
/// `request_timeout_secs`, so no client waits without end on a silent store or a hanging
/// remote (the work is dropped with the request).
async fn deadline(State(state): State<Shared>, request: Request, next: Next) -> Response {
    within(
        Duration::from_secs(state.config.request_timeout_secs),
        request,
        next,
    )
    .await
}

/// Authentication (a failure takes a token from the client address's bucket: 429 once it
/// is empty), the route's role, then the caller's rate limit.
async fn authorize(
    State(state): State<Shared>,
    route: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let principal = match header {
        // The console's calls: its session cookie, and its CSRF token on every change.
        None if ui::cookie_value(request.headers(), ui::SESSION_COOKIE).is_some() => {
            match console_caller(&state, request.method(), request.headers().clone()).await {
                Ok(principal) => Ok(principal),
                Err(err) => return err.into_response(),
            }
        }
        _ => state.authenticator.authenticate(header).await,
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(err) => {
            if err.status == StatusCode::UNAUTHORIZED {
                if let Some(limited) = failed_auth_limited(&state, &peer_of(&request)) {
                    return limited;
                }
            }
            let mut response = err.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    };
    let needed = match route.as_str() {
        "/health" => Some(HEALTH_DETAIL_ROLE),
        api => required_role(request.method(), api),
    };
    let Some(needed) = needed else {
        return ApiError::forbidden(format!(
            "{} {} is not an API route",
            request.method(),
            route.as_str()
        ))
        .into_response();
    };
    if principal.role < needed {
        return ApiError::forbidden(format!(
            "{} needs the {needed:?} role; this caller is {:?}",
            route.as_str(),
            principal.role
        ))
        .into_response();
    }
    if let Err(retry_after) = state.limiter.check(&principal.name) {
        return ApiError::rate_limited("this key", retry_after).into_response();
    }
    let method = request.method().clone();
    let caller = principal.name.clone();
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    tracing::info!(
        target: "file_orbit::server::access",
        %caller, %method, route = route.as_str(), status = response.status().as_u16(),
        "request"
    );
    response
}

/// The caller of a request carrying the console's session cookie: the session's, when it
/// is valid and, for any method but GET and HEAD, the request sends the session's CSRF
/// token (`X-CSRF-Token`): a page of another site can send the cookie, never the token.
async fn console_caller(
    state: &Shared,
    method: &Method,
    headers: HeaderMap,
) -> Result<Principal, ApiError> {
    let session = ui::session_of(state, &headers)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the console session has ended: sign in again"))?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let cookie = ui::cookie_value(&headers, ui::SESSION_COOKIE).unwrap_or_default();
        let token = headers
            .get(ui::CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !ui::csrf_matches(&cookie, token) {
            return Err(ApiError::forbidden(
                "a console call that changes something must send the session's X-CSRF-Token",
            ));
        }
    }
    Ok(session.principal)
}

/// `/health` answers anyone; a caller who sends credentials passes `authorize` (as
/// `HEALTH_DETAIL_ROLE` at least) and is answered the detailed view.
async fn credentials_if_given(
    state: State<Shared>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(header::AUTHORIZATION) {
        authorize(state, route, request, next).await
    } else {
        next.run(request).await
    }
}
