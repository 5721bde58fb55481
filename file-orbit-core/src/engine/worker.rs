//! In-process workers: one dispatcher leases as many jobs as there are free worker slots
//! in one store transaction and reads their endpoints in one query, each job runs its
//! transfer in its slot while heartbeating the lease, and one reporter records the
//! successes in batches (one transaction for all that finished meanwhile). A lost lease or
//! a cancel request stops the transfer; shutdown stops leasing and lets running transfers
//! finish, or after a grace period stops them and hands their jobs back to the queue. The
//! process keeps its entry in the worker registry fresh, and publishes its running
//! transfers' progress to the store once a second in one write.

use super::queue::{Completion, Job, JobProgress, LeaseStatus, endpoint_names};
use super::{Orbit, Store};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::rclone::Progress;
use crate::transfer::{Scope, TransferJob, TransferMode, file_exists};
use backon::{ExponentialBuilder, Retryable};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

/// Running workers; `shutdown` stops them (so does dropping this handle, after their
/// current jobs).
pub struct Workers {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
}

/// How long released transfers get to stop and record the release.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// How often running transfers' progress is written to the store (one statement for all).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The running transfers of a process: job id → (lease holder, its progress).
type ProgressBoard = Arc<Mutex<BoardEntries>>;
type BoardEntries = HashMap<i64, (String, watch::Receiver<Progress>)>;

/// The endpoints of a batch of leased jobs, by name, read once for the batch.
type Endpoints = HashMap<String, Endpoint>;

/// The most successes recorded in one transaction.
const REPORT_BATCH: usize = 64;

/// The longest a dispatcher waits between failed leases (the store unreachable): once the
/// store is back, work resumes within this.
const MAX_LEASE_RETRY: Duration = Duration::from_secs(10);

/// Waits between failed leases in a row: five poll intervals, doubling (with jitter) up to
/// `MAX_LEASE_RETRY`, so an outage of an hour logs a few hundred lines, not thousands.
fn lease_retries(poll_interval: Duration) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    ExponentialBuilder::default()
        .with_min_delay(poll_interval * 5)
        .with_max_delay(MAX_LEASE_RETRY)
        .with_jitter()
        .without_max_times()
        .build()
}

/// What every lease owner of this process's workers starts with: `{host}-{pid}`.
fn process_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| format!("{}-{}", super::sources::host_name(), std::process::id()))
}

/// Whether `owner` (a job's lease owner) is a worker of this process.
pub(super) fn held_by_this_process(owner: &str) -> bool {
    owner
        .strip_prefix(process_prefix())
        .is_some_and(|rest| rest.starts_with(['.', '-']))
}

impl Workers {
    pub(super) fn start(orbit: Orbit, count: usize) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(false);
        // Each `Workers` of a process is its own entry in the registry.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let host = super::sources::host_name();
        let base = match STARTED.fetch_add(1, Ordering::Relaxed) {
            0 => process_prefix().to_string(),
            n => format!("{}.{n}", process_prefix()),
        };
        let dispatcher = Dispatcher {
            orbit,
            base,
            host,
            slots: count,
            released,
        };
        Workers {
            stop,
            release,
            dispatcher: tokio::spawn(dispatcher.run(stopped)),
        }
    }

    /// Stops leasing new jobs and waits for running transfers to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.dispatcher.await;
    }

    /// Stops leasing new jobs and gives running transfers `grace` to end; then stops the
    /// rest and puts their jobs back in the queue at once (the interrupted attempt does not
    /// count against `max_attempts`), so another worker takes them without waiting for the
    /// lease to expire. True when everything finished within the grace period.
    pub async fn shutdown_within(mut self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.dispatcher)
            .await
            .is_ok()
        {
            return true;
        }
        let _ = self.release.send(true);
        let _ = tokio::time::timeout(RELEASE_WAIT, &mut self.dispatcher).await;
        false
    }
}

/// Leases work for the free slots and starts it.
struct Dispatcher {
    orbit: Orbit,
    /// Host and process: this process in the worker registry; slot `n` leases as
    /// `{base}-w{n}`.
    base: String,
    host: String,
    slots: usize,
    released: watch::Receiver<bool>,
}

impl Dispatcher {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let options = self.orbit.options().clone();
        let store = self.orbit.store().clone();
        if let Err(err) = store
            .register_node(&self.base, &self.host, self.slots, options.lease)
            .await
        {
            tracing::warn!(%err, "could not register in the worker registry");
        }
        let running_now = Arc::new(AtomicUsize::new(0));
        let registration = tokio::spawn(renew_registration(
            store.clone(),
            self.base.clone(),
            running_now.clone(),
            options.lease,
        ));
        let board = ProgressBoard::default();
        let publisher = tokio::spawn(publish_progress(store.clone(), board.clone()));
        let (report, reports) = mpsc::unbounded_channel();
        let reporter = tokio::spawn(record_successes(self.orbit.clone(), reports));
        let mut new_work = self.orbit.new_work();
        let mut free: Vec<usize> = (0..self.slots).rev().collect();
        let mut running = JoinSet::new();
        let mut retries = lease_retries(options.poll_interval);
        let mut failures = 0u32;
        while !*stopped.borrow() {
            while let Some(slot) = running.try_join_next() {
                free.extend(slot);
            }
            running_now.store(running.len(), Ordering::Relaxed);
            if free.is_empty() {
                tokio::select! {
                    Some(slot) = running.join_next() => free.extend(slot),
                    _ = stopped.changed() => break,
                }
                continue;
            }
            // Seen before leasing: work submitted after this makes `changed` return at once.
            new_work.borrow_and_update();
            let slots: Vec<usize> = free.drain(..).rev().collect();
            let owners: Vec<String> = slots
                .iter()
                .map(|slot| format!("{}-w{slot}", self.base))
                .collect();
            let leased = store
                .lease_many(&owners, options.lease, options.aging)
                .instrument(tracing::debug_span!("lease_many"))
                .await;
            let idle = match leased {
                Ok(jobs) => {
                    let endpoints = Arc::new(self.endpoints_of(&jobs).await);
                    if failures > 0 {
                        tracing::info!(failures, "leasing works again");
                        failures = 0;
                        retries = lease_retries(options.poll_interval);
                    }
                    let leased = jobs.len();
                    for ((job, slot), id) in jobs.into_iter().zip(&slots).zip(owners) {
                        let worker = Worker {
                            orbit: self.orbit.clone(),
                            id,
                            released: self.released.clone(),
                            report: report.clone(),
                            board: board.clone(),
                            endpoints: endpoints.clone(),
                        };
                        let slot = *slot;
                        running.spawn(async move {
                            worker.execute(job).await;
                            slot
                        });
                    }
                    running_now.store(running.len(), Ordering::Relaxed);
                    free.extend(slots[leased..].iter().rev());
                    // Fewer jobs than slots: the queue is empty for now.
                    (leased < slots.len()).then_some(options.poll_interval)
                }
                Err(err) => {
                    failures += 1;
                    let wait = retries.next().unwrap_or(MAX_LEASE_RETRY);
                    tracing::warn!(%err, failures, retry_in = ?wait, "leasing failed");
                    free.extend(slots.iter().rev());
                    Some(wait)
                }
            };
            if let Some(wait) = idle {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = new_work.changed() => {}
                    Some(slot) = running.join_next() => free.extend(slot),
                    _ = stopped.changed() => break,
                }
            }
        }
        while running.join_next().await.is_some() {}
        drop(report);
        let _ = reporter.await;
        registration.abort();
        publisher.abort();
        if let Err(err) = store.node_stopped(&self.base).await {
            tracing::warn!(%err, "could not record the stop in the worker registry");
        }
    }

    /// The endpoints `jobs` name, read in one go. Empty when the read fails: each job then
    /// looks its endpoints up itself, and fails (or is retried) with that lookup's error.
    async fn endpoints_of(&self, jobs: &[Job]) -> Endpoints {
        self.orbit
            .endpoints_named(&endpoint_names(jobs))
            .instrument(tracing::debug_span!("endpoints"))
            .await
            .unwrap_or_else(|err| {
                tracing::debug!(%err, "could not read the endpoints of leased jobs");
                Endpoints::new()
            })
    }
}

/// Renews this process's registration a few times per `fresh_for`, with its running
/// transfers, until aborted.
async fn renew_registration(
    store: Store,
    id: String,
    running: Arc<AtomicUsize>,
    fresh_for: Duration,
) {
    let mut every = tokio::time::interval(fresh_for / 3);
    every.tick().await;
    loop {
        every.tick().await;
        let running = running.load(Ordering::Relaxed);
        if let Err(err) = store.renew_node(&id, running, fresh_for).await {
            tracing::warn!(%err, "could not renew the worker registration");
        }
    }
}

/// Every `PROGRESS_EVERY`, writes the progress of the transfers on `board` that changed
/// since the last write, in one statement, until aborted. A failed write is only logged:
/// progress is advisory and the next one replaces it.
async fn publish_progress(store: Store, board: ProgressBoard) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = super::store::now_ms();
        let changed: Vec<(i64, String, JobProgress)> = {
            locked(&board)
                .iter_mut()
                .filter(|(_, (_, progress))| progress.has_changed().unwrap_or(false))
                .map(|(id, (holder, progress))| {
                    let snapshot = JobProgress::of(&progress.borrow_and_update(), now);
                    (*id, holder.clone(), snapshot)
                })
                .collect()
        };
        if let Err(err) = store.record_progress(&changed).await {
            tracing::debug!(%err, "could not record progress");
        }
    }
}

/// Records the successes sent by the workers, each batch in one transaction; wakes the
/// dispatcher afterwards (a chain's next hop may be queued, an endpoint slot freed). A
/// failed write is retried for up to half a lease: a success not recorded would run again
/// once the lease expires, and a move whose source is gone would then fail.
async fn record_successes(orbit: Orbit, mut reports: mpsc::UnboundedReceiver<Completion>) {
    let patience = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(orbit.options().lease / 2));
    let mut batch = Vec::with_capacity(REPORT_BATCH);
    while reports.recv_many(&mut batch, REPORT_BATCH).await > 0 {
        let recorded = (|| orbit.store().complete_many(&batch))
            .retry(patience)
            .notify(|err, after| {
                tracing::warn!(jobs = batch.len(), %err, ?after, "recording successes failed; retrying");
            })
            .instrument(tracing::debug_span!("complete_many"))
            .await;
        match recorded {
            Ok(_) => orbit.wake_workers(),
            // The leases will expire and other workers run the jobs again.
            Err(err) => tracing::warn!(jobs = batch.len(), %err, "could not record successes"),
        }
        batch.clear();
    }
}

/// One slot running one leased job.
struct Worker {
    orbit: Orbit,
    id: String,
    /// Set when shutdown's grace period is over: stop the transfer, release the job.
    released: watch::Receiver<bool>,
    report: mpsc::UnboundedSender<Completion>,
    /// Where this slot's running transfer shows its progress.
    board: ProgressBoard,
    /// The endpoints of the batch this job was leased in.
    endpoints: Arc<Endpoints>,
}

/// The board, even if a worker panicked holding it (its entries stay usable).
fn locked(board: &ProgressBoard) -> std::sync::MutexGuard<'_, BoardEntries> {
    board
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a transfer on the progress board while it runs.
struct OnBoard<'a>(&'a ProgressBoard, i64);

impl Drop for OnBoard<'_> {
    fn drop(&mut self) {
        locked(self.0).remove(&self.1);
    }
}

/// How a transfer ended for its worker.
enum Ended {
    Done {
        bytes: u64,
        files: u64,
        warnings: Vec<String>,
    },
    /// Another worker holds the job now: nothing to report.
    LeaseLost,
    /// Stopped at shutdown: the job goes back to the queue.
    Released,
}

impl Worker {
    #[tracing::instrument(skip_all, fields(job = job.id, worker = %self.id))]
    async fn execute(&self, job: Job) {
        let store = self.orbit.store();
        let outcome = self.transfer(&job).await;
        let reported = match outcome {
            Ok(Ended::Done {
                bytes,
                files,
                warnings,
            }) => {
                tracing::info!(bytes, files, "transfer succeeded");
                if !warnings.is_empty() {
                    tracing::warn!(?warnings, "transfer succeeded with warnings");
                    if let Err(err) = store.record_warnings(job.id, &self.id, &warnings).await {
                        tracing::warn!(%err, "could not record the warnings");
                    }
                }
                let success = Completion {
                    id: job.id,
                    worker: self.id.clone(),
                    bytes,
                    files,
                };
                // The reporter outlives every worker: sending cannot fail.
                let _ = self.report.send(success);
                Ok(())
            }
            Ok(Ended::LeaseLost) => Ok(()),
            Ok(Ended::Released) => {
                tracing::info!("transfer stopped at shutdown; job released to the queue");
                store.release(job.id, &self.id).await.map(|_| ())
            }
            Err(err) if err.kind == ErrorKind::Cancelled => {
                store.cancelled(job.id, &self.id).await.map(|_| ())
            }
            Err(err) => {
                tracing::info!(%err, "transfer failed");
                store.fail(job.id, &self.id, &err).await.map(|_| ())
            }
        };
        if let Err(err) = reported {
            // The lease will expire and another worker runs the job again.
            tracing::warn!(%err, "could not record the outcome");
        }
        // A failure or release may have freed an endpoint slot or queued a retry.
        self.orbit.wake_workers();
    }

    /// Runs the transfer while heartbeating its lease.
    async fn transfer(&self, job: &Job) -> Result<Ended> {
        let orbit = &self.orbit;
        // A job stored before the limits were lowered (or by a process with higher ones)
        // must not be able to exhaust this one.
        orbit.options().limits.check_spec(&job.spec, "spec")?;
        let source = self.endpoint(&job.spec.source).await?;
        let destination = self.endpoint(&job.spec.destination).await?;
        orbit.apply_bandwidth(&source).await;
        orbit.apply_bandwidth(&destination).await;
        let now = chrono::DateTime::from_timestamp_millis(job.created_at)
            .unwrap_or_else(chrono::Utc::now);
        // A spec that leaves parallelism open gets the backends' default, within the
        // limits of this process.
        let limits = &orbit.options().limits;
        let bounded = limits.bound_default_parallelism(&job.spec, &source, &destination);
        let spec = bounded.as_ref().unwrap_or(&job.spec);
        let transfer = TransferJob::start(orbit.rclone(), spec, &source, &destination, now)
            .instrument(tracing::debug_span!("transfer_start"))
            .await?;
        let canceller = transfer.canceller();
        let mut warnings = transfer.warnings().to_vec();
        locked(&self.board).insert(job.id, (self.id.clone(), transfer.progress_receiver()));
        let _on_board = OnBoard(&self.board, job.id);
        let landed = transfer.destination_path.clone();
        let lease = orbit.options().lease;
        let mut heartbeat = tokio::time::interval(lease / 3);
        heartbeat.tick().await;
        let wait = transfer
            .wait()
            .instrument(tracing::debug_span!("transfer_wait"));
        tokio::pin!(wait);
        let mut lease_lost = false;
        let mut released = false;
        let mut stopping = false;
        let mut release = self.released.clone();
        loop {
            tokio::select! {
                result = &mut wait => {
                    return match result {
                        _ if lease_lost => Ok(Ended::LeaseLost),
                        Ok(progress) => Ok(Ended::Done {
                            bytes: progress.bytes,
                            files: progress.files,
                            warnings: std::mem::take(&mut warnings),
                        }),
                        Err(_) if released => Ok(Ended::Released),
                        Err(err) => {
                            if self.moved_by_a_lost_attempt(job, &destination, &landed, &err).await {
                                Ok(Ended::Done { bytes: 0, files: 0, warnings: Vec::new() })
                            } else {
                                Err(err)
                            }
                        }
                    };
                }
                // Only a sent release counts (an error means the handle was dropped).
                Ok(()) = release.changed(), if !stopping => {
                    released = true;
                    stopping = true;
                    if let Err(err) = canceller.cancel().await {
                        tracing::warn!(%err, "could not stop the transfer");
                    }
                }
                _ = heartbeat.tick(), if !stopping => {
                    match orbit.store().heartbeat(job.id, &self.id, lease).await {
                        Ok(LeaseStatus::Held) => {}
                        Ok(LeaseStatus::CancelRequested) => stopping = true,
                        Ok(LeaseStatus::Lost) => {
                            lease_lost = true;
                            stopping = true;
                        }
                        Err(err) => tracing::warn!(%err, "heartbeat failed"),
                    }
                    if stopping {
                        if let Err(err) = canceller.cancel().await {
                            tracing::warn!(%err, "could not stop the transfer");
                        }
                    }
                }
            }
        }
    }

    /// The endpoint `name` as read for this job's batch, else from the store (whose error,
    /// e.g. that no such endpoint exists, is the job's).
    async fn endpoint(&self, name: &str) -> Result<Endpoint> {
        match self.endpoints.get(name) {
            Some(endpoint) => Ok(endpoint.clone()),
            None => self.orbit.endpoint(name).await,
        }
    }

    /// Whether `err` (a missing source) only means that an earlier attempt of this
    /// one-file move did the work: its outcome was lost (the worker crashed or was cut off
    /// from the store before recording it), the source is gone and the destination holds
    /// the file. Such a job is recorded as succeeded instead of dying on its own success.
    async fn moved_by_a_lost_attempt(
        &self,
        job: &Job,
        destination: &Endpoint,
        landed: &str,
        err: &Error,
    ) -> bool {
        if err.kind != ErrorKind::NotFound
            || job.spec.mode != TransferMode::Move
            || job.spec.scope != Scope::File
            || job.attempts < 2
        {
            return false;
        }
        let store = self.orbit.store();
        match store.attempt_outcome(job.id, job.attempts - 1).await {
            Ok(Some(outcome)) if outcome == "lost" => {}
            Ok(_) => return false,
            Err(check) => {
                tracing::warn!(%check, "could not read the previous attempt");
                return false;
            }
        }
        match file_exists(self.orbit.rclone(), destination, landed).await {
            Ok(true) => {
                tracing::info!(
                    previous = job.attempts - 1,
                    "source gone and destination present: the lost attempt moved the file"
                );
                true
            }
            Ok(false) => false,
            Err(check) => {
                tracing::warn!(%check, "could not look for the moved file");
                false
            }
        }
    }
}
