//! `Secret`: a credential that never prints. Debug, Display and Serialize all show `***`;
//! only `expose()` gives the value, at the one place that hands it to rclone.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A password, key or token. Compare with `==`; read with `expose()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value: only for handing it to the system that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// In the OpenAPI document: a write-only string (`format: password`); read back as `***`.
#[cfg(feature = "server")]
impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Password,
            )))
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for Secret {}

thread_local! {
    static REVEALING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// 32 random bytes as URL-safe base64 (43 characters): session cookies, enrolment tokens,
/// agent credentials.
pub(crate) fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of `text` in hex: what the store keeps of a token instead of the token.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Runs `f` with secrets serialising to their real values on this thread: only for the
/// store, which seals the result with an AEAD before it is written anywhere.
pub(crate) fn with_secrets_revealed<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            REVEALING.with(|flag| flag.set(false));
        }
    }
    REVEALING.with(|flag| flag.set(true));
    let _reset = Reset;
    f()
}

/// Whether `a` and `b` serialise alike with their secrets revealed (a declaration and what
/// the store holds, compared without storing the declaration again).
#[cfg(feature = "service")]
pub(crate) fn same_with_secrets<T: Serialize>(a: &T, b: &T) -> bool {
    let revealed = |value: &T| with_secrets_revealed(|| serde_json::to_value(value).ok());
    revealed(a) == revealed(b)
}

/// Serialises as `"***"`: secrets are write-only (see `with_secrets_revealed`).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REVEALING.with(|flag| flag.get()) {
            serializer.serialize_str(&self.0)
        } else {
            serializer.serialize_str("***")
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        let read: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(read.expose(), "hunter2");
    }
}
