//! The source runner: the part of every engine process (the server, the standalone worker,
//! a Python orbit) that runs stored sources. Every check (default twice a second) it reads
//! the sources; it leases each enabled one its node's placement admits and nobody holds
//! (a compare-and-set on the row, so each source runs on exactly one node), starts it with
//! a handle that records the source's name on its events, renews the lease with the
//! source's state and counters every second, and stops a source at once when it is
//! paused, deleted, placed elsewhere or its lease was taken over (restarting it when its
//! spec changed). A source that fails to start is retried with backoff while its lease is
//! kept and its state says `failing`. A node that dies stops renewing: another eligible
//! node takes its sources over once the lease ran out. On shutdown every lease is released
//! so another node takes over at its next check.

use super::local::{LocalWatchStats, LocalWatcher};
use super::poll::{PollStats, Poller};
use super::source::SourceSpec;
use super::sqs::{SqsConsumer, SqsStats};
use crate::engine::{Orbit, SourceCounters, SourceReport, SourceState, SourceStatus, now_ms};
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a runner leases and checks.
#[derive(Debug, Clone, Copy)]
pub struct SourceRunnerOptions {
    /// How long a lease lasts without renewal: a dead node's sources move to another node
    /// after at most this. 2 s to an hour; default 15 s.
    pub lease: Duration,
    /// How often the sources are read (pause and delete take effect within it). 50 ms to
    /// 10 s; default 500 ms.
    pub check_every: Duration,
}

impl Default for SourceRunnerOptions {
    fn default() -> Self {
        SourceRunnerOptions {
            lease: Duration::from_secs(15),
            check_every: Duration::from_millis(500),
        }
    }
}

impl SourceRunnerOptions {
    /// Checks the bounds; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &str, why: &str| Err(Error::invalid_field("source runner", field, why));
        if !(Duration::from_secs(2)..=Duration::from_secs(3600)).contains(&self.lease) {
            return invalid("lease", "must be within 2 s and an hour");
        }
        if !(Duration::from_millis(50)..=Duration::from_secs(10)).contains(&self.check_every) {
            return invalid("check_every", "must be within 50 ms and 10 s");
        }
        Ok(())
    }
}

/// How often a held source's lease is renewed and its status written.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The first and the longest wait before starting a failed source again.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A running source runner; `shutdown` stops its sources and releases their leases.
pub struct SourceRunner {
    owner: String,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl SourceRunner {
    /// The name its leases carry: `node/pid/n`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops every source it runs and releases their leases.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

impl Orbit {
    /// Starts running the stored sources this node may run (see the module docs).
    pub fn start_source_runner(&self, options: SourceRunnerOptions) -> Result<SourceRunner> {
        options.validate()?;
        static RUNNERS: AtomicU64 = AtomicU64::new(0);
        let owner = format!(
            "{}/{}/{}",
            self.options().node.name,
            std::process::id(),
            RUNNERS.fetch_add(1, Ordering::Relaxed)
        );
        let (stop, stopped) = watch::channel(false);
        let runner = Runner {
            orbit: self.clone(),
            owner: owner.clone(),
            options,
            held: HashMap::new(),
        };
        let handle = tokio::spawn(runner.run(stopped));
        Ok(SourceRunner {
            owner,
            stop,
            handle,
        })
    }
}

/// A source as it runs, by kind.
enum Running {
    Sqs(SqsConsumer),
    Watch(LocalWatcher),
    Poll(Poller),
}

/// A running source's own counters, by kind.
enum Stats {
    Sqs(SqsStats),
    Watch(LocalWatchStats),
    Poll(PollStats),
}

/// What a running source says: its counters since it started, whether it works, and its
/// last error.
struct Observed {
    counters: SourceCounters,
    healthy: bool,
    last_error: Option<String>,
}

impl Running {
    async fn start(orbit: Orbit, spec: SourceSpec) -> Result<Running> {
        Ok(match spec {
            SourceSpec::Sqs(sqs) => Running::Sqs(orbit.start_sqs_source(sqs).await?),
            SourceSpec::LocalWatch(watch) => Running::Watch(orbit.start_local_watch(watch).await?),
            SourceSpec::RemotePoll(poll) => Running::Poll(orbit.start_remote_poll(poll)),
        })
    }

    fn stats(&self) -> Stats {
        match self {
            Running::Sqs(consumer) => Stats::Sqs(consumer.stats()),
            Running::Watch(watcher) => Stats::Watch(watcher.stats()),
            Running::Poll(poller) => Stats::Poll(poller.stats()),
        }
    }

    /// Stops it; its final counters (hand-overs under way included).
    async fn shutdown(self) -> Stats {
        match self {
            Running::Sqs(consumer) => Stats::Sqs(consumer.shutdown().await),
            Running::Watch(watcher) => Stats::Watch(watcher.shutdown().await),
            Running::Poll(poller) => Stats::Poll(poller.shutdown().await),
        }
    }
}

impl Stats {
    /// `errors_before`: the error count at the previous report (new errors since then
    /// make the source `failing`).
    fn observe(self, errors_before: u64) -> Observed {
        let (counters, last_error, broken) = match self {
            Stats::Sqs(stats) => {
                let counters = SourceCounters {
                    received: stats.received,
                    ingested: stats.ingested,
                    duplicates: stats.duplicates,
                    dead: stats.dead,
                    errors: stats.failed + stats.receive_errors,
                };
                (counters, stats.last_error, false)
            }
            Stats::Watch(stats) => {
                let counters = SourceCounters {
                    received: stats.stored + stats.duplicates + stats.failed,
                    ingested: stats.stored,
                    duplicates: stats.duplicates,
                    dead: 0,
                    errors: stats.failed,
                };
                (counters, stats.last_error, !stats.watching)
            }
            Stats::Poll(stats) => {
                let counters = SourceCounters {
                    received: stats.ingested + stats.duplicates,
                    ingested: stats.ingested,
                    duplicates: stats.duplicates,
                    dead: 0,
                    errors: stats.errors,
                };
                let broken = stats.last_error.is_some();
                (counters, stats.last_error, broken)
            }
        };
        Observed {
            healthy: !broken && counters.errors == errors_before,
            counters,
            last_error,
        }
    }
}

/// A source whose lease this runner holds.
struct Held {
    /// The revision it runs (or will start) with.
    revision: i64,
    /// The counters before this run (from the store and earlier runs here).
    base: SourceCounters,
    running: Option<Running>,
    /// The last counters of this run.
    seen: SourceCounters,
    last_event_at: Option<i64>,
    last_error: Option<String>,
    healthy: bool,
    retry_at: Instant,
    retry_delay: Duration,
    reported_at: Option<Instant>,
}

impl Held {
    fn new(status: &SourceStatus) -> Held {
        Held {
            revision: status.revision,
            base: status.counters,
            running: None,
            seen: SourceCounters::default(),
            last_event_at: status.last_event_at,
            last_error: None,
            healthy: false,
            retry_at: Instant::now(),
            retry_delay: FIRST_RETRY,
            reported_at: None,
        }
    }

    /// Takes the running source's counters, health and last error.
    fn observe(&mut self) {
        if let Some(running) = &self.running {
            self.take(running.stats());
        }
    }

    fn take(&mut self, stats: Stats) {
        let observed = stats.observe(self.seen.errors);
        if observed.counters.received != self.seen.received {
            self.last_event_at = Some(now_ms());
        }
        self.seen = observed.counters;
        self.healthy = observed.healthy;
        if observed.last_error.is_some() {
            self.last_error = observed.last_error;
        }
    }

    /// Stops the running source, keeping its counters in `base`.
    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let stats = running.shutdown().await;
            self.take(stats);
        }
        self.base = self.base + self.seen;
        self.seen = SourceCounters::default();
    }

    fn state(&self) -> SourceState {
        match (&self.running, self.healthy) {
            (Some(_), true) => SourceState::Running,
            (Some(_), false) => SourceState::Failing,
            (None, _) if self.last_error.is_some() => SourceState::Failing,
            (None, _) => SourceState::Starting,
        }
    }
}

struct Runner {
    orbit: Orbit,
    owner: String,
    options: SourceRunnerOptions,
    held: HashMap<String, Held>,
}

impl Runner {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "source runner started");
        while !*stopped.borrow() {
            if let Err(err) = self.check().await {
                tracing::warn!(owner = %self.owner, %err, "checking the sources failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.check_every) => {}
                _ = stopped.changed() => {}
            }
        }
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            if let Err(err) = self.retire(&name).await {
                tracing::warn!(source = %name, %err, "releasing a source failed");
            }
        }
        tracing::info!(owner = %self.owner, "source runner stopped");
    }

    /// One pass: stop what must stop, renew what runs, take what nobody runs, start what
    /// is due.
    async fn check(&mut self) -> Result<()> {
        let sources = self.orbit.sources().await?;
        let by_name: HashMap<&str, &SourceStatus> = sources
            .iter()
            .map(|status| (status.name.as_str(), status))
            .collect();
        // A handle of its own, so that `self` can be borrowed mutably below.
        let orbit = self.orbit.clone();
        let node = &orbit.options().node;

        // Stop sources deleted, paused or placed elsewhere; restart edited ones.
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            let status = by_name.get(name.as_str());
            let keep = status.is_some_and(|status| status.enabled && status.placement.admits(node));
            let held = self.held.get_mut(&name).expect("held");
            if !keep {
                self.retire(&name).await?;
                tracing::info!(source = %name, "source stopped (paused, deleted or placed elsewhere)");
            } else if let Some(status) = status.filter(|status| status.revision != held.revision) {
                held.stop().await;
                held.revision = status.revision;
                held.last_error = None;
                held.retry_at = Instant::now();
                held.retry_delay = FIRST_RETRY;
                tracing::info!(source = %name, revision = status.revision, "source edited; restarting it");
            }
        }

        // Take the sources nobody holds.
        for status in &sources {
            let free =
                status.owner.is_none() || status.owner.as_deref() == Some(self.owner.as_str());
            if self.held.contains_key(&status.name)
                || !status.enabled
                || !free
                || !status.placement.admits(node)
            {
                continue;
            }
            let now = now_ms();
            let until = now + self.options.lease.as_millis() as i64;
            if self
                .orbit
                .store()
                .claim_source(&status.name, &self.owner, &node.name, until, now)
                .await?
            {
                tracing::info!(source = %status.name, owner = %self.owner, "source leased");
                self.held.insert(status.name.clone(), Held::new(status));
            }
        }

        // Start what is due, then renew and report.
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            self.start_if_due(&name).await;
            if !self.report(&name, false).await? {
                if let Some(mut held) = self.held.remove(&name) {
                    held.stop().await;
                }
                tracing::warn!(source = %name, "source lease lost to another node; stopped it here");
            }
        }
        Ok(())
    }

    /// Stops source `name`, writes its final counters and releases its lease.
    async fn retire(&mut self, name: &str) -> Result<()> {
        let Some(held) = self.held.get_mut(name) else {
            return Ok(());
        };
        held.stop().await;
        self.report(name, true).await?;
        self.held.remove(name);
        self.orbit.store().release_source(name, &self.owner).await
    }

    async fn start_if_due(&mut self, name: &str) {
        let Some(held) = self.held.get_mut(name) else {
            return;
        };
        if held.running.is_some() || held.retry_at > Instant::now() {
            return;
        }
        let started = match self.orbit.source(name).await {
            Ok((source, revision)) => {
                held.revision = revision;
                Running::start(self.orbit.for_source(name), source.spec).await
            }
            Err(err) => Err(err),
        };
        match started {
            Ok(running) => {
                tracing::info!(source = %name, "source started");
                held.running = Some(running);
                held.last_error = None;
                held.healthy = true;
                held.retry_delay = FIRST_RETRY;
            }
            Err(err) => {
                tracing::warn!(source = %name, %err, retry_in = ?held.retry_delay, "starting a source failed");
                held.last_error = Some(err.to_string());
                held.retry_at = Instant::now() + held.retry_delay;
                held.retry_delay = (held.retry_delay * 2).min(MAX_RETRY);
            }
        }
    }

    /// Renews the lease of `name` with its status when a report is due; false when the
    /// lease was lost.
    async fn report(&mut self, name: &str, force: bool) -> Result<bool> {
        let Some(held) = self.held.get_mut(name) else {
            return Ok(true);
        };
        if !force
            && held
                .reported_at
                .is_some_and(|at| at.elapsed() < REPORT_EVERY)
        {
            return Ok(true);
        }
        held.observe();
        let report = SourceReport {
            state: held.state(),
            counters: held.base + held.seen,
            last_event_at: held.last_event_at,
            last_error: held.last_error.as_deref(),
        };
        let until = now_ms() + self.options.lease.as_millis() as i64;
        held.reported_at = Some(Instant::now());
        match self
            .orbit
            .store()
            .report_source(name, &self.owner, until, &report)
            .await
        {
            Ok(renewed) => Ok(renewed),
            // The store is away: keep running (the lease may still hold) and try again.
            Err(err) if err.kind == ErrorKind::Store => {
                tracing::warn!(source = %name, %err, "renewing a source's lease failed");
                Ok(true)
            }
            Err(err) => Err(err),
        }
    }
}
