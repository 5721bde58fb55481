//! Core errors → Python exceptions. The classes and the one table from `ErrorKind` names
//! to them live in `file_orbit/errors.py` (`_from_kind`); this only hands the kind's name,
//! `retryable`, context, message (already free of secrets) and the field at fault across.

use file_orbit_core::error::Error;
use pyo3::prelude::*;

/// A failure as the core reported it, kept (cloneable) until Python asks for it.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub kind: String,
    pub retryable: bool,
    pub context: String,
    pub message: String,
    pub field: Option<String>,
}

impl From<&Error> for ErrorInfo {
    fn from(err: &Error) -> Self {
        ErrorInfo {
            kind: err.kind.as_str().to_string(),
            retryable: err.retryable,
            context: err.context.clone(),
            message: err.message.clone(),
            field: err.field.clone(),
        }
    }
}

impl ErrorInfo {
    /// The `file_orbit` exception for this failure.
    pub fn to_py_err(&self) -> PyErr {
        Python::attach(|py| {
            let made = py.import("file_orbit.errors").and_then(|errors| {
                errors.call_method1(
                    "_from_kind",
                    (
                        &self.kind,
                        self.retryable,
                        &self.context,
                        &self.message,
                        &self.field,
                    ),
                )
            });
            match made {
                Ok(exception) => PyErr::from_value(exception),
                Err(err) => err,
            }
        })
    }
}

/// The `file_orbit` exception for a core error.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    ErrorInfo::from(&err).to_py_err()
}
