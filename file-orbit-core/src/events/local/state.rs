//! The watch task of a local watch: its state (with the records scans and hand-overs
//! report back in), its loop, and the state machine that applies filesystem events to the
//! files it follows (scans and hand-overs are in `scan` and `handover`, which build on this
//! file and not the other way round; this file does no filesystem walking).

use super::LocalWatchStats;
use super::ignore::Ignore;
use super::inotify::{SharedWatcher, limit_hint};
use crate::engine::Orbit;
use crate::events::lock;
use notify::EventKind;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Events applied per turn of the loop before due files are looked at.
const BATCH: usize = 1024;
/// Renames remembered to carry a moved file's open count to its new name.
const MOVE_MEMORY: usize = 256;
/// Non-UTF-8 names warned about (once each); past this, silently skipped.
const WARN_MEMORY: usize = 10_000;

pub(super) struct Config {
    pub(super) context: String,
    pub(super) endpoint: String,
    pub(super) watch_root: PathBuf,
    /// The watched directory relative to the endpoint root, `/`-terminated, or "".
    pub(super) prefix: String,
    pub(super) stable_for: Duration,
    pub(super) scan_window: Duration,
    pub(super) marker: Option<String>,
    pub(super) ignore: Ignore,
    pub(super) rescan_interval: Duration,
}

impl Config {
    /// For a marker path (`name.done`), the data file's path.
    pub(super) fn data_of_marker(&self, rel: &Path) -> Option<PathBuf> {
        let suffix = self.marker.as_deref()?;
        let name = rel.file_name()?.to_str()?;
        let data = name.strip_suffix(suffix).filter(|data| !data.is_empty())?;
        Some(rel.with_file_name(data))
    }

    pub(super) fn marker_of(&self, rel: &Path) -> Option<PathBuf> {
        let suffix = self.marker.as_deref()?;
        let mut name = rel.file_name()?.to_os_string();
        name.push(suffix);
        Some(rel.with_file_name(name))
    }
}

/// Why a file was handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    CloseWrite,
    Rename,
    Stable,
    Marker,
}

impl Trigger {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Trigger::CloseWrite => "close_write",
            Trigger::Rename => "rename",
            Trigger::Stable => "stable",
            Trigger::Marker => "marker",
        }
    }
}

/// What is known of a file that is not complete yet (or is being re-checked).
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// Opens seen without their close (writers and readers).
    pub(super) opens: u32,
    /// Written since the last close-write.
    pub(super) writing: bool,
    /// A close-write was seen and nothing written since: complete after `stable_for`.
    pub(super) closed: bool,
    /// Renamed into place: complete once nobody holds it open.
    pub(super) renamed: bool,
    /// Size and mtime seen by a scan: complete when unchanged for the scan window.
    pub(super) observed: Option<(u64, SystemTime)>,
    /// A failed hand-over to try again.
    pub(super) retry: Option<Trigger>,
    /// Only the deadline with this generation counts.
    pub(super) generation: u64,
}

impl Entry {
    /// Nothing to wait for: only a reader had it open.
    fn idle(&self) -> bool {
        self.opens == 0
            && !self.writing
            && !self.closed
            && !self.renamed
            && self.observed.is_none()
            && self.retry.is_none()
    }
}

#[derive(Default)]
pub(super) struct ScanPlan {
    pub(super) full: bool,
    pub(super) dirs: Vec<PathBuf>,
    pub(super) at: Option<Instant>,
}

/// What one scan found (walked on a blocking thread, folded in by `State::scanned`).
pub(super) struct ScanOutcome {
    pub(super) reattach: bool,
    pub(super) full: bool,
    /// The watched directory's identity now (None: missing).
    pub(super) root_id: Option<(u64, u64)>,
    /// Files below the watched directory: path relative to it, size, mtime.
    pub(super) files: Vec<(PathBuf, u64, SystemTime)>,
    /// Names skipped because they are not UTF-8.
    pub(super) bad_names: Vec<PathBuf>,
    /// The walk could not read everything (then nothing is forgotten).
    pub(super) incomplete: bool,
    pub(super) error: Option<String>,
}

/// Outcome of one hand-over task.
pub(super) struct HandOver {
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) trigger: Trigger,
    pub(super) result: crate::error::Result<bool>,
}

/// A modification time as nanoseconds since the epoch (negative before it), saturating.
pub(super) fn mtime_ns(mtime: SystemTime) -> i64 {
    let nanos = match mtime.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// The watch task's state; only the task touches it.
pub(super) struct State {
    pub(super) orbit: Orbit,
    pub(super) config: Arc<Config>,
    pub(super) watcher: SharedWatcher,
    pub(super) stats: Arc<Mutex<LocalWatchStats>>,
    pub(super) overflow: Arc<AtomicBool>,
    pub(super) scan_tx: mpsc::Sender<ScanOutcome>,
    /// Files being followed, by path relative to the watched directory.
    pub(super) entries: BTreeMap<PathBuf, Entry>,
    /// Files handed over by this watch: size and mtime (ns) as handed over.
    pub(super) handed: BTreeMap<PathBuf, (u64, i64)>,
    pub(super) deadlines: BinaryHeap<Reverse<(Instant, u64, PathBuf)>>,
    pub(super) next_gen: u64,
    pub(super) ready: VecDeque<(PathBuf, Trigger)>,
    pub(super) queued: HashSet<PathBuf>,
    pub(super) in_flight: HashMap<tokio::task::Id, PathBuf>,
    /// Completed again while its hand-over was under way.
    pub(super) again: HashMap<PathBuf, Trigger>,
    /// Hand-overs that failed in a row, by file (for the backoff).
    pub(super) failures: HashMap<PathBuf, u32>,
    /// Rename cookie → opens of the file moved away.
    pub(super) moves: VecDeque<(usize, u32)>,
    pub(super) warned: HashSet<PathBuf>,
    /// The watched directory's identity; None while it is missing.
    pub(super) root_id: Option<(u64, u64)>,
    pub(super) reattach_at: Option<Instant>,
    pub(super) scan_running: bool,
    pub(super) plan: ScanPlan,
    pub(super) next_rescan: Instant,
}

impl State {
    pub(super) async fn run(
        mut self,
        mut events: mpsc::Receiver<notify::Result<notify::Event>>,
        mut scans: mpsc::Receiver<ScanOutcome>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut tasks: JoinSet<HandOver> = JoinSet::new();
        self.plan_full_scan(Instant::now()); // catch-up
        loop {
            if *stopped.borrow() {
                break;
            }
            let now = Instant::now();
            self.due(now);
            self.start_scan(now);
            self.dispatch(&mut tasks);
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = stopped.changed() => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => self.finished(done),
                Some(outcome) = scans.recv() => self.scanned(outcome),
                received = events.recv() => match received {
                    Some(event) => {
                        self.apply(event);
                        for _ in 0..BATCH {
                            match events.try_recv() {
                                Ok(event) => self.apply(event),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
            if self.overflow.swap(false, Ordering::Relaxed) {
                self.overflowed("events came faster than they were handled");
            }
        }
        // Stop notify's thread (its drop could panic if that thread died: contain it).
        let watcher = self.watcher.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&watcher).take()).await;
        while let Some(done) = tasks.join_next_with_id().await {
            self.finished(done);
        }
        lock(&self.stats).watching = false;
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_rescan;
        if let Some(Reverse((at, _, _))) = self.deadlines.peek() {
            wake = wake.min(*at);
        }
        if !self.scan_running {
            if let Some(at) = self.plan.at {
                wake = wake.min(at);
            }
            if let Some(at) = self.reattach_at {
                wake = wake.min(at);
            }
        }
        wake
    }

    /// The path relative to the watched directory, unless it is the directory itself,
    /// ignored or not UTF-8.
    fn rel(&mut self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.config.watch_root).ok()?;
        if rel.as_os_str().is_empty() || self.config.ignore.matches(rel) {
            return None;
        }
        if rel.to_str().is_none() {
            self.bad_name(rel.to_path_buf());
            return None;
        }
        Some(rel.to_path_buf())
    }

    pub(super) fn bad_name(&mut self, rel: PathBuf) {
        if self.warned.len() < WARN_MEMORY && self.warned.insert(rel.clone()) {
            lock(&self.stats).skipped_names += 1;
            tracing::warn!(
                path = %self.config.watch_root.join(&rel).display(),
                "local watch: skipping a name that is not UTF-8"
            );
        }
    }

    pub(super) fn schedule(&mut self, rel: &Path, at: Instant) {
        self.next_gen += 1;
        let generation = self.next_gen;
        if let Some(entry) = self.entries.get_mut(rel) {
            entry.generation = generation;
            self.deadlines
                .push(Reverse((at, generation, rel.to_path_buf())));
        }
    }

    /// Forgets the deadline of `rel` without setting a new one.
    fn unschedule(&mut self, rel: &Path) {
        self.next_gen += 1;
        if let Some(entry) = self.entries.get_mut(rel) {
            entry.generation = self.next_gen;
        }
    }

    /// When a file last modified at `mtime` has been unchanged for the scan window.
    pub(super) fn stable_at(&self, mtime: SystemTime) -> Instant {
        let window = self.config.scan_window;
        let wait = mtime
            .checked_add(window)
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .map_or(Duration::ZERO, |wait| wait.min(window));
        Instant::now() + wait
    }

    fn apply(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                let hint = limit_hint(&err);
                let message = match &hint {
                    Some(hint) => hint.clone(),
                    None => err.to_string(),
                };
                tracing::warn!(root = %self.config.watch_root.display(), error = %message, "local watch: inotify reported an error");
                lock(&self.stats).last_error = Some(message);
                if hint.is_some() {
                    // Directories past the limit are not watched: rescans still find
                    // their files.
                    self.plan_full_scan(Instant::now());
                }
                return;
            }
        };
        if event.need_rescan() {
            self.overflowed("the kernel's inotify queue overflowed");
        }
        let tracker = event.tracker();
        for path in &event.paths {
            if path == &self.config.watch_root {
                let gone = matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
                );
                if gone {
                    self.root_lost();
                }
                continue;
            }
            let Some(rel) = self.rel(path) else {
                continue;
            };
            match event.kind {
                EventKind::Access(AccessKind::Open(_)) => {
                    self.entries.entry(rel).or_default().opens += 1;
                }
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => self.closed_write(rel),
                EventKind::Access(AccessKind::Close(_)) => self.closed_read(rel),
                EventKind::Create(CreateKind::Folder) => self.plan_dir_scan(rel),
                EventKind::Create(_) => self.created(rel),
                EventKind::Modify(ModifyKind::Data(_)) => self.written(rel),
                EventKind::Modify(ModifyKind::Metadata(_)) => {
                    // e.g. `cp -p` setting the mtime after closing: restart the wait.
                    if let Some(entry) = self.entries.get(&rel) {
                        if entry.closed && entry.opens == 0 {
                            let at = Instant::now() + self.config.stable_for;
                            self.schedule(&rel, at);
                        }
                    }
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    self.removed(&rel, tracker)
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    self.renamed_in(rel, tracker)
                }
                EventKind::Remove(_) => self.removed(&rel, None),
                _ => {}
            }
        }
    }

    fn created(&mut self, rel: PathBuf) {
        let meta = std::fs::symlink_metadata(self.config.watch_root.join(&rel));
        let entry = self.entries.entry(rel.clone()).or_default();
        entry.writing = true;
        entry.closed = false;
        entry.renamed = false;
        // In case no open follows (a hard link): the scan rule applies.
        if let Ok(meta) = meta {
            if meta.is_file() {
                if let Ok(mtime) = meta.modified() {
                    entry.observed = Some((meta.len(), mtime));
                    let at = self.stable_at(mtime);
                    self.schedule(&rel, at);
                }
            }
        }
    }

    fn written(&mut self, rel: PathBuf) {
        let entry = self.entries.entry(rel.clone()).or_default();
        entry.writing = true;
        entry.closed = false;
        entry.renamed = false;
        if entry.opens > 0 {
            // Its close decides.
            entry.observed = None;
            self.unschedule(&rel);
        } else if entry.observed.is_none() {
            // Opened before the watch saw it: fall back to the scan rule.
            let at = self.stable_at(SystemTime::now());
            self.schedule(&rel, at);
        }
    }

    fn closed_write(&mut self, rel: PathBuf) {
        let entry = self.entries.entry(rel.clone()).or_default();
        entry.opens = entry.opens.saturating_sub(1);
        entry.writing = false;
        entry.closed = true;
        entry.observed = None;
        if entry.opens == 0 {
            let at = Instant::now() + self.config.stable_for;
            self.schedule(&rel, at);
        } else {
            self.unschedule(&rel);
        }
    }

    fn closed_read(&mut self, rel: PathBuf) {
        let Some(entry) = self.entries.get_mut(&rel) else {
            return;
        };
        entry.opens = entry.opens.saturating_sub(1);
        if entry.opens > 0 {
            return;
        }
        if entry.idle() {
            self.entries.remove(&rel);
            // A data file whose marker came while something read it.
            if self.config.data_of_marker(&rel).is_none()
                && self
                    .config
                    .marker_of(&rel)
                    .is_some_and(|marker| self.config.watch_root.join(marker).is_file())
            {
                self.complete(rel, Trigger::Marker);
            }
        } else if entry.closed || entry.renamed {
            let wait = if entry.closed {
                self.config.stable_for
            } else {
                Duration::ZERO
            };
            self.schedule(&rel, Instant::now() + wait);
        }
    }

    fn renamed_in(&mut self, rel: PathBuf, tracker: Option<usize>) {
        let opens = tracker
            .and_then(|cookie| {
                let index = self.moves.iter().position(|(c, _)| *c == cookie)?;
                self.moves.remove(index).map(|(_, opens)| opens)
            })
            .unwrap_or(0);
        match std::fs::symlink_metadata(self.config.watch_root.join(&rel)) {
            Ok(meta) if meta.is_dir() => self.plan_dir_scan(rel),
            Ok(meta) if meta.is_file() => {
                self.entries.insert(
                    rel.clone(),
                    Entry {
                        opens,
                        renamed: true,
                        ..Default::default()
                    },
                );
                if opens == 0 {
                    self.schedule(&rel, Instant::now());
                }
            }
            _ => {}
        }
    }

    /// `rel` (a file or a whole directory) is gone.
    fn removed(&mut self, rel: &Path, tracker: Option<usize>) {
        if let (Some(cookie), Some(entry)) = (tracker, self.entries.get(rel)) {
            if entry.opens > 0 {
                if self.moves.len() >= MOVE_MEMORY {
                    self.moves.pop_front();
                }
                self.moves.push_back((cookie, entry.opens));
            }
        }
        remove_tree(&mut self.entries, rel);
        remove_tree(&mut self.handed, rel);
        self.failures.retain(|path, _| !path.starts_with(rel));
    }

    pub(super) fn root_lost(&mut self) {
        if self.root_id.take().is_none() {
            return;
        }
        tracing::warn!(root = %self.config.watch_root.display(), "local watch: the watched directory vanished; watching again once it is back");
        lock(&self.stats).watching = false;
        self.entries.clear();
        self.handed.clear();
        self.failures.clear();
        self.deadlines.clear();
        self.plan = ScanPlan::default();
        self.reattach_at = Some(Instant::now());
    }

    fn overflowed(&mut self, why: &str) {
        tracing::warn!(root = %self.config.watch_root.display(), why, "local watch: events were lost; rescanning");
        lock(&self.stats).overflows += 1;
        // Open counts may miss closes now.
        for entry in self.entries.values_mut() {
            entry.opens = 0;
        }
        self.plan_full_scan(Instant::now());
    }
}

/// Removes `rel` and everything below it.
fn remove_tree<V>(map: &mut BTreeMap<PathBuf, V>, rel: &Path) {
    let below: Vec<PathBuf> = map
        .range(rel.to_path_buf()..)
        .map(|(path, _)| path)
        .take_while(|path| path.starts_with(rel))
        .cloned()
        .collect();
    for path in below {
        map.remove(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_before_the_epoch_do_not_panic() {
        assert_eq!(
            mtime_ns(UNIX_EPOCH - Duration::from_secs(1)),
            -1_000_000_000
        );
        assert_eq!(mtime_ns(UNIX_EPOCH + Duration::from_nanos(5)), 5);
    }
    use crate::events::local::SCAN_MIN_STABLE;

    #[test]
    fn markers_pair_with_their_data_file() {
        let config = Config {
            context: String::new(),
            endpoint: "e".into(),
            watch_root: PathBuf::from("/w"),
            prefix: String::new(),
            stable_for: Duration::ZERO,
            scan_window: SCAN_MIN_STABLE,
            marker: Some(".done".into()),
            ignore: Ignore::new(&[]).unwrap(),
            rescan_interval: Duration::from_secs(60),
        };
        assert_eq!(
            config.data_of_marker(Path::new("in/a.csv.done")),
            Some(PathBuf::from("in/a.csv"))
        );
        assert_eq!(config.data_of_marker(Path::new("in/.done")), None);
        assert_eq!(config.data_of_marker(Path::new("in/a.csv")), None);
        assert_eq!(
            config.marker_of(Path::new("in/a.csv")),
            Some(PathBuf::from("in/a.csv.done"))
        );
    }

    #[test]
    fn removing_a_directory_removes_what_is_below_it_only() {
        let mut map: BTreeMap<PathBuf, ()> = ["a", "a/x", "a/y/z", "a.b", "ab", "b"]
            .iter()
            .map(|p| (PathBuf::from(p), ()))
            .collect();
        remove_tree(&mut map, Path::new("a"));
        let left: Vec<_> = map.keys().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(left, ["a.b", "ab", "b"]);
    }
}
