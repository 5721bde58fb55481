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

use super::{IncomingEvent, Ingested};
use crate::endpoint::EndpointConfig;
use crate::engine::{FileEvent, Orbit};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
/// The SQS SDK this source uses, for callers that manage queues themselves.
pub use aws_sdk_sqs;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// Static credentials; without them the default chain (environment, profile, web
    /// identity, ECS/instance role) is used.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub session_token: Option<Secret>,
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
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            endpoint: endpoint.into(),
            wait_time_seconds: default_wait(),
            max_messages: default_max_messages(),
            visibility_timeout_seconds: default_visibility(),
        }
    }

    /// Checks every field; the error names the field (never a secret).
    pub fn validate(&self) -> Result<()> {
        let err = |field: &str, why: String| {
            Err(Error::new(
                ErrorKind::InvalidInput,
                "sqs source",
                format!("{field}: {why}"),
            ))
        };
        let is_url = |url: &str| {
            (url.starts_with("http://") || url.starts_with("https://"))
                && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if !is_url(&self.queue_url) {
            return err(
                "queue_url",
                format!("{:?} must be an http(s) URL", self.queue_url),
            );
        }
        if self.region.trim().is_empty() {
            return err("region", "must not be empty".into());
        }
        if let Some(url) = &self.endpoint_url {
            if !is_url(url) {
                return err("endpoint_url", format!("{url:?} must be an http(s) URL"));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return err(
                "secret_access_key",
                "access_key_id and secret_access_key go together".into(),
            );
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            return err(
                "session_token",
                "needs access_key_id and secret_access_key".into(),
            );
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

/// What one message body says, parsed by `parse_s3_message`.
#[derive(Debug, Clone, Default)]
pub struct ParsedMessage {
    /// The body was S3's `s3:TestEvent`: nothing to do.
    pub test_event: bool,
    /// One event per usable record (with a file for the ones templates may match).
    pub events: Vec<IncomingEvent>,
    /// Why each unusable record could not be used (`record N: ...`).
    pub bad_records: Vec<String>,
}

/// Parses an SQS message body holding an S3 notification (directly from S3 or wrapped by
/// SNS) into events about files on the S3 endpoint named `endpoint`, whose bucket and key
/// prefix are `bucket` and `prefix`. `Err` is the reason the whole body is unusable.
pub fn parse_s3_message(
    body: &str,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> std::result::Result<ParsedMessage, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let (value, via_sns) = match value.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            let inner = value.get("Message").and_then(Value::as_str).ok_or(
                "an SNS notification without a Message string (is raw delivery expected?)",
            )?;
            let inner: Value = serde_json::from_str(inner)
                .map_err(|err| format!("the SNS Message is not JSON: {err}"))?;
            (inner, true)
        }
        Some(other) => {
            return Err(format!(
                "an SNS message of type {other:?}, not a Notification"
            ));
        }
        None => (value, false),
    };
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(ParsedMessage {
            test_event: true,
            ..Default::default()
        });
    }
    let records = match value.get("Records") {
        Some(Value::Array(records)) => records,
        Some(_) => return Err("Records is not a list".into()),
        None => {
            return Err(
                "not an S3 event notification (no Records, and not an s3:TestEvent)".into(),
            );
        }
    };
    if records.is_empty() {
        return Err("Records is an empty list".into());
    }
    let prefix = prefix.trim_matches('/');
    let mut parsed = ParsedMessage::default();
    for (index, record) in records.iter().enumerate() {
        match parse_record(record, endpoint, bucket, prefix) {
            Ok(mut event) => {
                if via_sns {
                    event.payload["via"] = json!("sns");
                }
                parsed.events.push(event);
            }
            Err(why) => parsed.bad_records.push(format!("record {index}: {why}")),
        }
    }
    Ok(parsed)
}

fn parse_record(
    record: &Value,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> std::result::Result<IncomingEvent, String> {
    if !record.is_object() {
        return Err("not a JSON object".into());
    }
    let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
    if let Some(source) = text("/eventSource") {
        if source != "aws:s3" {
            return Err(format!("eventSource is {source:?}, not \"aws:s3\""));
        }
    }
    let event_name = text("/eventName").ok_or("no eventName")?;
    let record_bucket = text("/s3/bucket/name").ok_or("no s3.bucket.name")?;
    let raw_key = text("/s3/object/key").ok_or("no s3.object.key")?;
    let key = decode_key(raw_key)?;
    let size = match record.pointer("/s3/object/size") {
        None | Some(Value::Null) => None,
        Some(size) => Some(
            size.as_u64()
                .ok_or_else(|| format!("s3.object.size {size} is not a byte count"))?,
        ),
    };
    let non_empty = |pointer: &str| text(pointer).filter(|s| !s.is_empty());
    let sequencer = non_empty("/s3/object/sequencer");
    let etag = non_empty("/s3/object/eTag").map(|e| e.trim_matches('"'));
    let event_time_text = non_empty("/eventTime");
    let event_time = event_time_text.and_then(parse_event_time);
    let created = event_name.starts_with("ObjectCreated:");
    // Created: the object's version (sequencer, else eTag) alone, so the Put and
    // CompleteMultipartUpload events of one upload are one event. Others: by name too.
    let version = sequencer
        .or(etag)
        .or(if created { None } else { event_time_text })
        .ok_or("no s3.object.sequencer or s3.object.eTag to deduplicate by")?;
    let dedup_key = if created {
        format!("s3:{record_bucket}:{key}:{version}")
    } else {
        format!("s3:{record_bucket}:{key}:{event_name}:{version}")
    };

    let relative = if prefix.is_empty() {
        Some(key.as_str())
    } else {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
    };
    let ignored = if !created {
        Some(format!("{event_name} is not an ObjectCreated event"))
    } else if record_bucket != bucket {
        Some(format!(
            "bucket {record_bucket:?} is not endpoint {endpoint:?}'s bucket {bucket:?}"
        ))
    } else if relative.is_none() {
        Some(format!(
            "key {key:?} is outside endpoint {endpoint:?}'s prefix \"{prefix}/\""
        ))
    } else if relative.is_some_and(|r| r.is_empty() || r.ends_with('/')) {
        Some(format!("key {key:?} is a directory marker"))
    } else {
        None
    };
    let file = match (&ignored, relative) {
        (None, Some(path)) => Some(FileEvent {
            endpoint: endpoint.to_string(),
            path: path.to_string(),
            size,
            modified: event_time,
        }),
        _ => None,
    };
    let mut payload = json!({
        "event_name": event_name,
        "bucket": record_bucket,
        "key": key,
        "size": size,
        "etag": etag,
        "sequencer": sequencer,
        "event_time": event_time_text,
    });
    if let Some(why) = ignored {
        payload["ignored"] = json!(why);
    }
    Ok(IncomingEvent {
        source: SOURCE.into(),
        dedup_key: Some(dedup_key),
        file,
        template: None,
        payload,
    })
}

/// An S3 notification key: URL-encoded, with `+` for a space.
fn decode_key(raw: &str) -> std::result::Result<String, String> {
    let spaced = raw.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| format!("s3.object.key {raw:?} does not decode to UTF-8"))?;
    if key.is_empty() {
        return Err("s3.object.key is empty".into());
    }
    Ok(key.into_owned())
}

/// `2024-01-02T03:04:05.678Z` (AWS) or without a zone (moto), taken as UTC.
fn parse_event_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// What a consumer has done since it started (counts of messages unless said).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SqsStats {
    /// Messages received, redeliveries included.
    pub received: u64,
    /// Events stored as new (a message may hold several).
    pub ingested: u64,
    /// Events seen before (same dedup key): nothing new submitted.
    pub duplicates: u64,
    /// `s3:TestEvent` messages, deleted.
    pub test_events: u64,
    /// Messages stored as dead events (whole or some of their records unusable).
    pub dead: u64,
    /// Messages deleted from the queue.
    pub deleted: u64,
    /// Messages left on the queue because storing them failed (SQS redelivers them).
    pub failed: u64,
    /// Receives that failed (network, credentials, ...).
    pub receive_errors: u64,
}

/// A running SQS consumer; `shutdown` stops it (dropping it stops it too, without waiting).
pub struct SqsConsumer {
    stop: watch::Sender<bool>,
    stats: watch::Receiver<SqsStats>,
    handle: JoinHandle<()>,
}

impl SqsConsumer {
    /// Stops receiving: an in-flight receive is abandoned (its messages reappear after
    /// the visibility timeout), a batch being ingested is finished first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }

    /// What the consumer has done so far.
    pub fn stats(&self) -> SqsStats {
        *self.stats.borrow()
    }

    /// Waits (at most `timeout`) until `done` holds for the stats; returns them.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&SqsStats) -> bool,
    ) -> Result<SqsStats> {
        let mut stats = self.stats.clone();
        let waited = tokio::time::timeout(timeout, stats.wait_for(|s| done(s))).await;
        match waited {
            Ok(Ok(stats)) => Ok(*stats),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Cancelled,
                "waiting for the sqs consumer",
                format!("it stopped at {:?}", self.stats()),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Cancelled,
                "waiting for the sqs consumer",
                format!("still {:?} after {timeout:?}", self.stats()),
            )),
        }
    }
}

impl Orbit {
    /// Starts consuming S3 notifications from `source`'s queue (checked to exist first).
    pub async fn start_sqs_source(&self, source: SqsSource) -> Result<SqsConsumer> {
        source.validate()?;
        let endpoint = self.endpoint(&source.endpoint).await?;
        let EndpointConfig::S3(s3) = &endpoint.config else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "sqs source",
                format!("endpoint: {:?} is not an S3 endpoint", source.endpoint),
            ));
        };
        let client = source.client().await;
        client
            .get_queue_attributes()
            .queue_url(&source.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| sqs_error(&format!("sqs queue {}", source.queue_url), err))?;
        let (stop, stopped) = watch::channel(false);
        let (stats_tx, stats) = watch::channel(SqsStats::default());
        let consumer = Consumer {
            orbit: self.clone(),
            client,
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
            source,
            stats: stats_tx,
        };
        tracing::info!(queue = %consumer.source.queue_url, endpoint = %consumer.source.endpoint,
            "sqs source started");
        let handle = tokio::spawn(consumer.run(stopped));
        Ok(SqsConsumer {
            stop,
            stats,
            handle,
        })
    }
}

impl SqsSource {
    /// An SQS client configured as this source's: its region, endpoint URL, static
    /// credentials or the default chain; rustls (ring); connect and attempt timeouts.
    pub async fn client(&self) -> Client {
        sqs_client(self).await
    }
}

async fn sqs_client(source: &SqsSource) -> Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(
            u64::from(source.wait_time_seconds) + 15,
        ))
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(source.region.clone()))
        .http_client(http)
        .timeout_config(timeouts);
    if let (Some(id), Some(secret)) = (&source.access_key_id, &source.secret_access_key) {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id,
            secret.expose(),
            source
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            None,
            "file-orbit",
        ));
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(url) = &source.endpoint_url {
        config = config.endpoint_url(url);
    }
    Client::from_conf(config.build())
}

/// An SDK error as ours: the SDK's text (no credentials in it) and a kind from its code.
fn sqs_error<E>(context: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ErrorKind::Connection,
        SdkError::ConstructionFailure(_) => ErrorKind::Authentication,
        SdkError::ServiceError(service) => match service.err().code().unwrap_or_default() {
            code if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") => {
                ErrorKind::NotFound
            }
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "InvalidSecurity"
            | "MissingAuthenticationToken"
            | "ExpiredToken" => ErrorKind::Authentication,
            code if code.contains("AccessDenied") => ErrorKind::PermissionDenied,
            _ => ErrorKind::Remote,
        },
        _ => ErrorKind::Remote,
    };
    let message = DisplayErrorContext(&err).to_string();
    Error::new(kind, context, message).with_source(err)
}

struct Consumer {
    orbit: Orbit,
    client: Client,
    source: SqsSource,
    bucket: String,
    prefix: String,
    stats: watch::Sender<SqsStats>,
}

/// Longest pause after failed receives.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The pause after an empty receive without long polling.
const EMPTY_PAUSE: Duration = Duration::from_secs(1);

impl Consumer {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        while !*stopped.borrow() {
            let receive = self
                .client
                .receive_message()
                .queue_url(&self.source.queue_url)
                .max_number_of_messages(self.source.max_messages as i32)
                .wait_time_seconds(self.source.wait_time_seconds as i32)
                .visibility_timeout(self.source.visibility_timeout_seconds as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send();
            let received = tokio::select! {
                received = receive => received,
                _ = stopped.changed() => break,
            };
            match received {
                Ok(output) => {
                    backoff = Duration::from_millis(500);
                    let messages = output.messages();
                    if !messages.is_empty() {
                        self.count(|s| s.received += messages.len() as u64);
                        self.handle_batch(messages).await;
                    } else if self.source.wait_time_seconds == 0 {
                        // Short polling on an empty queue: do not spin.
                        tokio::select! {
                            _ = tokio::time::sleep(EMPTY_PAUSE) => {}
                            _ = stopped.changed() => break,
                        }
                    }
                }
                Err(err) => {
                    let err = sqs_error("receiving from sqs", err);
                    tracing::warn!(queue = %self.source.queue_url, error = %err,
                        retry_in = ?backoff, "sqs receive failed");
                    self.count(|s| s.receive_errors += 1);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped.changed() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::info!(queue = %self.source.queue_url, "sqs source stopped");
    }

    fn count(&self, update: impl FnOnce(&mut SqsStats)) {
        self.stats.send_modify(update);
    }

    /// Handles every message of a batch, extending the visibility of those not yet
    /// settled every half visibility timeout.
    async fn handle_batch(&self, messages: &[Message]) {
        let pending: Mutex<HashMap<String, String>> = Mutex::new(
            messages
                .iter()
                .enumerate()
                .filter_map(|(i, m)| Some((i.to_string(), m.receipt_handle()?.to_string())))
                .collect(),
        );
        let work = async {
            for (index, message) in messages.iter().enumerate() {
                self.handle(message).await;
                pending.lock().unwrap().remove(&index.to_string());
            }
        };
        tokio::pin!(work);
        let every =
            Duration::from_secs(u64::from(self.source.visibility_timeout_seconds)).mul_f64(0.5);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut work => break,
                _ = ticker.tick() => {
                    let entries: Vec<_> = pending.lock().unwrap().clone().into_iter().collect();
                    self.extend_visibility(&entries).await;
                }
            }
        }
    }

    async fn extend_visibility(&self, entries: &[(String, String)]) {
        let entries: Vec<_> = entries
            .iter()
            .filter_map(|(id, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt)
                    .visibility_timeout(self.source.visibility_timeout_seconds as i32)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let count = entries.len();
        match self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) if output.failed().is_empty() => {
                tracing::debug!(queue = %self.source.queue_url, count, "extended visibility")
            }
            Ok(output) => {
                for failed in output.failed() {
                    tracing::warn!(queue = %self.source.queue_url, code = %failed.code(),
                        message = ?failed.message(), "extending a message's visibility failed");
                }
            }
            Err(err) => {
                let err = sqs_error("extending sqs visibility", err);
                tracing::warn!(queue = %self.source.queue_url, error = %err,
                    "extending visibility failed");
            }
        }
    }

    /// Stores what one message says; deletes it once that is durable.
    async fn handle(&self, message: &Message) {
        let id = message.message_id().unwrap_or("?");
        let receives = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .map(String::as_str)
            .unwrap_or("?");
        let body = message.body().unwrap_or_default();
        let stored = match parse_s3_message(body, &self.source.endpoint, &self.bucket, &self.prefix)
        {
            Err(reason) => self.dead(id, body, &reason).await,
            Ok(parsed) if parsed.test_event => {
                self.count(|s| s.test_events += 1);
                Ok(())
            }
            Ok(parsed) => self.ingest(id, body, parsed).await,
        };
        match stored {
            Ok(()) => self.delete(message).await,
            Err(err) => {
                self.count(|s| s.failed += 1);
                tracing::warn!(queue = %self.source.queue_url, message_id = id, receives,
                    error = %err, "storing an sqs message failed; it stays on the queue");
            }
        }
    }

    async fn ingest(&self, id: &str, body: &str, parsed: ParsedMessage) -> Result<()> {
        for mut event in parsed.events {
            event.payload["sqs_message_id"] = json!(id);
            match self.orbit.ingest(&event).await? {
                Ingested::New(record) => {
                    self.count(|s| s.ingested += 1);
                    tracing::debug!(event = record.id, jobs = ?record.job_ids,
                        dedup_key = ?record.dedup_key, "sqs event stored");
                }
                Ingested::Duplicate(_) => self.count(|s| s.duplicates += 1),
            }
        }
        if !parsed.bad_records.is_empty() {
            self.dead(id, body, &parsed.bad_records.join("; ")).await?;
        }
        Ok(())
    }

    async fn dead(&self, id: &str, body: &str, reason: &str) -> Result<()> {
        let key = format!("sqs-dead:{}:{id}", self.source.queue_url);
        let record = self
            .orbit
            .ingest_dead(SOURCE, Some(&key), body, reason)
            .await?;
        self.count(|s| s.dead += 1);
        tracing::warn!(queue = %self.source.queue_url, message_id = id, event = record.id,
            reason, "unusable sqs message stored as a dead event");
        Ok(())
    }

    async fn delete(&self, message: &Message) {
        let Some(receipt) = message.receipt_handle() else {
            return;
        };
        match self
            .client
            .delete_message()
            .queue_url(&self.source.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => self.count(|s| s.deleted += 1),
            Err(err) => {
                // Stored already: a redelivery is deduplicated.
                let err = sqs_error("deleting an sqs message", err);
                tracing::warn!(queue = %self.source.queue_url,
                    message_id = message.message_id().unwrap_or("?"), error = %err,
                    "deleting a stored sqs message failed; its redelivery will be a duplicate");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, bucket: &str, key: &str) -> Value {
        json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-06T07:08:09.123Z", "eventName": name,
            "s3": {"bucket": {"name": bucket},
                "object": {"key": key, "size": 42, "eTag": "abc", "sequencer": "0055AED6DCD90281E5"}}})
    }

    fn body(records: Vec<Value>) -> String {
        json!({ "Records": records }).to_string()
    }

    fn parse(body: &str) -> ParsedMessage {
        parse_s3_message(body, "s3in", "bkt", "in/").unwrap()
    }

    #[test]
    fn a_put_becomes_a_file_event_relative_to_the_prefix() {
        let parsed = parse(&body(vec![record(
            "ObjectCreated:Put",
            "bkt",
            "in/a/b.csv",
        )]));
        assert!(!parsed.test_event && parsed.bad_records.is_empty());
        let [event] = &parsed.events[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(event.source, "sqs");
        assert_eq!(
            event.dedup_key.as_deref(),
            Some("s3:bkt:in/a/b.csv:0055AED6DCD90281E5")
        );
        let file = event.file.as_ref().unwrap();
        assert_eq!(
            (file.endpoint.as_str(), file.path.as_str()),
            ("s3in", "a/b.csv")
        );
        assert_eq!(file.size, Some(42));
        assert_eq!(
            file.modified.unwrap().to_rfc3339(),
            "2024-05-06T07:08:09.123+00:00"
        );
        assert!(event.payload.get("ignored").is_none());
    }

    #[test]
    fn moto_style_records_decode_keys_and_dedup_by_etag() {
        // moto: `/` encoded too, `+` for space, no sequencer, no time zone.
        let raw = r#"{"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-24T13:20:53.531846",
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"},
            "object": {"key": "in%2Fdir+a%2Fx%2By+%C3%BC%2Ffile+name.txt", "size": 5,
            "eTag": "5d41402abc4b2a76b9719d911017c592"}}}]}"#;
        let parsed = parse(raw);
        let file = parsed.events[0].file.as_ref().unwrap();
        assert_eq!(file.path, "dir a/x+y ü/file name.txt");
        assert_eq!(
            parsed.events[0].dedup_key.as_deref(),
            Some("s3:bkt:in/dir a/x+y ü/file name.txt:5d41402abc4b2a76b9719d911017c592")
        );
        assert!(file.modified.is_some());
    }

    #[test]
    fn multipart_put_and_complete_share_a_dedup_key() {
        let mut put = record("ObjectCreated:Put", "bkt", "in/big.bin");
        let mut complete = record("ObjectCreated:CompleteMultipartUpload", "bkt", "in/big.bin");
        for r in [&mut put, &mut complete] {
            r["s3"]["object"]
                .as_object_mut()
                .unwrap()
                .remove("sequencer");
        }
        let a = parse(&body(vec![put]));
        let b = parse(&body(vec![complete]));
        assert_eq!(a.events[0].dedup_key, b.events[0].dedup_key);
    }

    #[test]
    fn sns_wrapped_bodies_and_test_events() {
        let inner = body(vec![record("ObjectCreated:Copy", "bkt", "in/x.txt")]);
        let sns = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": inner, "Timestamp": "2024-05-06T07:08:09.123Z"})
        .to_string();
        let parsed = parse(&sns);
        assert_eq!(parsed.events[0].file.as_ref().unwrap().path, "x.txt");
        assert_eq!(parsed.events[0].payload["via"], "sns");

        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-06T07:08:09.123Z","Bucket":"bkt"}"#;
        assert!(parse(test).test_event);
        let wrapped = json!({"Type": "Notification", "Message": test}).to_string();
        assert!(parse(&wrapped).test_event);
    }

    #[test]
    fn other_records_are_kept_without_a_file() {
        let parsed = parse(&body(vec![
            record("ObjectRemoved:Delete", "bkt", "in/gone.txt"),
            record("ObjectCreated:Put", "other-bucket", "in/a.txt"),
            record("ObjectCreated:Put", "bkt", "elsewhere/a.txt"),
            record("ObjectCreated:Put", "bkt", "in/dir/"),
            record("ObjectCreated:Put", "bkt", "input.txt"),
        ]));
        assert!(parsed.bad_records.is_empty());
        let reasons: Vec<&str> = parsed
            .events
            .iter()
            .map(|e| {
                assert!(e.file.is_none(), "{e:?}");
                e.payload["ignored"].as_str().unwrap()
            })
            .collect();
        assert!(reasons[0].contains("not an ObjectCreated"), "{reasons:?}");
        assert!(reasons[1].contains("other-bucket"), "{reasons:?}");
        assert!(reasons[2].contains("outside"), "{reasons:?}");
        assert!(reasons[3].contains("directory marker"), "{reasons:?}");
        assert!(reasons[4].contains("outside"), "{reasons:?}");
        assert_eq!(
            parsed.events[0].dedup_key.as_deref(),
            Some("s3:bkt:in/gone.txt:ObjectRemoved:Delete:0055AED6DCD90281E5")
        );
    }

    #[test]
    fn without_a_prefix_the_key_is_the_path() {
        let parsed = parse_s3_message(
            &body(vec![record("ObjectCreated:Put", "bkt", "a/b.txt")]),
            "s3in",
            "bkt",
            "",
        )
        .unwrap();
        assert_eq!(parsed.events[0].file.as_ref().unwrap().path, "a/b.txt");
    }

    #[test]
    fn unusable_bodies_and_records_say_why() {
        for (body, why) in [
            ("not json", "not JSON"),
            ("{}", "no Records"),
            (r#"{"Records": {}}"#, "not a list"),
            (r#"{"Records": []}"#, "empty"),
            (
                r#"{"Type": "Notification", "Message": 5}"#,
                "Message string",
            ),
            (
                r#"{"Type": "Notification", "Message": "{oops"}"#,
                "SNS Message is not JSON",
            ),
            (
                r#"{"Type": "SubscriptionConfirmation"}"#,
                "SubscriptionConfirmation",
            ),
        ] {
            let err = parse_s3_message(body, "s3in", "bkt", "in").unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
        let mut no_key = record("ObjectCreated:Put", "bkt", "in/a");
        no_key["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut no_version = record("ObjectCreated:Put", "bkt", "in/a");
        for field in ["sequencer", "eTag"] {
            no_version["s3"]["object"]
                .as_object_mut()
                .unwrap()
                .remove(field);
        }
        let mut bad_size = record("ObjectCreated:Put", "bkt", "in/a");
        bad_size["s3"]["object"]["size"] = json!("big");
        let mut sqs_event = record("ObjectCreated:Put", "bkt", "in/a");
        sqs_event["eventSource"] = json!("aws:sqs");
        let parsed = parse(&body(vec![
            record("ObjectCreated:Put", "bkt", "in/good.txt"),
            no_key,
            no_version,
            bad_size,
            sqs_event,
            json!("text"),
            record("ObjectCreated:Put", "bkt", "in%FF"),
        ]));
        assert_eq!(parsed.events.len(), 1);
        let expected = [
            "record 1: no s3.object.key",
            "record 2: no s3.object.sequencer",
            "record 3: s3.object.size",
            "record 4: eventSource",
            "record 5: not a JSON object",
            "record 6: s3.object.key",
        ];
        assert_eq!(parsed.bad_records.len(), expected.len(), "{parsed:?}");
        for (got, want) in parsed.bad_records.iter().zip(expected) {
            assert!(got.starts_with(want), "{got} vs {want}");
        }
    }

    #[test]
    fn sources_are_validated() {
        let mut source = SqsSource::new("http://127.0.0.1:5000/1/q", "us-east-1", "s3in");
        source.validate().unwrap();
        source.wait_time_seconds = 21;
        assert!(source.validate().unwrap_err().message.contains("wait_time"));
        source.wait_time_seconds = 1;
        source.access_key_id = Some("id".into());
        assert!(source.validate().unwrap_err().message.contains("secret"));
        source.secret_access_key = Some(Secret::new("hunter2"));
        source.validate().unwrap();
        assert!(!format!("{source:?}").contains("hunter2"));
        source.max_messages = 11;
        assert!(
            source
                .validate()
                .unwrap_err()
                .message
                .contains("max_messages")
        );
    }
}
