//! Polling of remote endpoints (SFTP, SMB, S3, local) that cannot push notifications: each
//! poll lists the tree through rclone and compares it with the last seen state. A file is
//! handed over once its size and time were the same on two polls in a row (so uploads in
//! progress wait); the event's dedup key (path, size, time) keeps restarts and other nodes
//! from submitting it twice.

use super::{IncomingEvent, Ingested};
use crate::engine::{FileEvent, Orbit};
use crate::error::Result;
use crate::rclone::methods::{List, ListOptions};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to poll and how often.
#[derive(Debug, Clone)]
pub struct RemotePoll {
    /// The stored endpoint to list.
    pub endpoint: String,
    /// Directory inside the endpoint ("" for its root).
    pub path: String,
    pub interval: Duration,
    /// Globs of names never handed over; default: rclone's in-progress uploads
    /// (`*.partial`) and dotfiles.
    pub ignore: Vec<String>,
}

impl RemotePoll {
    pub fn new(endpoint: impl Into<String>, path: impl Into<String>, interval: Duration) -> Self {
        RemotePoll {
            endpoint: endpoint.into(),
            path: path.into(),
            interval,
            ignore: vec!["*.partial".into(), ".*".into()],
        }
    }
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
    handle: JoinHandle<()>,
}

impl Poller {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
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
        let ignore = globset::GlobSet::builder();
        let ignore = poll
            .ignore
            .iter()
            .filter_map(|glob| globset::Glob::new(glob).ok())
            .fold(ignore, |mut set, glob| {
                set.add(glob);
                set
            })
            .build()
            .unwrap_or_else(|_| globset::GlobSet::empty());
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
        let orbit = self.clone();
        let handle = tokio::spawn(async move {
            let mut state = PollState::default();
            let mut ticker = tokio::time::interval(poll.interval);
            while !*stopped.borrow() {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(err) = orbit.poll_once(&poll, &mut state).await {
                            tracing::warn!(endpoint = %poll.endpoint, %err, "polling failed");
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Poller { stop, handle }
    }
}
