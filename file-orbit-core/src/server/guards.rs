//! What the API's and the agents' routers share: the request deadline and the
//! failed-authentication bucket of each client address.

use super::error::ApiError;
use super::handlers::Shared;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::time::Duration;

/// Answers 503 `timeout` when `next` has not answered within `limit`.
pub(super) async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} s: the store or a remote may be unreachable",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The request's client address (empty when embedded without connect info: then all
/// clients share one failed-authentication bucket).
pub(super) fn peer_of(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default()
}

/// Takes a token from the failed-authentication bucket of client address `peer`: the 429
/// answer once it is empty.
pub(super) fn failed_auth_limited(state: &Shared, peer: &str) -> Option<Response> {
    let retry_after = state.failed_auth.check(peer).err()?;
    tracing::warn!(%peer, "failed authentication rate limited");
    Some(ApiError::rate_limited("this address", retry_after).into_response())
}
