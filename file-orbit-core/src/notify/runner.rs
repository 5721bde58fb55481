//! The notifier: the loop every node may run that turns the audit log into messages
//! (`dispatch`) and sends the messages that are due, each leased so that one node sends
//! it; a failed send is tried again with a growing wait, and dead after the rule's tries.
//! Started by the server and worker services (and by programs, with `start_notifier`).

use super::Message;
use super::deliver::Delivery;
use super::dispatch::dispatch_step;
use super::manage::after;
use crate::engine::{Orbit, OutboxMessage};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How a notifier runs.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Where job links in messages point: `<link_base>/api/v1/jobs/<id>`.
    pub link_base: String,
    /// How often the audit log and the outbox are read. 50 ms to 10 s; default 500 ms.
    pub check_every: Duration,
    /// The wait after a message's first failed try; it doubles with each try up to
    /// `max_retry`. 100 ms to an hour; default 10 s.
    pub first_retry: Duration,
    /// The longest wait between tries. At least `first_retry`, at most a day; default 15 min.
    pub max_retry: Duration,
    /// How long one send may take. 1 s to 2 min; default 20 s.
    pub timeout: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            link_base: "http://127.0.0.1:8080".into(),
            check_every: Duration::from_millis(500),
            first_retry: Duration::from_secs(10),
            max_retry: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(20),
        }
    }
}

impl NotifierOptions {
    /// Checks the bounds; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, why: &str| Err(Error::invalid_field("notifier", field, why));
        let within = |value: Duration, low: Duration, high: Duration| (low..=high).contains(&value);
        if !within(
            self.check_every,
            Duration::from_millis(50),
            Duration::from_secs(10),
        ) {
            return invalid("check_every", "must be within 50 ms and 10 s");
        }
        if !within(
            self.first_retry,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ) {
            return invalid("first_retry", "must be within 100 ms and an hour");
        }
        if !within(
            self.max_retry,
            self.first_retry,
            Duration::from_secs(86_400),
        ) {
            return invalid("max_retry", "must be within first_retry and a day");
        }
        if !within(
            self.timeout,
            Duration::from_secs(1),
            Duration::from_secs(120),
        ) {
            return invalid("timeout", "must be within 1 s and 2 min");
        }
        match url::Url::parse(&self.link_base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
            _ => invalid("link_base", "must be an http or https URL"),
        }
    }

    /// The wait after failed try number `attempt` (1 for the first).
    fn retry_after(&self, attempt: i64) -> Duration {
        let doublings = attempt.clamp(1, 31) as u32 - 1;
        self.first_retry
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_retry)
    }
}

/// Audit records read per dispatch step.
const DISPATCH_BATCH: i64 = 500;
/// Messages leased per round.
const SEND_BATCH: i64 = 16;

/// A running notifier; `shutdown` stops it (messages it was sending are sent again by
/// whichever node leases them next).
pub struct Notifier {
    owner: String,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Notifier {
    /// The name its leases carry: `node/pid/notifier-n`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

impl Orbit {
    /// Starts this node's notifier (see the module docs).
    pub fn start_notifier(&self, options: NotifierOptions) -> Result<Notifier> {
        options.validate()?;
        let delivery = Delivery::new(self.notify_allow_list()?, options.timeout)?;
        static NOTIFIERS: AtomicU64 = AtomicU64::new(0);
        let owner = format!(
            "{}/{}/notifier-{}",
            self.options().node.name,
            std::process::id(),
            NOTIFIERS.fetch_add(1, Ordering::Relaxed)
        );
        let (stop, mut stopped) = watch::channel(false);
        let orbit = self.clone();
        let task_owner = owner.clone();
        let handle = tokio::spawn(async move {
            let delivery = std::sync::Arc::new(delivery);
            loop {
                if let Err(err) = run_once(&orbit, &delivery, &options, &task_owner).await {
                    tracing::warn!(error = %err, "notifier round failed; trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(options.check_every) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Notifier {
            owner,
            stop,
            handle,
        })
    }
}

/// One round: dispatch every waiting audit record, then send every due message.
async fn run_once(
    orbit: &Orbit,
    delivery: &std::sync::Arc<Delivery>,
    options: &NotifierOptions,
    owner: &str,
) -> Result<()> {
    while dispatch_step(orbit, &options.link_base, DISPATCH_BATCH).await? as i64 == DISPATCH_BATCH {
    }
    // A lease outlives the longest send, so no other node takes a message being sent.
    let lease = options.timeout * 2 + Duration::from_secs(5);
    loop {
        let leased = orbit
            .store()
            .lease_messages(owner, after(lease), SEND_BATCH)
            .await?;
        if leased.is_empty() {
            return Ok(());
        }
        let mut sends = JoinSet::new();
        for message in leased {
            let orbit = orbit.clone();
            let delivery = delivery.clone();
            let options = options.clone();
            let owner = owner.to_string();
            sends
                .spawn(async move { send_one(&orbit, &delivery, &options, &owner, message).await });
        }
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "recording a notification's outcome failed")
                }
                Err(err) => tracing::warn!(error = %err, "a notification send panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// Sends one leased message and records the outcome.
async fn send_one(
    orbit: &Orbit,
    delivery: &Delivery,
    options: &NotifierOptions,
    owner: &str,
    row: OutboxMessage,
) -> Result<()> {
    let store = orbit.store();
    let sent = match serde_json::from_value::<Message>(row.body.clone()).ok() {
        None => Err(Error::new(
            crate::error::ErrorKind::Store,
            "sending a notification",
            "its stored message does not read",
        )),
        Some(message) => match orbit.notification_channel(&row.notification).await {
            Ok(channel) => delivery.send(&channel, &message).await,
            Err(err) if err.kind == crate::error::ErrorKind::NotFound => Err(Error::new(
                crate::error::ErrorKind::NotFound,
                "sending a notification",
                format!("notification {:?} was deleted", row.notification),
            )),
            Err(err) => Err(err),
        },
    };
    match sent {
        Ok(answer) => {
            tracing::info!(notification = %row.notification, message = %row.message_id,
                attempt = row.attempts, %answer, "notification sent");
            store.message_sent(row.id, owner, &answer).await?;
        }
        Err(err) => {
            let retry = err.retryable && row.attempts < row.max_attempts;
            let retry_at = retry.then(|| after(options.retry_after(row.attempts)));
            tracing::warn!(notification = %row.notification, message = %row.message_id,
                attempt = row.attempts, error = %err, retry, "notification not sent");
            store
                .message_failed(row.id, owner, &err.to_string(), retry_at)
                .await?;
        }
    }
    Ok(())
}
