//! The AWS settings an S3 endpoint and an SQS source share: static credentials (an access
//! key pair and an optional session token; the secrets print as `***`), their checks, and
//! the check of a non-AWS server's URL. Both configs embed [`AwsCredentials`] flattened,
//! so the fields keep their names (`access_key_id`, `secret_access_key`, `session_token`)
//! in JSON, TOML and the API. Nothing here talks to AWS.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// Static AWS credentials; all unset, the default chain (environment, profile, web identity,
/// ECS/instance role) is used instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AwsCredentials {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// For temporary credentials; needs the key pair.
    #[serde(default)]
    pub session_token: Option<Secret>,
}

/// A set of static keys: the access key id, the secret key and the session token if any.
pub type StaticKeys<'a> = (&'a str, &'a Secret, Option<&'a Secret>);

impl AwsCredentials {
    /// The access key pair `access_key_id` / `secret_access_key`, without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        AwsCredentials {
            access_key_id: Some(access_key_id.into()),
            secret_access_key: Some(secret_access_key),
            session_token: None,
        }
    }

    /// The static keys, or `None` for the default chain.
    pub fn static_keys(&self) -> Option<StaticKeys<'_>> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret, self.session_token.as_ref())),
            _ => None,
        }
    }

    /// The pair is set together, and a session token only with it; the error is the field
    /// at fault and why (never a secret).
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err((
                "secret_access_key",
                "access_key_id and secret_access_key go together".into(),
            ));
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            return Err((
                "session_token",
                "needs access_key_id and secret_access_key".into(),
            ));
        }
        Ok(())
    }
}

/// A server URL (`endpoint_url`) must be http(s) and free of spaces and control characters.
pub(crate) fn check_endpoint_url(url: &str) -> Result<(), String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(())
        .ok_or_else(|| format!("{url:?} must be an http(s) URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_keep_their_names_and_hide_their_secrets() {
        let mut keys = AwsCredentials::new("AKID", Secret::new("hunter2"));
        keys.session_token = Some(Secret::new("t0ken"));
        assert!(!format!("{keys:?}").contains("hunter2"));
        assert!(!format!("{keys:?}").contains("t0ken"));
        let json = serde_json::to_value(&keys).unwrap();
        assert_eq!(json["access_key_id"], "AKID");
        assert_eq!(json["secret_access_key"], "***");
        assert_eq!(json["session_token"], "***");
        let (id, secret, token) = keys.static_keys().unwrap();
        assert_eq!((id, secret.expose()), ("AKID", "hunter2"));
        assert_eq!(token.map(Secret::expose), Some("t0ken"));
        assert!(AwsCredentials::default().static_keys().is_none());
    }

    #[test]
    fn an_s3_endpoint_reads_and_writes_them_beside_its_other_fields() {
        use crate::endpoint::{Endpoint, EndpointConfig};
        let text = r#"{"name": "s3", "type": "s3", "bucket": "b-1", "region": "eu-west-1",
                       "access_key_id": "AKID", "secret_access_key": "hunter2"}"#;
        let endpoint: Endpoint = serde_json::from_str(text).unwrap();
        let EndpointConfig::S3(s3) = &endpoint.config else {
            panic!("not S3: {endpoint:?}");
        };
        assert_eq!(s3.credentials.static_keys().unwrap().1.expose(), "hunter2");
        let written = serde_json::to_value(&endpoint).unwrap();
        assert_eq!(written["access_key_id"], "AKID");
        assert_eq!(written["secret_access_key"], "***");
        assert!(written["session_token"].is_null());
        assert!(written.get("credentials").is_none(), "{written}");
        let unknown = text.replace("\"region\"", "\"regoin\"");
        let err = serde_json::from_str::<Endpoint>(&unknown).unwrap_err();
        assert!(err.to_string().contains("unknown field `regoin`"), "{err}");
    }

    #[test]
    fn a_half_pair_or_a_lone_token_is_refused_naming_the_field() {
        let half = AwsCredentials {
            access_key_id: Some("AKID".into()),
            ..AwsCredentials::default()
        };
        assert_eq!(half.check().unwrap_err().0, "secret_access_key");
        let lone = AwsCredentials {
            session_token: Some(Secret::new("t")),
            ..AwsCredentials::default()
        };
        assert_eq!(lone.check().unwrap_err().0, "session_token");
        AwsCredentials::default().check().unwrap();
        assert!(check_endpoint_url("http://127.0.0.1:9000").is_ok());
        assert!(check_endpoint_url("ftp://x").is_err());
        assert!(check_endpoint_url("http://a b").is_err());
    }
}
