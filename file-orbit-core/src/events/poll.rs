//! Polling of remote endpoints (SFTP, SMB, S3, local) that cannot push notifications: each
//! poll lists the tree through rclone and compares it with the last seen state. A file is
//! handed over once its size and time were the same on two polls in a row (so uploads in
//! progress wait); the event's dedup key (path, size, time) keeps restarts and other nodes
//! from submitting it twice.

use super::local::{MAX_IGNORE, MAX_INTERVAL, MIN_INTERVAL};
use super::millis;
use super::{IncomingEvent, Ingested};
use crate::engine::{FileEvent, Orbit};
use crate::error::{Error, Result};
use crate::rclone::methods::{List, ListOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to poll and how often. As JSON or TOML (a stored source's spec) the interval is
/// whole milliseconds: `interval_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePoll {
    /// The stored endpoint to list.
    pub endpoint: String,
    /// Directory inside the endpoint ("" for its root; relative, no `..`).
    #[serde(default)]
    pub path: String,
    /// Between two polls: 100 ms to a day; default 60 s.
    #[serde(rename = "interval_ms", with = "millis", default = "default_interval")]
    pub interval: Duration,
    /// Globs of names never handed over (at most 100); default: rclone's in-progress
    /// uploads (`*.partial`) and dotfiles.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_ignore() -> Vec<String> {
    vec!["*.partial".into(), ".*".into()]
}

impl RemotePoll {
    pub fn new(endpoint: impl Into<String>, path: impl Into<String>, interval: Duration) -> Self {
        RemotePoll {
            endpoint: endpoint.into(),
            path: path.into(),
            interval,
            ignore: default_ignore(),
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<()> {
        self.ignore_set().map(|_| ())
    }

    /// The ignore globs as one set, after checking every field.
    fn ignore_set(&self) -> Result<globset::GlobSet> {
        let invalid = |field: &str, why: String| Error::invalid_field("remote poll", field, why);
        if self.endpoint.trim().is_empty() {
            return Err(invalid("endpoint", "must name a stored endpoint".into()));
        }
        if self.path.starts_with('/') || self.path.split('/').any(|part| part == "..") {
            return Err(invalid(
                "path",
                format!(
                    "{:?} must be relative to the endpoint root, without '..'",
                    self.path
                ),
            ));
        }
        if self.interval < MIN_INTERVAL || self.interval > MAX_INTERVAL {
            return Err(invalid(
                "interval_ms",
                "must be within 100..=86400000 (100 ms to a day)".into(),
            ));
        }
        if self.ignore.len() > MAX_IGNORE {
            return Err(invalid("ignore", format!("at most {MAX_IGNORE} patterns")));
        }
        let mut set = globset::GlobSetBuilder::new();
        for (index, glob) in self.ignore.iter().enumerate() {
            let glob = globset::Glob::new(glob)
                .map_err(|err| invalid(&format!("ignore[{index}]"), err.to_string()))?;
            set.add(glob);
        }
        set.build()
            .map_err(|err| invalid("ignore", err.to_string()))
    }
}

/// Counters of a running poller.
#[derive(Debug, Clone, Default)]
pub struct PollStats {
    /// Listings made.
    pub polls: u64,
    /// Stable files handed over that stored a new event.
    pub ingested: u64,
    /// Stable files the store already had (restarts, other nodes).
    pub duplicates: u64,
    /// Polls that failed (retried at the next interval).
    pub errors: u64,
    /// The last failure, cleared by a poll that works.
    pub last_error: Option<String>,
}

/// The state one poller carries between polls: path → (size, time) last seen, and
/// whether it was already handed over.
#[derive(Debug, Default)]
pub struct PollState {
    seen: HashMap<String, (i64, String, bool)>,
}

/// A running poller; `shutdown` (or dropping it) stops it.
pub struct Poller {
    stop: watch::Sender<bool>,
    stats: watch::Receiver<PollStats>,
    handle: JoinHandle<()>,
}

impl Poller {
    /// Stops polling (a poll under way is finished first); returns the final counters.
    pub async fn shutdown(self) -> PollStats {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        self.stats.borrow().clone()
    }

    /// What the poller has done so far.
    pub fn stats(&self) -> PollStats {
        self.stats.borrow().clone()
    }
}

impl Orbit {
    /// Lists `poll`'s tree once and ingests every file that is new or changed and was
    /// stable since the previous poll.
    pub async fn poll_once(
        &self,
        poll: &RemotePoll,
        state: &mut PollState,
    ) -> Result<Vec<Ingested>> {
        let ignore = poll.ignore_set()?;
        let endpoint = self.endpoint(&poll.endpoint).await?;
        let listing = self
            .rclone()
            .call_async(&List {
                fs: endpoint.to_rclone(self.rclone(), &poll.path)?,
                remote: String::new(),
                opt: ListOptions {
                    recurse: true,
                    files_only: true,
                    ..ListOptions::default()
                },
            })
            .await?;
        let prefix = poll.path.trim_matches('/');
        let mut ingested = Vec::new();
        let mut present = HashMap::new();
        for item in listing.list {
            if ignore.is_match(&item.name) {
                continue;
            }
            let modified = item.mod_time.clone().unwrap_or_default();
            let path = if prefix.is_empty() {
                item.path.clone()
            } else {
                format!("{prefix}/{}", item.path)
            };
            let handed = match state.seen.get(&path) {
                Some((size, time, handed)) if *size == item.size && *time == modified => {
                    if !handed {
                        let event = IncomingEvent {
                            source: "poll".into(),
                            dedup_key: Some(format!(
                                "poll:{}:{path}:{}:{modified}",
                                poll.endpoint, item.size
                            )),
                            file: Some(FileEvent {
                                endpoint: poll.endpoint.clone(),
                                path: path.clone(),
                                size: u64::try_from(item.size).ok(),
                                modified: chrono::DateTime::parse_from_rfc3339(&modified)
                                    .ok()
                                    .map(|t| t.with_timezone(&chrono::Utc)),
                                ..FileEvent::default()
                            }),
                            template: None,
                            payload: json!({"endpoint": poll.endpoint, "path": path, "size": item.size,
                                            "modified": modified}),
                        };
                        ingested.push(self.ingest(&event).await?);
                    }
                    true
                }
                _ => false, // new or still changing: wait for the next poll
            };
            present.insert(path, (item.size, modified, handed));
        }
        state.seen = present;
        Ok(ingested)
    }

    /// Polls every `poll.interval` until shut down.
    pub fn start_remote_poll(&self, poll: RemotePoll) -> Poller {
        let (stop, mut stopped) = watch::channel(false);
        let (report, stats) = watch::channel(PollStats::default());
        let orbit = self.clone();
        let handle = tokio::spawn(async move {
            let mut state = PollState::default();
            let mut ticker = tokio::time::interval(poll.interval);
            while !*stopped.borrow() {
                tokio::select! {
                    _ = ticker.tick() => {
                        let polled = orbit.poll_once(&poll, &mut state).await;
                        report.send_modify(|stats| {
                            stats.polls += 1;
                            match polled {
                                Ok(ingested) => {
                                    stats.last_error = None;
                                    for outcome in ingested {
                                        match outcome {
                                            Ingested::New(_) => stats.ingested += 1,
                                            Ingested::Duplicate(_) => stats.duplicates += 1,
                                        }
                                    }
                                }
                                Err(err) => {
                                    tracing::warn!(endpoint = %poll.endpoint, %err, "polling failed");
                                    stats.errors += 1;
                                    stats.last_error = Some(err.to_string());
                                }
                            }
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Poller {
            stop,
            stats,
            handle,
        }
    }
}
