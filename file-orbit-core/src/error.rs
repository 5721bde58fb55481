//! The one error type of the core: a kind, whether retrying can help, a context saying
//! what was being done, and a message that never carries a secret.

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

/// An error from File Orbit's core.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    /// True when the same request may succeed later (e.g. a network failure).
    pub retryable: bool,
    /// What was being done, e.g. `rclone operations/list`.
    pub context: String,
    /// What went wrong, with secrets redacted.
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
            message: message.into(),
            source: None,
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
        write!(f, "{}: {}", self.context, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn a_kind_is_named_as_its_variant() {
        for kind in [
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
        ] {
            assert_eq!(kind.as_str(), format!("{kind:?}"));
        }
    }
}
