//! Scans of a local watch: planning them, walking the directory tree on a blocking
//! thread, and folding what a scan found into the watch state (files it finds are
//! complete only once stable).

use super::inotify::{SharedWatcher, attach, dir_id, watch_error};
use super::state::{Config, ScanOutcome, State, mtime_ns};
use crate::events::lock;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often a vanished watched directory is looked for.
const REATTACH_EVERY: Duration = Duration::from_millis(250);
/// A new directory is scanned this long after it appears, once notify has watched it.
const NEW_DIR_SCAN_DELAY: Duration = Duration::from_millis(50);

pub(super) enum ScanJob {
    /// Watch the directory again (it vanished), then scan it all.
    Reattach,
    Full,
    Dirs(Vec<PathBuf>),
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

impl State {
    pub(super) fn plan_full_scan(&mut self, at: Instant) {
        self.plan.full = true;
        self.plan.dirs.clear();
        self.plan.at = Some(self.plan.at.map_or(at, |planned| planned.min(at)));
    }

    pub(super) fn plan_dir_scan(&mut self, rel: PathBuf) {
        if self.plan.full {
            return;
        }
        self.plan.dirs.push(rel);
        let at = Instant::now() + NEW_DIR_SCAN_DELAY;
        self.plan.at = Some(self.plan.at.map_or(at, |planned| planned.min(at)));
    }

    pub(super) fn start_scan(&mut self, now: Instant) {
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

    pub(super) fn scanned(&mut self, outcome: ScanOutcome) {
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
}
