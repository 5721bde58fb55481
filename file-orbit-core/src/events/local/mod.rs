//! Local folder watch: files that arrive in a local endpoint's directory become events
//! (`source = "local-watch"`), once they are complete.
//!
//! On Linux the watch is inotify (through `notify`). A file is handed over to
//! [`Orbit::ingest`] only when it is complete:
//!
//! - **closed after writing**: an `IN_CLOSE_WRITE` with no later modification for
//!   [`LocalWatch::stable_for`] (0 = at once), and no other process still holding it open
//!   (opens are counted from `IN_OPEN`/`IN_CLOSE_*`). A writer that writes slowly in chunks
//!   and pauses is never handed over before it closes the file, whatever `stable_for` is.
//! - **renamed into place**: a file renamed into the tree (from a temp name, an ignored name
//!   or another directory) is complete at once.
//! - **stable**: a file found by a scan (the catch-up scan at start, periodic rescans, a
//!   rescan after an inotify queue overflow, a new or renamed-in directory) or whose open
//!   was never seen is complete when its size and mtime stay unchanged for
//!   `max(stable_for, 1 s)` — a scan has no close event to vouch for the file, so the
//!   window is at least a second even when `stable_for` is smaller.
//! - with [`LocalWatch::marker_suffix`] (e.g. `.done`) a data file `name` is handed over
//!   only once both it is complete and `name.done` exists; the marker itself never is.
//!
//! Each hand-over stores an event with the dedup key
//! `local:{endpoint}:{path}:{size}:{mtime_ns}`, so restarts and rescans are idempotent: a
//! file already handed over (same path, size and mtime) is not submitted again. A file
//! rewritten with new content, or only touched (new mtime), is a new event.
//!
//! Ignored ([`DEFAULT_IGNORE`]): `*.partial` (rclone's in-progress uploads), `*.tmp`, and
//! every name starting with `.` (dotfiles and dot-directories: editors' and rsync's temp
//! files). A pattern without `/` is matched against every component of the path below the
//! watched directory (so an ignored directory hides all it holds), one with `/` against
//! the whole path below it. Symlinks, sockets and other non-regular files are skipped, as
//! are names that are not UTF-8 (with a warning).
//!
//! On network filesystems (NFS, SMB mounts) inotify only sees this host's writers: files
//! written by other hosts are found by the periodic rescans ([`LocalWatch::rescan_interval`]).
//! The watched directory may be deleted and re-created: the watch is re-established and
//! the new directory scanned. inotify limits (`fs.inotify.max_user_watches`,
//! `fs.inotify.max_user_instances`) are reported with the sysctl that raises them.
//!
//! Layout: this file is the public watch API (spec, stats, handle, `start_local_watch`);
//! `ignore` holds the ignore globs, `inotify` the notify watcher and inotify limits,
//! `state` the watch task's state machine, `scan` the directory walks, `handover` the
//! completion decision and the calls to [`Orbit::ingest`].

mod handover;
mod ignore;
mod inotify;
mod scan;
mod state;

use self::ignore::Ignore;
use self::inotify::{attach, watch_error};
use self::state::ScanPlan;
use self::state::{Config, State};
use crate::endpoint::EndpointConfig;
use crate::engine::Orbit;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{lock, millis};
use notify::{RecommendedWatcher, Watcher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The most ignore patterns a watch or a poll takes.
pub(crate) const MAX_IGNORE: usize = 100;
/// The shortest rescan or poll interval.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval or stability window: a day.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// What a local watch ignores unless told otherwise: rclone's `*.partial` uploads,
/// `*.tmp`, and names starting with `.` (dotfiles, dot-directories).
pub const DEFAULT_IGNORE: &[&str] = &["*.partial", "*.tmp", ".*"];

/// Files found by scans must be stable at least this long (no close event vouches for
/// them).
const SCAN_MIN_STABLE: Duration = Duration::from_secs(1);
/// Raw filesystem events buffered between notify's thread and the watch task; when full,
/// events are dropped and the tree is rescanned (as after a kernel queue overflow).
const EVENT_CHANNEL: usize = 16 * 1024;

/// What to watch and how: see the module docs for the completion rules. As JSON or TOML
/// (a stored source's spec) the durations are whole milliseconds: `stable_for_ms`,
/// `rescan_interval_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalWatch {
    /// A local endpoint stored in the Orbit; its root (or `sub_path` below it) is watched.
    pub endpoint: String,
    /// A directory below the endpoint's root to watch instead of the whole root
    /// (relative, `/`-separated, no `..`). Event paths stay relative to the endpoint root.
    #[serde(default)]
    pub sub_path: Option<String>,
    /// How long a closed file must stay unmodified before it is handed over (0: at once on
    /// close-write). Files found by scans wait `max(stable_for, 1 s)` of unchanged size and
    /// mtime. Default 1 s; at most a day.
    #[serde(
        rename = "stable_for_ms",
        with = "millis",
        default = "default_stable_for"
    )]
    pub stable_for: Duration,
    /// With e.g. `.done`: `name` is handed over when `name.done` exists (and `name` is
    /// complete); markers are never handed over.
    #[serde(default)]
    pub marker_suffix: Option<String>,
    /// Glob patterns of names to ignore (at most 100); default [`DEFAULT_IGNORE`].
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// How often the whole tree is rescanned for anything missed. Default 60 s; 100 ms to
    /// a day.
    #[serde(
        rename = "rescan_interval_ms",
        with = "millis",
        default = "default_rescan_interval"
    )]
    pub rescan_interval: Duration,
}

fn default_stable_for() -> Duration {
    Duration::from_secs(1)
}

fn default_ignore() -> Vec<String> {
    DEFAULT_IGNORE.iter().map(|p| p.to_string()).collect()
}

fn default_rescan_interval() -> Duration {
    Duration::from_secs(60)
}

impl LocalWatch {
    /// A watch of `endpoint`'s root with the defaults.
    pub fn new(endpoint: impl Into<String>) -> Self {
        LocalWatch {
            endpoint: endpoint.into(),
            sub_path: None,
            stable_for: default_stable_for(),
            marker_suffix: None,
            ignore: default_ignore(),
            rescan_interval: default_rescan_interval(),
        }
    }

    /// Checks every field without touching the disk; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, why: String| Error::invalid_field("local watch", field, why);
        if self.endpoint.trim().is_empty() {
            return Err(invalid(
                "endpoint",
                "must name a stored local endpoint".into(),
            ));
        }
        sub_path_prefix(self.sub_path.as_deref()).map_err(|why| invalid("sub_path", why))?;
        if self.stable_for > MAX_INTERVAL {
            return Err(invalid(
                "stable_for_ms",
                "must be at most a day (86400000)".into(),
            ));
        }
        if self.ignore.len() > MAX_IGNORE {
            return Err(invalid("ignore", format!("at most {MAX_IGNORE} patterns")));
        }
        Ignore::new(&self.ignore).map_err(|(field, why)| invalid(&field, why))?;
        if let Some(suffix) = &self.marker_suffix {
            if suffix.is_empty() || suffix.contains('/') {
                return Err(invalid(
                    "marker_suffix",
                    format!("{suffix:?} must be non-empty and without '/'"),
                ));
            }
        }
        if self.rescan_interval < MIN_INTERVAL || self.rescan_interval > MAX_INTERVAL {
            return Err(invalid(
                "rescan_interval_ms",
                "must be within 100..=86400000 (100 ms to a day)".into(),
            ));
        }
        Ok(())
    }
}

/// Counters of a running watch.
#[derive(Debug, Clone, Default)]
pub struct LocalWatchStats {
    /// Hand-overs that stored a new event.
    pub stored: u64,
    /// Hand-overs the store already had (restarts, rescans, other nodes).
    pub duplicates: u64,
    /// Hand-overs that failed (retried with backoff).
    pub failed: u64,
    /// Scans of the tree (full or of a directory).
    pub scans: u64,
    /// inotify queue overflows (kernel or ours), each followed by a rescan.
    pub overflows: u64,
    /// Times the watch was re-established after the directory vanished.
    pub reattached: u64,
    /// Files skipped because their name is not UTF-8.
    pub skipped_names: u64,
    /// Whether the directory is being watched now (false while it is missing).
    pub watching: bool,
    pub last_error: Option<String>,
}

/// A running local watch; `shutdown` stops it (dropping it stops it too).
pub struct LocalWatcher {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    stats: Arc<Mutex<LocalWatchStats>>,
    root: PathBuf,
}

impl LocalWatcher {
    /// The watched directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stats(&self) -> LocalWatchStats {
        lock(&self.stats).clone()
    }

    /// Stops watching and waits for hand-overs under way to be stored; returns the final
    /// counters. Files not yet handed over are found by the catch-up scan of the next start.
    pub async fn shutdown(self) -> LocalWatchStats {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        lock(&self.stats).clone()
    }
}

impl Orbit {
    /// Watches a local endpoint's directory and ingests each file once it is complete.
    /// Returns once the watch is in place (files written after that are seen); the
    /// catch-up scan for files that arrived earlier runs in the background.
    pub async fn start_local_watch(&self, spec: LocalWatch) -> Result<LocalWatcher> {
        let context = format!("local watch of endpoint {:?}", spec.endpoint);
        let invalid = |message: String| Error::new(ErrorKind::InvalidInput, &context, message);
        let endpoint = self.endpoint(&spec.endpoint).await?;
        let EndpointConfig::Local(local) = &endpoint.config else {
            return Err(invalid(
                "only local endpoints can be watched (use events from the remote side)".into(),
            ));
        };
        spec.validate()?;
        let prefix = sub_path_prefix(spec.sub_path.as_deref()).unwrap_or_default();
        let watch_root = local.root.join(prefix.trim_end_matches('/'));
        let ignore = Ignore::new(&spec.ignore)
            .map_err(|(field, why)| Error::invalid_field("local watch", field, why))?;
        match std::fs::metadata(&watch_root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "{} is not a directory",
                    watch_root.display()
                )));
            }
            Err(err) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    &context,
                    format!("{}: {err}", watch_root.display()),
                ));
            }
        }

        let (events_tx, events_rx) = mpsc::channel(EVENT_CHANNEL);
        let overflow = Arc::new(AtomicBool::new(false));
        let dropped = overflow.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Never block notify's thread (it also serves watch/unwatch): when the task
            // falls behind, drop and rescan, as the kernel does on queue overflow.
            if let Err(mpsc::error::TrySendError::Full(_)) = events_tx.try_send(event) {
                dropped.store(true, Ordering::Relaxed);
            }
        };
        let watcher = RecommendedWatcher::new(
            handler,
            notify::Config::default().with_follow_symlinks(false),
        )
        .map_err(|err| watch_error(&context, &watch_root, err))?;
        let watcher = Arc::new(Mutex::new(Some(watcher)));
        let root_id = {
            let watcher = watcher.clone();
            let root = watch_root.clone();
            tokio::task::spawn_blocking(move || attach(&watcher, &root))
                .await
                .map_err(|err| Error::new(ErrorKind::Remote, &context, err.to_string()))?
                .map_err(|err| watch_error(&context, &watch_root, err))?
        };

        let stats = Arc::new(Mutex::new(LocalWatchStats {
            watching: true,
            ..Default::default()
        }));
        let config = Arc::new(Config {
            context,
            endpoint: spec.endpoint.clone(),
            watch_root: watch_root.clone(),
            prefix,
            stable_for: spec.stable_for,
            scan_window: spec.stable_for.max(SCAN_MIN_STABLE),
            marker: spec.marker_suffix.clone(),
            ignore,
            rescan_interval: spec.rescan_interval,
        });
        let (scan_tx, scan_rx) = mpsc::channel(4);
        let state = State {
            orbit: self.clone(),
            config,
            watcher,
            stats: stats.clone(),
            overflow,
            scan_tx,
            entries: BTreeMap::new(),
            handed: BTreeMap::new(),
            deadlines: BinaryHeap::new(),
            next_gen: 0,
            ready: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            again: HashMap::new(),
            failures: HashMap::new(),
            moves: VecDeque::new(),
            warned: HashSet::new(),
            root_id: Some(root_id),
            reattach_at: None,
            scan_running: false,
            plan: ScanPlan::default(),
            next_rescan: Instant::now() + spec.rescan_interval,
        };
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(state.run(events_rx, scan_rx, stopped));
        Ok(LocalWatcher {
            stop,
            handle,
            stats,
            root: watch_root,
        })
    }
}

/// `sub_path` as a `/`-terminated prefix of event paths ("" for the root).
fn sub_path_prefix(sub_path: Option<&str>) -> std::result::Result<String, String> {
    let Some(sub) = sub_path else {
        return Ok(String::new());
    };
    let mut parts = Vec::new();
    for component in Path::new(sub).components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err(format!("{sub:?} is not UTF-8")),
            },
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{sub:?} must be relative to the endpoint root, without '..'"
                ));
            }
        }
    }
    Ok(parts.iter().map(|p| format!("{p}/")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_are_relative_without_dotdot() {
        assert_eq!(sub_path_prefix(None).unwrap(), "");
        assert_eq!(sub_path_prefix(Some("in/day 1/")).unwrap(), "in/day 1/");
        assert_eq!(sub_path_prefix(Some("./in")).unwrap(), "in/");
        assert!(sub_path_prefix(Some("../etc")).is_err());
        assert!(sub_path_prefix(Some("/etc")).is_err());
    }
}
