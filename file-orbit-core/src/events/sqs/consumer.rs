//! The SQS consumer: the client, the long-poll receive loop, visibility extension,
//! ingesting parsed messages and deleting them once settled (parsing is in `message`).

use super::message::{ParsedMessage, parse_s3_message};
use super::{SOURCE, SqsSource};
use crate::endpoint::EndpointConfig;
use crate::engine::Orbit;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Ingested, lock};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a consumer has done since it started (counts of messages unless said).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    /// The last failure (a receive, or storing a message), never a secret.
    #[serde(skip)]
    pub last_error: Option<String>,
}

/// A running SQS consumer; `shutdown` stops it (dropping it stops it too, without waiting).
pub struct SqsConsumer {
    stop: watch::Sender<bool>,
    stats: watch::Receiver<SqsStats>,
    handle: JoinHandle<()>,
}

impl SqsConsumer {
    /// Stops receiving: an in-flight receive is abandoned (its messages reappear after
    /// the visibility timeout), a batch being ingested is finished first. Returns the
    /// final counters.
    pub async fn shutdown(self) -> SqsStats {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        self.stats.borrow().clone()
    }

    /// What the consumer has done so far.
    pub fn stats(&self) -> SqsStats {
        self.stats.borrow().clone()
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
            Ok(Ok(stats)) => Ok(stats.clone()),
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
            return Err(Error::invalid_field(
                "sqs source",
                "endpoint",
                format!("{:?} is not an S3 endpoint", source.endpoint),
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
    if let Some((id, secret, token)) = source.credentials.static_keys() {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id,
            secret.expose(),
            token.map(|t| t.expose().to_string()),
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
                    self.count(|s| {
                        s.receive_errors += 1;
                        s.last_error = Some(err.to_string());
                    });
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
                lock(&pending).remove(&index.to_string());
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
                    let entries: Vec<_> = lock(&pending).clone().into_iter().collect();
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
                tracing::warn!(queue = %self.source.queue_url, message_id = id, receives,
                    error = %err, "storing an sqs message failed; it stays on the queue");
                self.count(|s| {
                    s.failed += 1;
                    s.last_error = Some(err.to_string());
                });
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
