//! The console's sign-in: an API key or JWT exchanged for a session cookie (HttpOnly,
//! SameSite=Strict, Secure behind HTTPS) stored by its SHA-256, the CSRF token derived from
//! the cookie, and sign-out. A session opened with an API key ends when the key is revoked
//! or expires; one opened with a JWT ends with the token at the latest.

use super::Session;
use super::render::Page;
use crate::engine::StoredSession;
use crate::secret::{random_token, sha256_hex};
use crate::server::AppState;
use crate::server::auth::Principal;
use crate::server::config::Role;
use crate::server::error::ApiError;
use crate::server::handlers::Shared;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use minijinja::context;
use serde::Deserialize;
use sha2::Sha256;
use std::net::SocketAddr;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "fo_session";
/// The sign-in form's own CSRF cookie (there is no session yet to derive a token from).
const SIGN_IN_COOKIE: &str = "fo_sign_in";
/// The header a console page's script sends its CSRF token in, on every call that changes
/// something.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in form stays usable.
const SIGN_IN_FORM_SECS: i64 = 600;

fn csrf_mac(cookie: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(cookie.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"file-orbit console csrf");
    mac
}

/// The CSRF token of the session whose cookie is `cookie`: only a page of that session
/// knows it (the cookie is HttpOnly).
fn csrf_of(cookie: &str) -> String {
    hex::encode(csrf_mac(cookie).finalize().into_bytes())
}

/// Whether `token` is the CSRF token of the session cookie `cookie` (in constant time).
pub(crate) fn csrf_matches(cookie: &str, token: &str) -> bool {
    hex::decode(token).is_ok_and(|token| csrf_mac(cookie).verify_slice(&token).is_ok())
}

/// The value of cookie `name` in a request's headers.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(|cookie| cookie.ok())
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_string())
}

/// The session of a request's cookie: None without one, or when it expired, was closed,
/// or its API key was revoked.
pub(crate) async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(stored) = state.orbit.store().session(&sha256_hex(&cookie)).await? else {
        return Ok(None);
    };
    let principal = match &stored.credential {
        Some(key) => match state.authenticator.key_by_hash(key).await {
            Ok(principal) => principal,
            Err(err) if err.status == StatusCode::UNAUTHORIZED => return Ok(None),
            Err(err) => return Err(err),
        },
        None => Principal {
            name: stored.principal.clone(),
            role: Role::parse(&stored.role).ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "a stored session has an unknown role",
                )
            })?,
        },
    };
    Ok(Some(Session {
        principal,
        csrf: csrf_of(&cookie),
    }))
}

/// Whether the console's cookies get `Secure`: configured, served over the server's own
/// HTTPS, or the request came through an HTTPS proxy.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.console.secure_cookies
        || state.config.tls.enabled()
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn set_cookie(
    response: &mut Response,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: i64,
    secure: bool,
) {
    let cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Where to go after signing in: a console page, never another site.
fn next_page(next: Option<&str>) -> &str {
    next.filter(|next| {
        next.starts_with("/ui/")
            && !next.contains("//")
            && !next.contains('\\')
            && next.chars().all(|c| !c.is_control())
    })
    .unwrap_or("/ui/")
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
}

/// `GET /ui/login`: the sign-in form (a signed-in caller goes on to the console).
pub(crate) async fn sign_in_form(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    if let Ok(Some(_)) = session_of(&state, &headers).await {
        return Redirect::to(next_page(query.next.as_deref())).into_response();
    }
    sign_in_page(
        &state,
        &headers,
        query.next.as_deref(),
        None,
        StatusCode::OK,
    )
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_token();
    let mut response = Page::anonymous().render(
        "login.html",
        context! { next => next_page(next), error => error, sign_in_token => &csrf },
    );
    *response.status_mut() = status;
    set_cookie(
        &mut response,
        SIGN_IN_COOKIE,
        csrf,
        "/ui/login",
        SIGN_IN_FORM_SECS,
        secure(state, headers),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /ui/login`: checks the key or token and opens a session.
pub(crate) async fn sign_in(
    State(state): State<Shared>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = form.next.as_deref();
    // The form again, with why this sign-in was refused.
    let refused =
        |status, message: &str| sign_in_page(&state, &headers, next, Some(message), status);
    let form_cookie = cookie_value(&headers, SIGN_IN_COOKIE);
    if form_cookie.is_none_or(|cookie| cookie.is_empty() || cookie != form.csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            "This sign-in form has expired: sign in again.",
        );
    }
    let credential = match state.authenticator.credential(form.token.trim()).await {
        Ok(credential) => credential,
        Err(err) => {
            let peer = extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_default();
            if let Err(retry_after) = state.failed_auth.check(&peer) {
                return refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Too many failed sign-ins: try again in {retry_after} s."),
                );
            }
            return refused(err.status, &format!("Not signed in: {}.", err.message));
        }
    };
    // Each sign-in stores a session: it takes a token from its caller's rate limit.
    if let Err(retry_after) = state.limiter.check(&credential.principal.name) {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-ins for this caller: try again in {retry_after} s."),
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut expires_at = now + (state.config.console.session_secs as i64) * 1000;
    if let Some(exp) = credential.expires_at {
        expires_at = expires_at.min(exp.saturating_mul(1000));
    }
    let cookie = random_token();
    let stored = StoredSession {
        principal: credential.principal.name.clone(),
        role: credential.principal.role.as_str().to_string(),
        credential: credential.key_sha256,
        created_at: now,
        expires_at,
    };
    if let Err(err) = state
        .orbit
        .store()
        .open_session(&sha256_hex(&cookie), &stored)
        .await
    {
        return ApiError::from(err).into_response();
    }
    let mut response = Redirect::to(next_page(next)).into_response();
    let secure = secure(&state, &headers);
    set_cookie(
        &mut response,
        SESSION_COOKIE,
        cookie,
        "/",
        (expires_at - now) / 1000,
        secure,
    );
    set_cookie(
        &mut response,
        SIGN_IN_COOKIE,
        String::new(),
        "/ui/login",
        0,
        secure,
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    csrf: String,
}

/// `POST /ui/logout`: ends the session (the form's CSRF token must be the session's).
pub(crate) async fn sign_out(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(cookie) = cookie_value(&headers, SESSION_COOKIE) else {
        return Redirect::to("/ui/login").into_response();
    };
    if !csrf_matches(&cookie, &form.csrf) {
        return ApiError::forbidden("the form's CSRF token is not this session's").into_response();
    }
    if let Err(err) = state
        .orbit
        .store()
        .close_session(&sha256_hex(&cookie))
        .await
    {
        return ApiError::from(err).into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    set_cookie(
        &mut response,
        SESSION_COOKIE,
        String::new(),
        "/",
        0,
        secure(&state, &headers),
    );
    response
}
