//! The API's one error shape, `{"error": {"kind", "message", "field"?}}`, and the one
//! place where `ErrorKind` becomes an HTTP status.

use crate::error::{Error, ErrorKind};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400 naming the offending field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message);
        err.field = Some(field.to_string());
        err
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for this key; retry after {retry_after} s"),
        );
        err.retry_after = Some(retry_after);
        err
    }
}

/// How long a client is told to wait before trying again while the store is unreachable.
const STORE_RETRY_AFTER_SECS: u64 = 5;

/// The status and kind of each core error: the only such mapping of the server.
fn status_of(err: &Error) -> (StatusCode, &'static str) {
    match err.kind {
        // The store did not answer: this node cannot serve now, another or a later try may.
        ErrorKind::Store if err.retryable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Cancelled => (StatusCode::CONFLICT, "cancelled"),
        // These are about the remote systems (credentials of an endpoint, the network),
        // not about the API caller: a bad gateway, never 401/403.
        ErrorKind::Authentication => (StatusCode::BAD_GATEWAY, "remote_authentication"),
        ErrorKind::PermissionDenied => (StatusCode::BAD_GATEWAY, "remote_permission_denied"),
        ErrorKind::Connection => (StatusCode::BAD_GATEWAY, "connection"),
        ErrorKind::Remote => (StatusCode::BAD_GATEWAY, "remote"),
        ErrorKind::Protocol => (StatusCode::BAD_GATEWAY, "protocol"),
        ErrorKind::Library => (StatusCode::INTERNAL_SERVER_ERROR, "library"),
        ErrorKind::Store => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    }
}

/// `name: message` (as core validation errors say) names the field `name`.
fn field_of(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    let plausible = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    plausible.then(|| head.to_string())
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let (status, kind) = status_of(&err);
        let field = if status == StatusCode::BAD_REQUEST {
            field_of(&err.message)
        } else {
            None
        };
        if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
            tracing::warn!(%err, "request failed");
        }
        ApiError {
            status,
            kind,
            message: err.to_string(),
            field,
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(STORE_RETRY_AFTER_SECS),
        }
    }
}

/// serde's "unknown field `x`" / "missing field `x`" name the field `x`.
fn serde_field(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "unknown variant `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            if marker == "unknown variant `" {
                return None;
            }
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(status, "too_large", "the request body is too large");
        }
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return ApiError::new(
                status,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            );
        }
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message.clone());
        err.field = serde_field(&message);
        err
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let message = rejection.body_text();
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message.clone());
        err.field = serde_field(&message);
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"kind": self.kind, "message": self.message});
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        // Refused before the body was read: the connection cannot be reused, so say so
        // (a pooling client would otherwise send its next request into a closed socket).
        if matches!(
            self.status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_from_messages() {
        assert_eq!(
            field_of("max_concurrent: must be at least 1").as_deref(),
            Some("max_concurrent")
        );
        assert_eq!(field_of("job 3 is Queued; only dead"), None);
        assert_eq!(
            serde_field("Failed to deserialize: unknown field `bogus`, expected one of").as_deref(),
            Some("bogus")
        );
    }

    #[test]
    fn core_kinds_map_to_statuses() {
        let status = |kind| ApiError::from(Error::new(kind, "x", "y")).status;
        assert_eq!(status(ErrorKind::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(status(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(ErrorKind::Store), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(ErrorKind::Authentication), StatusCode::BAD_GATEWAY);
    }
}
