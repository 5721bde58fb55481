//! What a notification says: one `Item` per event it reports (a job that died, a source
//! that fails, ...) and the `Message` that carries one item, or a digest of many. Built by
//! the dispatcher from the audit log, stored in the outbox as JSON, rendered per channel by
//! `render`. Error messages in items are the store's, already redacted.

use super::NotifyEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` of a webhook body; a receiver checks it before reading further.
pub const SCHEMA: &str = "file-orbit.notification/v1";

/// The most items a digest lists; the rest are only counted (`omitted`).
pub const MAX_DIGEST_ITEMS: usize = 50;

/// One event a notification reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub event: NotifyEvent,
    /// When it happened (the audit record's time).
    pub at: DateTime<Utc>,
    /// The audit record it comes from.
    pub audit_id: i64,
    /// What it is about: `job/12`, `source/uploads`, `endpoint/partner`.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobFacts>,
    /// The event source involved (a rejected event's, a failing source's, a job's origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The endpoint involved (a failed endpoint test's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The worker involved (a lost one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorFacts>,
}

/// The job an item is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFacts {
    pub id: i64,
    /// The job in the API (`<link base>/api/v1/jobs/<id>`).
    pub url: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub source: Side,
    pub destination: Side,
    pub attempt: i64,
    pub max_attempts: i64,
    /// The chain's first job.
    pub chain: i64,
}

/// One side of a transfer: the endpoint's name and the path on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub endpoint: String,
    pub path: String,
}

/// What went wrong (kind as the API names it, message redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFacts {
    pub kind: String,
    pub message: String,
}

/// One message of the outbox: one item, or a digest of the items that came after the
/// notification's rate limit was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stable across retries: the webhook's `X-File-Orbit-Id`, the mail's `Message-ID`.
    pub id: String,
    /// The notification (rule and channel) that sends it.
    pub notification: String,
    /// The event's name, or `digest`.
    pub event: String,
    pub created_at: DateTime<Utc>,
    /// How many events it reports (`items` plus `omitted`).
    pub count: u64,
    /// The count by event name.
    pub counts: BTreeMap<String, u64>,
    pub items: Vec<Item>,
    /// Events counted but not listed (beyond `MAX_DIGEST_ITEMS`).
    pub omitted: u64,
    /// A test message (`POST /api/v1/notifications/{name}/test`).
    #[serde(default)]
    pub test: bool,
}

impl Message {
    /// An empty message of `notification` about `event` (an event's name, `digest` or
    /// `test`), with a new stable id: 24 random hex digits behind `fo-`.
    pub fn new(notification: &str, event: &str, created_at: DateTime<Utc>) -> Message {
        Message {
            id: format!("fo-{}", hex::encode(rand::random::<[u8; 12]>())),
            notification: notification.to_string(),
            event: event.to_string(),
            created_at,
            count: 0,
            counts: BTreeMap::new(),
            items: Vec::new(),
            omitted: 0,
            test: false,
        }
    }

    /// Counts `item` (and lists it while fewer than `MAX_DIGEST_ITEMS` are listed).
    pub fn add(&mut self, item: &Item) {
        self.count += 1;
        *self
            .counts
            .entry(item.event.as_str().to_string())
            .or_default() += 1;
        if self.items.len() < MAX_DIGEST_ITEMS {
            self.items.push(item.clone());
        } else {
            self.omitted += 1;
        }
    }

    /// A one-line summary: what happened, to what, and why.
    pub fn summary(&self) -> String {
        if self.test {
            return format!(
                "Test message from File Orbit notification {:?}",
                self.notification
            );
        }
        if self.event == "digest" || self.items.len() != 1 {
            let counts: Vec<String> = self
                .counts
                .iter()
                .map(|(event, n)| format!("{n} {}", event.replace('_', " ")))
                .collect();
            return format!(
                "{} events since the rate limit of {:?} was reached: {}",
                self.count,
                self.notification,
                counts.join(", ")
            );
        }
        self.items[0].summary()
    }
}

impl Item {
    /// One line: `job 12 dead: in:/a.txt -> out:/b/ (Connection: refused)`.
    pub fn summary(&self) -> String {
        let what = self.event.title();
        let mut line = match &self.job {
            Some(job) => format!(
                "{what}: job {} {}:{} -> {}:{}",
                job.id,
                job.source.endpoint,
                job.source.path,
                job.destination.endpoint,
                job.destination.path
            ),
            None => format!("{what}: {}", self.subject),
        };
        if let Some(error) = &self.error {
            line.push_str(&format!(" ({}: {})", error.kind, error.message));
        }
        line
    }
}
