//! `/api/v1/notifications` and `/api/v1/outbox`: list and read notifications (secrets as
//! `***`, with their messages counted), create or replace one (read by
//! `Notification::parse`; the channel's host checked against the allow-list), delete, send
//! a test message; list the outbox and retry a dead message. Sending is `notify::runner`'s.

use super::{
    ApiResult, Bounded, Id, IdPath, Path, Query, Shared, caller_orbit, refuse_masked_secrets,
};
use crate::engine::{MessageFilter, NotificationSummary, OutboxMessage};
use crate::error::ErrorKind;
use crate::notify::{Notification, WrittenNotification};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    summary = "List notifications (secrets as ***) with their messages counted by state.",
    responses((status = 200, description = "Every notification, by name", body = Vec<NotificationSummary>)))]
pub(crate) async fn list_notifications(State(state): State<Shared>) -> ApiResult {
    Ok(Json(state.orbit.notifications().await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/notifications/{name}", tag = "notifications",
    summary = "Get one notification (secrets as ***).",
    params(("name" = String, Path, description = "The notification's name.")),
    responses((status = 200, description = "The notification", body = NotificationSummary),
        (status = 404, description = "No notification of that name", body = ErrorBody)))]
pub(crate) async fn get_notification(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(state.orbit.store().notification(&name).await?).into_response())
}

/// Body: `{"channel": {"type", ...}, "events": [...], "filter"?, "rate_limit"?,
/// "max_attempts"?, "enabled"?, "name"?}`. 201 when created, 200 when replaced.
#[utoipa::path(put, path = "/api/v1/notifications/{name}", tag = "notifications",
    summary = "Create (201) or replace (200) a notification.",
    description = "Channel fields by type. `webhook`: `url`, `signing_key` (16+ characters; the body is signed with HMAC-SHA256 over `<timestamp>.<body>` in `X-File-Orbit-Signature: t=<unix>,v1=<hex>`). `email`: `host`, `port`, `tls` (starttls, tls, none), `username` + `password`, `from`, `to` (1-50), `ca_file`. `slack` and `teams`: `webhook_url`. The channel's host must be in the service's `notifier.allow`; private, loopback and link-local addresses (also those a name resolves to) only when listed. Events: job_succeeded, attempt_failed, job_dead, chain_completed, event_rejected, source_failing, endpoint_test_failed, worker_lost. `rate_limit`: `messages` (1-1000) per `per_secs` (1-86400), the rest in one digest per window. Secrets are write-only: `***` is refused.",
    params(("name" = String, Path, description = "The notification's name: 1 to 200 characters, not only spaces, without '/' or control characters.")),
    request_body = WrittenNotification,
    responses((status = 200, description = "Replaced", body = NotificationSummary),
        (status = 201, description = "Created", body = NotificationSummary),
        (status = 400, description = "Not a valid notification (an unknown event or field, a bad address or URL, a host outside the allow-list); `field` names what is wrong", body = ErrorBody)))]
pub(crate) async fn put_notification(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    super::Body(body): super::Body<Value>,
) -> ApiResult {
    if !body.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    refuse_masked_secrets(&body)?;
    let notification = Notification::parse(Some(&name), body)?;
    let existed = match state.orbit.store().notification(&name).await {
        Ok(_) => true,
        Err(err) if err.kind == ErrorKind::NotFound => false,
        Err(err) => return Err(err.into()),
    };
    caller_orbit(&state, &caller)
        .put_notification(&notification)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(state.orbit.store().notification(&name).await?)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/notifications/{name}", tag = "notifications",
    summary = "Delete a notification (204); its unsent messages die at their next try.",
    params(("name" = String, Path, description = "The notification's name.")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No notification of that name", body = ErrorBody)))]
pub(crate) async fn delete_notification(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    caller_orbit(&state, &caller)
        .delete_notification(&name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What a test message got from the channel.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationTest {
    /// True when the channel took the message.
    ok: bool,
    /// The channel's answer (`HTTP 200 OK`, `SMTP 250 ...`).
    answer: Option<String>,
    /// Why it failed, for a person (no secret in it).
    error: Option<String>,
    /// The error's kind (`Connection`, `Authentication`, `Remote`, `PermissionDenied`, ...).
    error_kind: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/notifications/{name}/test", tag = "notifications",
    summary = "Send a test message through a notification now and report the channel's answer.",
    description = "Sent at once, not through the outbox; audited as notification.tested. A failing channel is still a 200, with ok false and the reason.",
    params(("name" = String, Path, description = "The notification's name.")),
    responses((status = 200, description = "The channel's answer", body = NotificationTest),
        (status = 404, description = "No notification of that name", body = ErrorBody)))]
pub(crate) async fn test_notification(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    let orbit = caller_orbit(&state, &caller);
    let answer = match orbit.test_notification(&name).await {
        Ok(answer) => NotificationTest {
            ok: true,
            answer: Some(answer),
            error: None,
            error_kind: None,
        },
        Err(err) if err.kind == ErrorKind::NotFound && err.message.contains("no notification") => {
            return Err(err.into());
        }
        Err(err) => NotificationTest {
            ok: false,
            answer: None,
            error: Some(err.to_string()),
            error_kind: Some(err.kind.as_str().to_string()),
        },
    };
    Ok(Json(answer).into_response())
}

/// The states of an outbox message.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MessageState {
    Collecting,
    Queued,
    Sending,
    Sent,
    Dead,
}

impl MessageState {
    fn as_str(self) -> &'static str {
        match self {
            MessageState::Collecting => "collecting",
            MessageState::Queued => "queued",
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Dead => "dead",
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutboxQuery {
    /// Only messages of this notification.
    notification: Option<String>,
    /// Only messages in this state.
    #[param(inline)]
    state: Option<MessageState>,
    /// At most this many messages (default 100).
    #[param(inline)]
    limit: Option<Bounded<1, 1000>>,
    /// Only messages with a smaller id: the page after one ending at that id.
    #[param(inline)]
    before_id: Option<Id>,
}

#[utoipa::path(get, path = "/api/v1/outbox", tag = "notifications",
    summary = "List notification messages, newest first: what was sent, what waits, what died and why.",
    params(OutboxQuery),
    responses((status = 200, description = "The messages", body = Vec<OutboxMessage>)))]
pub(crate) async fn list_outbox(
    State(state): State<Shared>,
    Query(query): Query<OutboxQuery>,
) -> ApiResult {
    let filter = MessageFilter {
        notification: query.notification,
        state: query.state.map(|state| state.as_str().to_string()),
        before_id: query.before_id.map(|id| id.0),
        limit: query.limit.map_or(100, |limit| limit.0),
    };
    Ok(Json(state.orbit.notification_messages(&filter).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "notifications",
    summary = "Queue a dead notification message again, for as many tries as it had.",
    params(("id" = inline(Id), Path, description = "The message's outbox id.")),
    responses((status = 204, description = "Queued"),
        (status = 404, description = "No dead message of that id", body = ErrorBody)))]
pub(crate) async fn retry_outbox_message(
    State(state): State<Shared>,
    Extension(caller): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> ApiResult {
    caller_orbit(&state, &caller)
        .retry_notification_message(id.0)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
