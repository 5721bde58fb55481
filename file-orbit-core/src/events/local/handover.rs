//! Completion and hand-over of a local watch: due deadlines, the completion rules
//! (close-write, rename, stable, marker), and the `Orbit::ingest` tasks with their
//! retries and backoff.

use super::state::{HandOver, State, Trigger, mtime_ns};
use crate::engine::FileEvent;
use crate::events::lock;
use crate::events::{IncomingEvent, Ingested};
use serde_json::json;
use std::cmp::Reverse;
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Hand-overs (`Orbit::ingest` calls) running at once.
const MAX_IN_FLIGHT: usize = 4;

impl State {
    pub(super) fn due(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, generation, rel))) = self.deadlines.pop() else {
                break;
            };
            if self.entries.get(&rel).map(|e| e.generation) == Some(generation) {
                self.evaluate(rel);
            }
        }
    }

    fn evaluate(&mut self, rel: PathBuf) {
        let Some(entry) = self.entries.get(&rel) else {
            return;
        };
        if entry.opens > 0 {
            return; // its close reschedules
        }
        if let Some(trigger) = entry.retry {
            self.entries.remove(&rel);
            self.enqueue(rel, trigger);
            return;
        }
        if entry.renamed {
            self.complete(rel, Trigger::Rename);
            return;
        }
        if entry.closed && !entry.writing {
            self.complete(rel, Trigger::CloseWrite);
            return;
        }
        if entry.observed.is_none() && !entry.writing {
            return;
        }
        // The scan rule: unchanged size and mtime for the scan window.
        let observed = entry.observed;
        let current = match std::fs::symlink_metadata(self.config.watch_root.join(&rel)) {
            Ok(meta) if meta.is_file() => meta.modified().ok().map(|mtime| (meta.len(), mtime)),
            _ => None,
        };
        let Some(current) = current else {
            self.entries.remove(&rel);
            return;
        };
        if observed == Some(current) && self.stable_at(current.1) <= Instant::now() {
            self.complete(rel, Trigger::Stable);
        } else {
            if let Some(entry) = self.entries.get_mut(&rel) {
                entry.observed = Some(current);
            }
            let at = self.stable_at(current.1);
            self.schedule(&rel, at);
        }
    }

    /// `rel` is complete: hand it over (with a marker suffix: when its marker exists).
    pub(super) fn complete(&mut self, rel: PathBuf, trigger: Trigger) {
        self.entries.remove(&rel);
        if let Some(data) = self.config.data_of_marker(&rel) {
            // A marker: its data file goes now, unless it is still being followed (its
            // own completion then finds this marker).
            if !self.entries.contains_key(&data) && !self.config.ignore.matches(&data) {
                self.enqueue(data, Trigger::Marker);
            }
            return;
        }
        if let Some(marker) = self.config.marker_of(&rel) {
            if !self.config.watch_root.join(marker).is_file() {
                return; // the marker's arrival hands it over
            }
            self.enqueue(rel, Trigger::Marker);
            return;
        }
        self.enqueue(rel, trigger);
    }

    fn enqueue(&mut self, rel: PathBuf, trigger: Trigger) {
        if self.in_flight.values().any(|p| p == &rel) {
            self.again.insert(rel, trigger);
        } else if self.queued.insert(rel.clone()) {
            self.ready.push_back((rel, trigger));
        }
    }

    pub(super) fn dispatch(&mut self, tasks: &mut JoinSet<HandOver>) {
        while tasks.len() < MAX_IN_FLIGHT {
            let Some((rel, trigger)) = self.ready.pop_front() else {
                return;
            };
            self.queued.remove(&rel);
            let Ok(meta) = std::fs::symlink_metadata(self.config.watch_root.join(&rel)) else {
                continue; // gone
            };
            let (Some(rel_str), true, Ok(mtime)) = (rel.to_str(), meta.is_file(), meta.modified())
            else {
                continue;
            };
            let size = meta.len();
            let mtime_ns = mtime_ns(mtime);
            if self.handed.get(&rel) == Some(&(size, mtime_ns)) {
                continue; // handed over already, unchanged
            }
            let path = format!("{}{rel_str}", self.config.prefix);
            let endpoint = self.config.endpoint.clone();
            let event = IncomingEvent {
                source: "local-watch".into(),
                dedup_key: Some(format!("local:{endpoint}:{path}:{size}:{mtime_ns}")),
                file: Some(FileEvent {
                    endpoint: endpoint.clone(),
                    path: path.clone(),
                    size: Some(size),
                    modified: chrono::DateTime::from_timestamp(
                        mtime_ns.div_euclid(1_000_000_000),
                        mtime_ns.rem_euclid(1_000_000_000) as u32,
                    ),
                    ..FileEvent::default()
                }),
                template: None,
                payload: json!({
                    "endpoint": endpoint,
                    "path": path,
                    "size": size,
                    "mtime_ns": mtime_ns,
                    "trigger": trigger.as_str(),
                    "detected_at_ms": chrono::Utc::now().timestamp_millis(),
                }),
            };
            let orbit = self.orbit.clone();
            let handle = tasks.spawn(async move {
                let result = orbit
                    .ingest(&event)
                    .await
                    .map(|ingested| matches!(ingested, Ingested::New(_)));
                HandOver {
                    size,
                    mtime_ns,
                    trigger,
                    result,
                }
            });
            self.in_flight.insert(handle.id(), rel);
        }
    }

    pub(super) fn finished(
        &mut self,
        done: std::result::Result<(tokio::task::Id, HandOver), tokio::task::JoinError>,
    ) {
        let (id, outcome) = match done {
            Ok((id, outcome)) => (id, Ok(outcome)),
            Err(err) => (err.id(), Err(err)),
        };
        let Some(rel) = self.in_flight.remove(&id) else {
            return;
        };
        let (result, trigger) = match outcome {
            Ok(hand_over) => {
                let HandOver {
                    size,
                    mtime_ns,
                    trigger,
                    result,
                    ..
                } = hand_over;
                if result.is_ok() {
                    self.handed.insert(rel.clone(), (size, mtime_ns));
                }
                (result.map_err(|err| err.to_string()), trigger)
            }
            Err(err) => (
                Err(format!("hand-over task failed: {err}")),
                Trigger::Stable,
            ),
        };
        match result {
            Ok(new) => {
                self.failures.remove(&rel);
                let mut stats = lock(&self.stats);
                if new {
                    stats.stored += 1;
                } else {
                    stats.duplicates += 1;
                }
            }
            Err(message) => {
                tracing::warn!(path = %self.config.watch_root.join(&rel).display(), error = %message, "local watch: storing the event failed; retrying");
                {
                    let mut stats = lock(&self.stats);
                    stats.failed += 1;
                    stats.last_error = Some(message);
                }
                let failures = self.failures.entry(rel.clone()).or_default();
                *failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(500)
                    .saturating_mul(1 << (*failures).min(7))
                    .min(Duration::from_secs(60));
                if !self.again.contains_key(&rel) {
                    self.entries.entry(rel.clone()).or_default().retry = Some(trigger);
                    self.schedule(&rel, Instant::now() + backoff);
                }
            }
        }
        if let Some(trigger) = self.again.remove(&rel) {
            self.enqueue(rel, trigger);
        }
    }
}
