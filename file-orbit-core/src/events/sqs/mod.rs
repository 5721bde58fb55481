//! S3 event notifications through SQS: a consumer that long-polls a queue, turns every
//! `ObjectCreated:*` record into a file event on a stored S3 endpoint and ingests it.
//!
//! Bodies are accepted as S3 sends them (`{"Records":[...]}`) and wrapped by SNS
//! (`{"Type":"Notification","Message":"<the S3 JSON>"}`). What becomes of a record:
//! - `ObjectCreated:*` on the endpoint's bucket, under its prefix: an event with a file
//!   (the key relative to the prefix, the size from the record), matched to templates;
//! - any other record (another event name, another bucket, a key outside the prefix, a
//!   directory marker): stored as an event without a file, so with no matches, and the
//!   reason under `ignored` in its payload — kept for audit, never a job;
//! - `s3:TestEvent` (sent when a notification is configured): deleted, not stored;
//! - an unusable body (not JSON, not an S3 notification, a record missing its bucket,
//!   key or event name): stored as a dead event with the body and the reason, then
//!   deleted, and the consumer goes on.
//!
//! Keys arrive URL-encoded (`+` for space, and some servers encode `/` too) and are
//! decoded. Events are deduplicated by `s3:{bucket}:{key}:{sequencer or eTag}`, so a
//! redelivered message, a copy of it, or the two events some servers send for one
//! multipart upload make one event. (Without a sequencer, as on moto, an object written
//! again with the same bytes has the same eTag and is therefore not a new event.)
//!
//! Delivery is at least once: a message is deleted only after every one of its events
//! was ingested (its jobs durably stored). While a batch is being ingested its
//! messages' visibility is extended every half visibility timeout. If ingesting fails
//! (the store is down, ...) the message is left on the queue: SQS delivers it again
//! after the visibility timeout, and the queue's own redrive policy moves it to the
//! queue's dead-letter queue after `maxReceiveCount` deliveries.
//!
//! The endpoint's bucket and prefix are read once, when the source starts: restart the
//! source after editing the endpoint.
//!
//! Layout: this file is the source's settings ([`SqsSource`]); `message` parses bodies
//! into events (no I/O), `consumer` is the SQS client and its receive loop.

mod consumer;
mod message;

pub use self::consumer::{SqsConsumer, SqsStats};
pub use self::message::{ParsedMessage, parse_s3_message};
use crate::endpoint::{AwsCredentials, check_endpoint_url};
use crate::error::{Error, Result};
/// The SQS SDK this source uses, for callers that manage queues themselves.
pub use aws_sdk_sqs;
use serde::{Deserialize, Serialize};

/// The `source` of every event this consumer stores.
pub const SOURCE: &str = "sqs";

/// Where S3 notifications come from and which endpoint they are about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsSource {
    /// The queue's URL, e.g. `https://sqs.eu-west-1.amazonaws.com/123456789012/uploads`.
    pub queue_url: String,
    pub region: String,
    /// The SQS endpoint for non-AWS servers (e.g. `http://127.0.0.1:5000`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Static credentials (`access_key_id`, `secret_access_key`, `session_token` beside
    /// the other fields); without them the default chain (environment, profile, web
    /// identity, ECS/instance role) is used.
    #[serde(flatten)]
    pub credentials: AwsCredentials,
    /// The stored S3 endpoint whose bucket the notifications are about.
    pub endpoint: String,
    /// Long polling: how long one receive waits for messages (0–20 s).
    #[serde(default = "default_wait")]
    pub wait_time_seconds: u32,
    /// Messages per receive (1–10).
    #[serde(default = "default_max_messages")]
    pub max_messages: u32,
    /// How long a received message stays hidden from other consumers (1 s – 12 h);
    /// extended while it is being ingested.
    #[serde(default = "default_visibility")]
    pub visibility_timeout_seconds: u32,
}

fn default_wait() -> u32 {
    20
}

fn default_max_messages() -> u32 {
    10
}

fn default_visibility() -> u32 {
    60
}

impl SqsSource {
    /// A source with the default timings and the default credential chain.
    pub fn new(
        queue_url: impl Into<String>,
        region: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> SqsSource {
        SqsSource {
            queue_url: queue_url.into(),
            region: region.into(),
            endpoint_url: None,
            credentials: AwsCredentials::default(),
            endpoint: endpoint.into(),
            wait_time_seconds: default_wait(),
            max_messages: default_max_messages(),
            visibility_timeout_seconds: default_visibility(),
        }
    }

    /// Checks every field; the error names the field (never a secret).
    pub fn validate(&self) -> Result<()> {
        let err = |field: &str, why: String| Err(Error::invalid_field("sqs source", field, why));
        check_endpoint_url(&self.queue_url).or_else(|why| err("queue_url", why))?;
        if self.region.trim().is_empty() {
            return err("region", "must not be empty".into());
        }
        if let Some(url) = &self.endpoint_url {
            check_endpoint_url(url).or_else(|why| err("endpoint_url", why))?;
        }
        if let Err((field, why)) = self.credentials.check() {
            return err(field, why);
        }
        if self.endpoint.trim().is_empty() {
            return err("endpoint", "must name a stored S3 endpoint".into());
        }
        if self.wait_time_seconds > 20 {
            return err(
                "wait_time_seconds",
                format!("{} is above SQS's maximum of 20", self.wait_time_seconds),
            );
        }
        if !(1..=10).contains(&self.max_messages) {
            return err(
                "max_messages",
                format!("{} is not within 1..=10", self.max_messages),
            );
        }
        if !(1..=43_200).contains(&self.visibility_timeout_seconds) {
            return err(
                "visibility_timeout_seconds",
                format!(
                    "{} is not within 1..=43200",
                    self.visibility_timeout_seconds
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_credentials_beside_their_fields_and_refuse_unknown_ones() {
        let text = r#"{"queue_url": "http://127.0.0.1:5000/1/q", "region": "us-east-1",
                       "endpoint": "s3in", "access_key_id": "AKID",
                       "secret_access_key": "hunter2", "max_messages": 5}"#;
        let source: SqsSource = serde_json::from_str(text).unwrap();
        assert_eq!(source.max_messages, 5);
        assert_eq!(source.credentials.static_keys().unwrap().0, "AKID");
        source.validate().unwrap();
        let written = serde_json::to_value(&source).unwrap();
        assert_eq!(written["secret_access_key"], "***");
        assert_eq!(written["wait_time_seconds"], 20);
        let unknown = text.replace("\"max_messages\"", "\"max_mesages\"");
        let err = serde_json::from_str::<SqsSource>(&unknown).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_mesages`"),
            "{err}"
        );
    }

    #[test]
    fn sources_are_validated() {
        let mut source = SqsSource::new("http://127.0.0.1:5000/1/q", "us-east-1", "s3in");
        source.validate().unwrap();
        source.wait_time_seconds = 21;
        let field = |source: &SqsSource| source.validate().unwrap_err().field.unwrap_or_default();
        assert_eq!(field(&source), "wait_time_seconds");
        source.wait_time_seconds = 1;
        source.credentials.access_key_id = Some("id".into());
        assert_eq!(field(&source), "secret_access_key");
        source.credentials.secret_access_key = Some(crate::secret::Secret::new("hunter2"));
        source.validate().unwrap();
        assert!(!format!("{source:?}").contains("hunter2"));
        source.max_messages = 11;
        assert_eq!(field(&source), "max_messages");
    }
}
