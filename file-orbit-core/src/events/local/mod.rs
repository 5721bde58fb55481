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

use super::{IncomingEvent, Ingested};
use crate::endpoint::EndpointConfig;
use crate::engine::{FileEvent, Orbit};
use crate::error::{Error, ErrorKind, Result};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What a local watch ignores unless told otherwise: rclone's `*.partial` uploads,
/// `*.tmp`, and names starting with `.` (dotfiles, dot-directories).
pub const DEFAULT_IGNORE: &[&str] = &["*.partial", "*.tmp", ".*"];

/// Files found by scans must be stable at least this long (no close event vouches for
/// them).
const SCAN_MIN_STABLE: Duration = Duration::from_secs(1);
/// Raw filesystem events buffered between notify's thread and the watch task; when full,
/// events are dropped and the tree is rescanned (as after a kernel queue overflow).
const EVENT_CHANNEL: usize = 16 * 1024;
/// Events applied per turn of the loop before due files are looked at.
const BATCH: usize = 1024;
/// Hand-overs (`Orbit::ingest` calls) running at once.
const MAX_IN_FLIGHT: usize = 4;
/// How often a vanished watched directory is looked for.
const REATTACH_EVERY: Duration = Duration::from_millis(250);
/// A new directory is scanned this long after it appears, once notify has watched it.
const NEW_DIR_SCAN_DELAY: Duration = Duration::from_millis(50);
/// Renames remembered to carry a moved file's open count to its new name.
const MOVE_MEMORY: usize = 256;
/// Non-UTF-8 names warned about (once each); past this, silently skipped.
const WARN_MEMORY: usize = 10_000;

/// What to watch and how: see the module docs for the completion rules.
#[derive(Debug, Clone)]
pub struct LocalWatch {
    /// A local endpoint stored in the Orbit; its root (or `sub_path` below it) is watched.
    pub endpoint: String,
    /// A directory below the endpoint's root to watch instead of the whole root
    /// (relative, `/`-separated, no `..`). Event paths stay relative to the endpoint root.
    pub sub_path: Option<String>,
    /// How long a closed file must stay unmodified before it is handed over (0: at once on
    /// close-write). Files found by scans wait `max(stable_for, 1 s)` of unchanged size and
    /// mtime. Default 1 s.
    pub stable_for: Duration,
    /// With e.g. `.done`: `name` is handed over when `name.done` exists (and `name` is
    /// complete); markers are never handed over.
    pub marker_suffix: Option<String>,
    /// Glob patterns of names to ignore; default [`DEFAULT_IGNORE`].
    pub ignore: Vec<String>,
    /// How often the whole tree is rescanned for anything missed. Default 60 s.
    pub rescan_interval: Duration,
}

impl LocalWatch {
    /// A watch of `endpoint`'s root with the defaults.
    pub fn new(endpoint: impl Into<String>) -> Self {
        LocalWatch {
            endpoint: endpoint.into(),
            sub_path: None,
            stable_for: Duration::from_secs(1),
            marker_suffix: None,
            ignore: DEFAULT_IGNORE.iter().map(|p| p.to_string()).collect(),
            rescan_interval: Duration::from_secs(60),
        }
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

    /// Stops watching and waits for hand-overs under way to be stored. Files not yet
    /// handed over are found by the catch-up scan of the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
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
        let prefix = sub_path_prefix(spec.sub_path.as_deref()).map_err(&invalid)?;
        let watch_root = local.root.join(prefix.trim_end_matches('/'));
        let ignore = Ignore::new(&spec.ignore).map_err(&invalid)?;
        if let Some(suffix) = &spec.marker_suffix {
            if suffix.is_empty() || suffix.contains('/') {
                return Err(invalid(format!(
                    "marker_suffix {suffix:?}: must be non-empty and without '/'"
                )));
            }
        }
        if spec.rescan_interval.is_zero() {
            return Err(invalid("rescan_interval: must be above zero".into()));
        }
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
                None => return Err(format!("sub_path {sub:?}: not UTF-8")),
            },
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "sub_path {sub:?}: must be relative to the endpoint root, without '..'"
                ));
            }
        }
    }
    Ok(parts.iter().map(|p| format!("{p}/")).collect())
}

/// Glob patterns: without `/` matched against each path component, with `/` against the
/// whole path below the watched directory.
struct Ignore {
    names: globset::GlobSet,
    paths: globset::GlobSet,
}

impl Ignore {
    fn new(patterns: &[String]) -> std::result::Result<Ignore, String> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for pattern in patterns {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|err| format!("ignore pattern {pattern:?}: {err}"))?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |set: globset::GlobSetBuilder| {
            set.build().map_err(|err| format!("ignore patterns: {err}"))
        };
        Ok(Ignore {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// `rel` is relative to the watched directory.
    fn matches(&self, rel: &Path) -> bool {
        (!self.paths.is_empty() && self.paths.is_match(rel))
            || rel.components().any(|component| match component {
                Component::Normal(name) => self.names.is_match(Path::new(name)),
                _ => false,
            })
    }
}

/// The error for a failed watch, naming the inotify limit when one was hit.
fn watch_error(context: &str, root: &Path, err: notify::Error) -> Error {
    let message = match limit_hint(&err) {
        Some(hint) => format!("watching {}: {hint}", root.display()),
        None => format!("watching {}: {err}", root.display()),
    };
    Error::new(ErrorKind::Remote, context, message).with_source(err)
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What to tell an operator when `err` is an inotify limit.
fn limit_hint(err: &notify::Error) -> Option<String> {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => Some(format!(
            "the inotify watch limit is reached (fs.inotify.max_user_watches = {}; one watch \
             per directory, shared by all of this user's processes): raise it with \
             `sysctl -w fs.inotify.max_user_watches=524288` and persist it in \
             /etc/sysctl.d/90-inotify.conf",
            sysctl("max_user_watches")
        )),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc_emfile()) => Some(format!(
            "too many inotify instances or open files (fs.inotify.max_user_instances = {}): \
             raise it with `sysctl -w fs.inotify.max_user_instances=1024` (persist it in \
             /etc/sysctl.d/90-inotify.conf), or the process's open-files limit (`ulimit -n`)",
            sysctl("max_user_instances")
        )),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc_enospc()) => Some(format!(
            "no space left for inotify watches (fs.inotify.max_user_watches = {}): raise it \
             with `sysctl -w fs.inotify.max_user_watches=524288` and persist it in \
             /etc/sysctl.d/90-inotify.conf",
            sysctl("max_user_watches")
        )),
        _ => None,
    }
}

/// EMFILE and ENOSPC on Linux (and the other Unixes notify supports).
const fn libc_emfile() -> i32 {
    24
}

const fn libc_enospc() -> i32 {
    28
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type SharedWatcher = Arc<Mutex<Option<RecommendedWatcher>>>;

/// (Re)watches `root` recursively; returns its identity (device, inode).
fn attach(watcher: &SharedWatcher, root: &Path) -> notify::Result<(u64, u64)> {
    let mut guard = lock(watcher);
    let Some(watcher) = guard.as_mut() else {
        return Err(notify::Error::generic("the watch is shutting down"));
    };
    // A stale watch (a directory moved away keeps its inode watch) would report events
    // under the old path: drop it first.
    let _ = watcher.unwatch(root);
    let id = dir_id(root).map_err(notify::Error::io)?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(id)
}

fn dir_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok((meta.dev(), meta.ino()))
}

fn mtime_ns(mtime: SystemTime) -> i64 {
    let nanos = match mtime.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

struct Config {
    context: String,
    endpoint: String,
    watch_root: PathBuf,
    /// The watched directory relative to the endpoint root, `/`-terminated, or "".
    prefix: String,
    stable_for: Duration,
    scan_window: Duration,
    marker: Option<String>,
    ignore: Ignore,
    rescan_interval: Duration,
}

impl Config {
    /// For a marker path (`name.done`), the data file's path.
    fn data_of_marker(&self, rel: &Path) -> Option<PathBuf> {
        let suffix = self.marker.as_deref()?;
        let name = rel.file_name()?.to_str()?;
        let data = name.strip_suffix(suffix).filter(|data| !data.is_empty())?;
        Some(rel.with_file_name(data))
    }

    fn marker_of(&self, rel: &Path) -> Option<PathBuf> {
        let suffix = self.marker.as_deref()?;
        let mut name = rel.file_name()?.to_os_string();
        name.push(suffix);
        Some(rel.with_file_name(name))
    }
}

/// Why a file was handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    CloseWrite,
    Rename,
    Stable,
    Marker,
}

impl Trigger {
    fn as_str(self) -> &'static str {
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
struct Entry {
    /// Opens seen without their close (writers and readers).
    opens: u32,
    /// Written since the last close-write.
    writing: bool,
    /// A close-write was seen and nothing written since: complete after `stable_for`.
    closed: bool,
    /// Renamed into place: complete once nobody holds it open.
    renamed: bool,
    /// Size and mtime seen by a scan: complete when unchanged for the scan window.
    observed: Option<(u64, SystemTime)>,
    /// A failed hand-over to try again.
    retry: Option<Trigger>,
    /// Only the deadline with this generation counts.
    generation: u64,
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
struct ScanPlan {
    full: bool,
    dirs: Vec<PathBuf>,
    at: Option<Instant>,
}

enum ScanJob {
    /// Watch the directory again (it vanished), then scan it all.
    Reattach,
    Full,
    Dirs(Vec<PathBuf>),
}

struct ScanOutcome {
    reattach: bool,
    full: bool,
    /// The watched directory's identity now (None: missing).
    root_id: Option<(u64, u64)>,
    /// Files below the watched directory: path relative to it, size, mtime.
    files: Vec<(PathBuf, u64, SystemTime)>,
    /// Names skipped because they are not UTF-8.
    bad_names: Vec<PathBuf>,
    /// The walk could not read everything (then nothing is forgotten).
    incomplete: bool,
    error: Option<String>,
}

/// Walks `dirs` (relative to the watched directory; "" for all of it).
fn walk(config: &Config, dirs: &[PathBuf], outcome: &mut ScanOutcome) {
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(config.watch_root.join(&dir)) {
            Ok(entries) => entries,
            Err(err) => {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %config.watch_root.join(&dir).display(), %err, "local watch: cannot list a directory");
                }
                outcome.incomplete = true;
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                outcome.incomplete = true;
                continue;
            };
            let rel = dir.join(entry.file_name());
            if config.ignore.matches(&rel) {
                continue;
            }
            if rel.to_str().is_none() {
                outcome.bad_names.push(rel);
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                stack.push(rel);
            } else if file_type.is_file() {
                match entry.metadata().and_then(|m| Ok((m.len(), m.modified()?))) {
                    Ok((size, mtime)) => outcome.files.push((rel, size, mtime)),
                    Err(_) => outcome.incomplete = true,
                }
            }
        }
    }
}

fn run_scan(config: &Config, watcher: &SharedWatcher, job: ScanJob) -> ScanOutcome {
    let mut outcome = ScanOutcome {
        reattach: matches!(job, ScanJob::Reattach),
        full: !matches!(job, ScanJob::Dirs(_)),
        root_id: None,
        files: Vec::new(),
        bad_names: Vec::new(),
        incomplete: false,
        error: None,
    };
    match &job {
        ScanJob::Reattach => match attach(watcher, &config.watch_root) {
            Ok(id) => outcome.root_id = Some(id),
            Err(err) => {
                let missing = matches!(err.kind, notify::ErrorKind::PathNotFound)
                    || matches!(&err.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound);
                if !missing {
                    outcome.error =
                        Some(watch_error(&config.context, &config.watch_root, err).to_string());
                }
                return outcome;
            }
        },
        _ => outcome.root_id = dir_id(&config.watch_root).ok(),
    }
    if outcome.root_id.is_none() {
        return outcome;
    }
    let dirs = match job {
        ScanJob::Dirs(dirs) => dirs,
        _ => vec![PathBuf::new()],
    };
    walk(config, &dirs, &mut outcome);
    outcome
}

/// Outcome of one hand-over task.
struct HandOver {
    size: u64,
    mtime_ns: i64,
    trigger: Trigger,
    result: Result<bool>,
}

/// The watch task's state; only the task touches it.
struct State {
    orbit: Orbit,
    config: Arc<Config>,
    watcher: SharedWatcher,
    stats: Arc<Mutex<LocalWatchStats>>,
    overflow: Arc<AtomicBool>,
    scan_tx: mpsc::Sender<ScanOutcome>,
    /// Files being followed, by path relative to the watched directory.
    entries: BTreeMap<PathBuf, Entry>,
    /// Files handed over by this watch: size and mtime (ns) as handed over.
    handed: BTreeMap<PathBuf, (u64, i64)>,
    deadlines: BinaryHeap<Reverse<(Instant, u64, PathBuf)>>,
    next_gen: u64,
    ready: VecDeque<(PathBuf, Trigger)>,
    queued: HashSet<PathBuf>,
    in_flight: HashMap<tokio::task::Id, PathBuf>,
    /// Completed again while its hand-over was under way.
    again: HashMap<PathBuf, Trigger>,
    /// Hand-overs that failed in a row, by file (for the backoff).
    failures: HashMap<PathBuf, u32>,
    /// Rename cookie → opens of the file moved away.
    moves: VecDeque<(usize, u32)>,
    warned: HashSet<PathBuf>,
    /// The watched directory's identity; None while it is missing.
    root_id: Option<(u64, u64)>,
    reattach_at: Option<Instant>,
    scan_running: bool,
    plan: ScanPlan,
    next_rescan: Instant,
}

impl State {
    async fn run(
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

    fn bad_name(&mut self, rel: PathBuf) {
        if self.warned.len() < WARN_MEMORY && self.warned.insert(rel.clone()) {
            lock(&self.stats).skipped_names += 1;
            tracing::warn!(
                path = %self.config.watch_root.join(&rel).display(),
                "local watch: skipping a name that is not UTF-8"
            );
        }
    }

    fn schedule(&mut self, rel: &Path, at: Instant) {
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
    fn stable_at(&self, mtime: SystemTime) -> Instant {
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

    fn root_lost(&mut self) {
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

    fn plan_full_scan(&mut self, at: Instant) {
        self.plan.full = true;
        self.plan.dirs.clear();
        self.plan.at = Some(self.plan.at.map_or(at, |planned| planned.min(at)));
    }

    fn plan_dir_scan(&mut self, rel: PathBuf) {
        if self.plan.full {
            return;
        }
        self.plan.dirs.push(rel);
        let at = Instant::now() + NEW_DIR_SCAN_DELAY;
        self.plan.at = Some(self.plan.at.map_or(at, |planned| planned.min(at)));
    }

    fn start_scan(&mut self, now: Instant) {
        if now >= self.next_rescan {
            self.next_rescan = now + self.config.rescan_interval;
            if self.root_id.is_some() {
                self.plan_full_scan(now);
            }
        }
        if self.scan_running {
            return;
        }
        let job = if self.root_id.is_none() {
            match self.reattach_at {
                Some(at) if at <= now => {
                    self.reattach_at = None;
                    ScanJob::Reattach
                }
                _ => return,
            }
        } else {
            match self.plan.at {
                Some(at) if at <= now => {
                    let plan = std::mem::take(&mut self.plan);
                    if plan.full {
                        ScanJob::Full
                    } else {
                        ScanJob::Dirs(plan.dirs)
                    }
                }
                _ => return,
            }
        };
        self.scan_running = true;
        let config = self.config.clone();
        let watcher = self.watcher.clone();
        let tx = self.scan_tx.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = run_scan(&config, &watcher, job);
            let _ = tx.blocking_send(outcome);
        });
    }

    fn scanned(&mut self, outcome: ScanOutcome) {
        self.scan_running = false;
        lock(&self.stats).scans += 1;
        if let Some(error) = &outcome.error {
            tracing::warn!(error = %error, "local watch: could not watch the directory again");
            lock(&self.stats).last_error = Some(error.clone());
        }
        if outcome.reattach {
            match outcome.root_id {
                Some(id) => {
                    tracing::info!(root = %self.config.watch_root.display(), "local watch: watching the directory again");
                    self.root_id = Some(id);
                    let mut stats = lock(&self.stats);
                    stats.reattached += 1;
                    stats.watching = true;
                }
                None => {
                    self.reattach_at = Some(Instant::now() + REATTACH_EVERY);
                    return;
                }
            }
        } else if self.root_id.is_none() {
            return; // lost while scanning: the reattach scan follows
        } else if outcome.full && outcome.root_id != self.root_id {
            // Deleted and re-created (or replaced) without us seeing it go.
            self.root_lost();
            return;
        }
        for rel in outcome.bad_names {
            self.bad_name(rel);
        }
        if outcome.full && !outcome.incomplete {
            let present: HashSet<&PathBuf> = outcome.files.iter().map(|(rel, _, _)| rel).collect();
            self.handed.retain(|rel, _| present.contains(rel));
        }
        for (rel, size, mtime) in outcome.files {
            self.observe(rel, size, mtime);
        }
    }

    /// A scan found `rel`: unless events or an earlier scan already follow it, it is
    /// complete once unchanged for the scan window.
    fn observe(&mut self, rel: PathBuf, size: u64, mtime: SystemTime) {
        if self.queued.contains(&rel) || self.in_flight.values().any(|p| p == &rel) {
            return;
        }
        if self.handed.get(&rel) == Some(&(size, mtime_ns(mtime))) {
            return;
        }
        let entry = self.entries.entry(rel.clone()).or_default();
        if entry.opens > 0
            || entry.closed
            || entry.renamed
            || entry.retry.is_some()
            || entry.observed.is_some()
        {
            return;
        }
        entry.observed = Some((size, mtime));
        let at = self.stable_at(mtime);
        self.schedule(&rel, at);
    }

    fn due(&mut self, now: Instant) {
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
    fn complete(&mut self, rel: PathBuf, trigger: Trigger) {
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

    fn dispatch(&mut self, tasks: &mut JoinSet<HandOver>) {
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

    fn finished(
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

    fn ignore(patterns: &[&str]) -> Ignore {
        Ignore::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_ignores_partials_temps_and_dotfiles() {
        let set = ignore(DEFAULT_IGNORE);
        for path in [
            "a.csv.1a2b3c4d.partial",
            "x.tmp",
            ".hidden",
            "dir/.x.swp",
            ".git/objects/ab",
            "dir/sub.tmp/file.csv",
        ] {
            assert!(set.matches(Path::new(path)), "{path}");
        }
        for path in ["a.csv", "dir/report.pdf", "tmp/data", "a.partial.csv"] {
            assert!(!set.matches(Path::new(path)), "{path}");
        }
        let with_slash = ignore(&["staging/**"]);
        assert!(with_slash.matches(Path::new("staging/a/b.csv")));
        assert!(!with_slash.matches(Path::new("in/staging/a.csv")));
    }

    #[test]
    fn sub_paths_are_relative_without_dotdot() {
        assert_eq!(sub_path_prefix(None).unwrap(), "");
        assert_eq!(sub_path_prefix(Some("in/day 1/")).unwrap(), "in/day 1/");
        assert_eq!(sub_path_prefix(Some("./in")).unwrap(), "in/");
        assert!(sub_path_prefix(Some("../etc")).is_err());
        assert!(sub_path_prefix(Some("/etc")).is_err());
    }

    #[test]
    fn inotify_limits_name_the_sysctl() {
        let watches = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        );
        assert!(
            watches.message.contains("fs.inotify.max_user_watches")
                && watches.message.contains("sysctl -w"),
            "{watches}"
        );
        let instances = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::io(std::io::Error::from_raw_os_error(libc_emfile())),
        );
        assert!(
            instances.message.contains("fs.inotify.max_user_instances"),
            "{instances}"
        );
        let enospc = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::io(std::io::Error::from_raw_os_error(libc_enospc())),
        );
        assert!(enospc.message.contains("max_user_watches"), "{enospc}");
    }

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
            ignore: ignore(&[]),
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

    #[test]
    fn mtimes_before_the_epoch_do_not_panic() {
        assert_eq!(
            mtime_ns(UNIX_EPOCH - Duration::from_secs(1)),
            -1_000_000_000
        );
        assert_eq!(mtime_ns(UNIX_EPOCH + Duration::from_nanos(5)), 5);
    }
}
