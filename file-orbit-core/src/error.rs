//! The one error type of the core: a kind, whether retrying can help, a context saying
//! what was being done, the input field at fault (for bad input), and a message that never
//! carries a secret.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, coarse enough for retry policy and for mapping to Python exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// librclone could not be loaded or initialised.
    Library,
    /// The request was malformed or named a bad parameter (rclone status 400).
    InvalidInput,
    /// The method, file, directory or bucket does not exist (rclone status 404).
    NotFound,
    /// The operation was cancelled on request.
    Cancelled,
    /// The server refused the credentials (or, for SFTP, its host key did not match).
    Authentication,
    /// The credentials were accepted but the action is not allowed.
    PermissionDenied,
    /// The server could not be reached: DNS, refused, timeout, TLS, reset. Retryable.
    Connection,
    /// rclone failed while doing the work (status 500): network, remote, disk.
    Remote,
    /// rclone answered something we could not understand.
    Protocol,
    /// The store (database) refused or failed an operation.
    Store,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Library,
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Cancelled,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::Connection,
        ErrorKind::Remote,
        ErrorKind::Protocol,
        ErrorKind::Store,
    ];

    /// The kind named `name` (`as_str`).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The kind's stable name, as stored with a failed job (`last_error_kind`) and handed
    /// to Python, e.g. `"InvalidInput"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Library => "Library",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Authentication => "Authentication",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::Connection => "Connection",
            ErrorKind::Remote => "Remote",
            ErrorKind::Protocol => "Protocol",
            ErrorKind::Store => "Store",
        }
    }
}

/// An error from File Orbit's core. Displayed as `context: field: message` (`field: ` only
/// when there is one), e.g. `job request: spec.parallelism: must be at least 1`.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    /// True when the same request may succeed later (e.g. a network failure); set by
    /// [`Error::new`] from the kind, or by [`Error::with_retryable`].
    pub retryable: bool,
    /// What was being done, e.g. `rclone operations/list`.
    pub context: String,
    /// The input field at fault, as a path into the request or config (`spec.parallelism`,
    /// `next_hops[0].filters.include[1]`, `retry.max_attempts`); set by validation through
    /// [`Error::invalid_field`], [`Error::with_field`] and [`Error::within`].
    pub field: Option<String>,
    /// What went wrong, with secrets redacted (without the field; see [`Error::detail`]).
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, context: impl Into<String>, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Remote | ErrorKind::Connection);
        Error {
            kind,
            retryable,
            context: context.into(),
            field: None,
            message: message.into(),
            source: None,
        }
    }

    /// Bad input in `field` (an `InvalidInput` error naming it).
    pub fn invalid_field(
        context: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::new(ErrorKind::InvalidInput, context, message).with_field(field)
    }

    /// The same error, about the input field `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same error, about a part of the input at `at`: its field becomes `at.field`
    /// (`at[i]` when the field is an index, `at` when it named none). For a check of a
    /// nested value, e.g. a spec's error inside a request becomes `spec.parallelism`.
    pub fn within(mut self, at: &str) -> Self {
        self.field = Some(match self.field.take() {
            None => at.to_string(),
            Some(inner) if inner.starts_with('[') => format!("{at}{inner}"),
            Some(inner) => format!("{at}.{inner}"),
        });
        self
    }

    /// The message after the field it is about (`spec.parallelism: must be at least 1`),
    /// or the message alone: what the error says without its context.
    pub fn detail(&self) -> Cow<'_, str> {
        match &self.field {
            Some(field) => Cow::Owned(format!("{field}: {}", self.message)),
            None => Cow::Borrowed(&self.message),
        }
    }

    /// The same error, retryable or not whatever its kind says (e.g. a store that did not
    /// answer is worth another try; one that refused the statement is not).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.detail())
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, ErrorKind};

    #[test]
    fn nested_fields_compose_into_one_path() {
        let inner = Error::invalid_field("transfer spec", "parallelism", "must be at least 1");
        let err = inner.within("spec");
        assert_eq!(err.field.as_deref(), Some("spec.parallelism"));
        assert_eq!(err.message, "must be at least 1");
        assert_eq!(
            err.to_string(),
            "transfer spec: spec.parallelism: must be at least 1"
        );
        let filter = Error::invalid_field("transfer spec", "filters.include[0]", "bad glob");
        assert_eq!(
            filter.within("next_hops[2]").field.as_deref(),
            Some("next_hops[2].filters.include[0]")
        );
        let index = Error::invalid_field("server configuration", "[3]", "bad");
        assert_eq!(
            index.within("endpoints").within("config").field.as_deref(),
            Some("config.endpoints[3]")
        );
        let whole = Error::new(ErrorKind::InvalidInput, "path template", "stray '}'");
        assert_eq!(
            whole.within("destination_path").to_string(),
            "path template: destination_path: stray '}'"
        );
    }

    #[test]
    fn errors_without_a_field_read_as_before() {
        let err = Error::new(ErrorKind::NotFound, "job 3", "no such job");
        assert_eq!(err.field, None);
        assert_eq!(err.detail(), "no such job");
        assert_eq!(err.to_string(), "job 3: no such job");
    }

    #[test]
    fn a_kind_is_named_as_its_variant() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind.as_str(), format!("{kind:?}"));
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("Nonsense"), None);
    }
}
