//! Events: what makes transfers start by themselves. Every event is stored (source,
//! payload without secrets, matched templates, resulting job ids) before its jobs are
//! submitted, deduplicated by a key, and can be replayed. Sources live in submodules.

pub mod local;
pub mod poll;
pub mod runner;
pub mod schedule;
pub mod source;
pub mod sqs;

pub use crate::engine::{EventRecord, EventState};

use crate::engine::{FileEvent, JobRequest, Orbit, TransferTemplate};
use crate::error::{Error, ErrorKind, Result};
use crate::rclone::methods::ListOptions;
use crate::transfer::stat_file;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Something that happened, as a source reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingEvent {
    /// Which kind of source saw it: `local-watch`, `sqs`, `schedule`, `poll`, `manual`.
    pub source: String,
    /// Events with the same key are one event (redelivery, rescans, other nodes).
    pub dedup_key: Option<String>,
    /// The file the event is about; matched against every template.
    pub file: Option<FileEvent>,
    /// Run this template's transfer as it is (schedules) instead of matching.
    pub template: Option<String>,
    /// What the source said, kept for audit and replay (never secrets).
    pub payload: Value,
}

/// The outcome of `Orbit::ingest`.
#[derive(Debug, Clone)]
pub enum Ingested {
    New(EventRecord),
    /// Seen before (same dedup key) and already processed: nothing new was submitted.
    Duplicate(EventRecord),
}

impl Ingested {
    pub fn record(&self) -> &EventRecord {
        match self {
            Ingested::New(record) | Ingested::Duplicate(record) => record,
        }
    }
}

impl Orbit {
    /// Stores `event`, submits a job for each template it matches (or the template it
    /// names), and records them on the event. Safe to call again with the same event.
    pub async fn ingest(&self, event: &IncomingEvent) -> Result<Ingested> {
        let payload =
            json!({"payload": event.payload, "file": event.file, "template": event.template});
        let (id, state) = self
            .store()
            .insert_event(
                &event.source,
                self.source_name(),
                event.dedup_key.as_deref(),
                &payload,
                "received",
                None,
            )
            .await?;
        if state != EventState::Received {
            return Ok(Ingested::Duplicate(self.event(id).await?));
        }
        let requests = self.requests_for(event).await?;
        self.submit_for_event(id, &requests, &event_key(id)).await?;
        Ok(Ingested::New(self.event(id).await?))
    }

    /// Stores an event that cannot be used (e.g. a malformed message), with the reason.
    pub async fn ingest_dead(
        &self,
        source: &str,
        dedup_key: Option<&str>,
        body: &str,
        reason: &str,
    ) -> Result<EventRecord> {
        let payload = json!({"body": body});
        let (id, _) = self
            .store()
            .insert_event(
                source,
                self.source_name(),
                dedup_key,
                &payload,
                "dead",
                Some(reason),
            )
            .await?;
        self.event(id).await
    }

    /// Runs a stored event again: its jobs are created anew from today's templates.
    pub async fn replay_event(&self, id: i64) -> Result<Vec<i64>> {
        let record = self.event(id).await?;
        let event = IncomingEvent {
            source: record.source.clone(),
            dedup_key: None,
            file: serde_json::from_value(record.payload["file"].clone()).unwrap_or(None),
            template: serde_json::from_value(record.payload["template"].clone()).unwrap_or(None),
            payload: record.payload["payload"].clone(),
        };
        if event.file.is_none() && event.template.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("replaying event {id}"),
                "it names no file and no template (a dead event's body cannot be matched)",
            ));
        }
        let requests = self.requests_for(&event).await?;
        let replay = format!(
            "{}:replay:{}",
            event_key(id),
            chrono::Utc::now().timestamp_micros()
        );
        // Its jobs come from the event's source, as the first ones did.
        let orbit = match &record.source_name {
            Some(source) => self.for_source(source),
            None => self.clone(),
        };
        orbit.submit_for_event(id, &requests, &replay).await
    }

    async fn requests_for(&self, event: &IncomingEvent) -> Result<Vec<JobRequest>> {
        let templates = self.templates().await?;
        if let Some(name) = &event.template {
            let template = templates.iter().find(|t| &t.name == name).ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "ingesting an event",
                    format!("no template named {name:?}"),
                )
            })?;
            return Ok(vec![direct_request(template)]);
        }
        let Some(file) = &event.file else {
            return Ok(Vec::new());
        };
        let needs_details = templates
            .iter()
            .any(|t| t.enabled && t.matcher.source == file.endpoint && t.matcher.needs_details());
        let file = match needs_details && file.content_type.is_none() && file.metadata.is_empty() {
            true => &self.with_details(file).await?,
            false => file,
        };
        let now = chrono::Utc::now();
        let mut requests = Vec::new();
        for template in &templates {
            if template.matches(file, now)? {
                requests.push(template.request_for(file));
            }
        }
        Ok(requests)
    }

    /// `file` with its content type and metadata read from its endpoint (one
    /// `operations/stat`), for templates that match on them. A file no longer there has
    /// none (templates asking for them do not match it); any other failure is the
    /// event's error, so a source keeps the event and offers it again.
    async fn with_details(&self, file: &FileEvent) -> Result<FileEvent> {
        let endpoint = self.endpoint(&file.endpoint).await?;
        let opt = ListOptions {
            no_mod_time: true,
            metadata: true,
            ..ListOptions::default()
        };
        let item = stat_file(self.rclone(), &endpoint, &file.path, opt).await?;
        let mut file = file.clone();
        if let Some(item) = item {
            file.metadata = (item.metadata.unwrap_or_default().into_iter())
                .map(|(key, value)| (key.to_ascii_lowercase(), value))
                .collect();
            file.content_type = item
                .mime_type
                .or_else(|| file.metadata.get("content-type").cloned())
                .map(|media| {
                    media
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .filter(|media| !media.is_empty());
        }
        Ok(file)
    }

    /// Submits `requests` with idempotency keys derived from `key`, then records them.
    async fn submit_for_event(
        &self,
        id: i64,
        requests: &[JobRequest],
        key: &str,
    ) -> Result<Vec<i64>> {
        let mut job_ids = Vec::new();
        let mut templates = Vec::new();
        for request in requests {
            let mut request = request.clone();
            let template = request.template.clone().unwrap_or_default();
            request.idempotency_key = Some(format!("{key}:{template}"));
            job_ids.push(self.submit(&request).await?);
            templates.push(template);
        }
        self.store()
            .event_processed(id, &templates, &job_ids)
            .await?;
        Ok(job_ids)
    }

    pub async fn event(&self, id: i64) -> Result<EventRecord> {
        self.store().event(id).await
    }

    /// The newest `limit` events, newest first.
    pub async fn events(&self, limit: i64) -> Result<Vec<EventRecord>> {
        self.store().events(limit).await
    }
}

/// The start of the idempotency key of every job made from event `id` (ingested or
/// replayed): `event:<id>`, then `:<template>` (and `:replay:<time>` before it on replay).
fn event_key(id: i64) -> String {
    format!("event:{id}")
}

/// A template's transfer as it is (for schedules), not instantiated for a file.
fn direct_request(template: &TransferTemplate) -> JobRequest {
    JobRequest {
        spec: template.spec.clone(),
        priority: template.priority,
        idempotency_key: None,
        retry: template.retry,
        next_hops: template.next_hops.clone(),
        template: Some(template.name.clone()),
    }
}

/// Locks `mutex` even if a thread panicked while holding it (the data is still used:
/// the sources keep counters and bookkeeping there, never half-written invariants).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A `Duration` as whole milliseconds in JSON and TOML (the specs of stored sources).
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Duration, D::Error> {
        u64::deserialize(from).map(Duration::from_millis)
    }
}
