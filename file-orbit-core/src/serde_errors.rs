//! serde's messages made safe to show and to point at: the field they are about, and
//! the message without the values it quotes (which may be secrets); and a JSON value read
//! as a type with an error naming the field's path.

use crate::error::{Error, Result};
use regex::Regex;
use std::sync::LazyLock;

/// `value` read as a `T`: an error (about `context`) names its field (serde's unknown or
/// missing field below the path of the value at fault, e.g. `retry.max_attempts`), and
/// never holds the value.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    context: &str,
    value: serde_json::Value,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = without_values(&err.inner().to_string());
        let inner = serde_field(&message);
        let field = match (path.as_str(), inner) {
            (".", Some(inner)) => inner,
            (".", None) => {
                return Error::new(crate::error::ErrorKind::InvalidInput, context, message);
            }
            // An unknown field's path already ends with it; a missing one's does not.
            (path, Some(inner)) if path.rsplit('.').next() == Some(inner.as_str()) => {
                path.to_string()
            }
            (path, Some(inner)) => format!("{path}.{inner}"),
            (path, None) => path.to_string(),
        };
        Error::invalid_field(context, field, message)
    })
}

/// serde's "unknown field `x`" / "missing field `x`" name the field `x`.
pub(crate) fn serde_field(message: &str) -> Option<String> {
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

/// A value serde quotes in its messages (`string "…"`, ``integer `…` ``, ``unknown variant
/// `…`, expected``, ...): its type stays, the value goes.
static SERDE_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"\b(string) "(?:[^"\\]|\\.)*""#,
        r"|\b(integer|floating point|boolean|character) `[^`]*`",
        // Any text may sit between these backticks: up to the last `, expected`.
        r"|\b(unknown variant) `.*`(, expected|, there are no variants)",
    ))
    .expect("valid regex")
});

/// A serde (JSON, TOML, query) message without the values it quotes: `invalid type: string
/// "s3cr3t", expected ...` becomes `invalid type: string, expected ...`, so a secret sent in
/// the wrong shape (even as an enum's tag) is never echoed. Field names (`unknown field
/// `x``) stay.
pub(crate) fn without_values(message: &str) -> String {
    SERDE_VALUE.replace_all(message, "$1$2$3$4").into_owned()
}
