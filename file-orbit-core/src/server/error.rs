//! The API's one error shape, `{"error": {"kind", "message", "field"?}}`, and the one
//! place where `ErrorKind` becomes an HTTP status and an unreadable path, query or body
//! becomes a 400 naming its field (serde's messages without the values they quote).

use crate::error::{Error, ErrorKind};
use crate::serde_errors::serde_field;
pub(crate) use crate::serde_errors::without_values;
use axum::Json;
use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
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

    /// 429: too many requests from `whom` (`this key`, `this address`).
    pub fn rate_limited(whom: &str, retry_after: u64) -> Self {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for {whom}; retry after {retry_after} s"),
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

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let (status, kind) = status_of(&err);
        let field = if status == StatusCode::BAD_REQUEST {
            err.field.clone()
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

impl ApiError {
    /// A 400 `invalid_input` from a serde message (values removed), naming the field serde
    /// names, else `otherwise` (`body`, `query`).
    pub fn from_serde(message: &str, otherwise: &str) -> Self {
        let message = without_values(message);
        let field = serde_field(&message).unwrap_or_else(|| otherwise.into());
        ApiError::invalid(&field, message)
    }
}

/// `value` read as a `T`: an error names its field (serde's unknown or missing field, else
/// the path of the value at fault, e.g. `spec.retry.max_attempts`), without the value.
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let mut api = ApiError::from_serde(&err.inner().to_string(), "body");
        if path != "." && api.field.as_deref() == Some("body") {
            api.message = format!("{path}: {}", api.message);
            api.field = Some(path);
        }
        api
    })
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
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
        ApiError::from_serde(&rejection.body_text(), "body")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::from_serde(&rejection.body_text(), "query")
    }
}

/// A path segment that cannot be read (not UTF-8 once percent-decoded, not the type the
/// route wants): 400 naming the parameter.
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let PathRejection::FailedToDeserializePathParams(failed) = &rejection else {
            return ApiError::invalid("path", without_values(&rejection.body_text()));
        };
        let (field, message) = match failed.kind() {
            PathErrorKind::InvalidUtf8InPathParam { key } => (
                key.clone(),
                format!("the path parameter {key} is not UTF-8 once percent-decoded"),
            ),
            PathErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => (
                key.clone(),
                format!("the path parameter {key} is not a valid {expected_type}"),
            ),
            PathErrorKind::DeserializeError { key, message, .. } => (
                key.clone(),
                format!("the path parameter {key}: {}", without_values(message)),
            ),
            _ => ("path".to_string(), without_values(&failed.body_text())),
        };
        ApiError::invalid(&field, message)
    }
}

/// The body of every error answer: `{"error": {"kind", "message", "field"?}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a kind a program can branch on, a sentence for a person, and the field
/// at fault (a body field's path, a query or path parameter) when there is one.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_input`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `too_large`,
    /// `unsupported_media_type`, `rate_limited`, `timeout`, `store_unavailable`, ...
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// The error object: `{"kind", "message", "field"?}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!(self.detail())
    }

    /// The error object as a value.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            kind: self.kind,
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_json();
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
    fn fields_are_named_from_errors() {
        let core = Error::invalid_field("endpoint \"a\"", "max_concurrent", "must be at least 1");
        let api = ApiError::from(core);
        assert_eq!(api.field.as_deref(), Some("max_concurrent"));
        assert_eq!(
            api.message,
            "endpoint \"a\": max_concurrent: must be at least 1"
        );
        let unnamed = Error::new(
            ErrorKind::InvalidInput,
            "job 3",
            "a: b is Queued; only dead",
        );
        assert_eq!(ApiError::from(unnamed).field, None);
        assert_eq!(
            serde_field("Failed to deserialize: unknown field `bogus`, expected one of").as_deref(),
            Some("bogus")
        );
    }

    #[test]
    fn serde_messages_lose_their_values() {
        for (message, expected) in [
            (
                r#"auth: invalid type: string "s3\"cr`et", expected internally tagged enum"#,
                "auth: invalid type: string, expected internally tagged enum",
            ),
            (
                "invalid type: integer `72439`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "unknown variant `s3`cr, expected`, expected one of `password`, `agent`",
                "unknown variant, expected one of `password`, `agent`",
            ),
            (
                "unknown field `bogus`, expected one of `name`",
                "unknown field `bogus`, expected one of `name`",
            ),
        ] {
            assert_eq!(without_values(message), expected);
        }
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
