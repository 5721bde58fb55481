//! Long rc calls as rclone jobs: each runs as one plain (synchronous) call on its own
//! thread, so its end is seen the moment rclone returns; its stats group (`_group`) is
//! read into a progress stream while it runs, and `job/stopgroup` cancels it.

use super::methods::{CoreStats, CoreStatsDelete, JobStopGroup, Stats};
use super::{Rclone, from_json};
use crate::error::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};
use tokio_stream::wrappers::WatchStream;
use tracing::Instrument;

/// Per-job options passed to rclone with the call.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// `_config`: rclone options for this call only, e.g. `{"Transfers": 8, "CheckSum": true}`.
    pub config: Option<Map<String, Value>>,
    /// `_filter`: rclone filter options, e.g. `{"IncludeRule": ["*.csv"], "MinSize": "1k"}`.
    pub filter: Option<Map<String, Value>>,
    /// How often progress is read from rclone once the job has run a while (before that,
    /// every tenth of the time it has run, from 5 ms). The end of the job is not polled:
    /// it is known when rclone's call returns.
    pub poll_interval: Duration,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            config: None,
            filter: None,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// A snapshot of a job's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub bytes: u64,
    pub total_bytes: u64,
    /// Files transferred so far.
    pub files: u64,
    pub total_files: u64,
    pub checks: u64,
    pub errors: u64,
    /// Bytes per second.
    pub speed: f64,
    pub eta: Option<Duration>,
    pub elapsed: Duration,
}

impl From<Stats> for Progress {
    fn from(stats: Stats) -> Self {
        Progress {
            bytes: stats.bytes,
            total_bytes: stats.total_bytes,
            files: stats.transfers,
            total_files: stats.total_transfers,
            checks: stats.checks,
            errors: stats.errors,
            speed: stats.speed,
            eta: stats
                .eta
                .filter(|eta| eta.is_finite() && *eta >= 0.0)
                .map(Duration::from_secs_f64),
            elapsed: Duration::from_secs_f64(stats.elapsed_time.max(0.0)),
        }
    }
}

/// A running rclone job whose reply is a `T`.
pub struct RcloneJob<T> {
    method: &'static str,
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    outcome: oneshot::Receiver<Result<Value>>,
    reply: PhantomData<fn() -> T>,
}

/// What the job's thread, its progress follower and its cancellers share.
struct Shared {
    client: &'static Rclone,
    method: &'static str,
    group: String,
    /// Set by `JobCanceller::cancel` (under `ended`'s lock) before it stops the job.
    stopped: AtomicBool,
    /// True once the call returned and its stats group is deleted. Held while the stats
    /// group is read, so that no read re-creates it after its deletion (rclone creates a
    /// group on first use), and while progress is published, so the final counters stay last.
    ended: Mutex<bool>,
    /// Signalled when `ended` turns true.
    ended_notify: Notify,
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn ended(&self) -> MutexGuard<'_, bool> {
        self.ended
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the group's counters into the progress stream unless the job has ended.
    fn publish_progress(&self) {
        let ended = self.ended();
        if *ended {
            return;
        }
        let stats = CoreStats {
            group: Some(self.group.clone()),
        };
        if let Ok(stats) = self.client.call(&stats) {
            self.publish(stats);
        }
    }

    fn publish(&self, stats: Stats) {
        self.progress.send_if_modified(|current| {
            let next = Progress::from(stats);
            let changed = *current != next;
            *current = next;
            changed
        });
    }

    fn cancelled(&self) -> Error {
        Error::new(
            ErrorKind::Cancelled,
            format!("rclone {}", self.method),
            "the job was stopped",
        )
    }

    /// The job's thread: the call, then its final counters, then the group is dropped.
    fn run(&self, params: Value) -> Result<Value> {
        let result = if self.stopped.load(Ordering::SeqCst) {
            Err(self.cancelled())
        } else {
            self.client.rpc(self.method, &params)
        };
        let mut ended = self.ended();
        let stats = CoreStats {
            group: Some(self.group.clone()),
        };
        if let Ok(stats) = self.client.call(&stats) {
            self.publish(stats);
        }
        let delete = CoreStatsDelete {
            group: self.group.clone(),
        };
        if let Err(err) = self.client.call(&delete) {
            tracing::debug!(%err, "could not delete an rclone stats group");
        }
        *ended = true;
        // A job stopped here ends as cancelled even when rclone reports success.
        let stopped = self.stopped.load(Ordering::SeqCst);
        drop(ended);
        self.ended_notify.notify_one();
        if stopped {
            Err(self.cancelled())
        } else {
            result
        }
    }
}

/// Stops one rclone job; see `RcloneJob::canceller`.
#[derive(Clone)]
pub struct JobCanceller {
    shared: Arc<Shared>,
}

impl JobCanceller {
    /// Stops the job unless it has already finished. A job stopped here ends as
    /// `ErrorKind::Cancelled` even when rclone reports success: a copy stopped before its
    /// first file returns no error from rclone, and must not pass for a finished copy.
    pub async fn cancel(&self) -> Result<()> {
        {
            let ended = self.shared.ended();
            if *ended {
                return Ok(());
            }
            self.shared.stopped.store(true, Ordering::SeqCst);
        }
        stop_group(&self.shared).await
    }
}

/// Asks rclone to stop the jobs of the group. A job not registered with rclone yet
/// misses it: its thread sees `stopped` before the call, or the follower asks again.
async fn stop_group(shared: &Shared) -> Result<()> {
    let stop = JobStopGroup {
        group: shared.group.clone(),
    };
    shared.client.call_async(&stop).await.map(|_| ())
}

static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);

impl<T: DeserializeOwned> RcloneJob<T> {
    pub(super) async fn start(
        client: &'static Rclone,
        method: &'static str,
        input: Value,
        options: JobOptions,
    ) -> Result<Self> {
        let Value::Object(mut params) = input else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("rclone {method}"),
                "parameters must be a JSON object",
            ));
        };
        let group = format!("file-orbit-{}", NEXT_GROUP.fetch_add(1, Ordering::Relaxed));
        params.insert("_group".into(), group.clone().into());
        if let Some(config) = options.config {
            params.insert("_config".into(), config.into());
        }
        if let Some(filter) = options.filter {
            params.insert("_filter".into(), filter.into());
        }
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (outcome_tx, outcome) = oneshot::channel();
        let shared = Arc::new(Shared {
            client,
            method,
            group,
            stopped: AtomicBool::new(false),
            ended: Mutex::new(false),
            ended_notify: Notify::new(),
            progress: progress_tx,
        });
        let runner = shared.clone();
        let span = tracing::debug_span!(parent: None, "rclone_job");
        // Its own thread, not tokio's blocking pool: a transfer may run for hours, and a
        // runtime waits for its blocking pool when it shuts down.
        super::threads::run(Box::new(move || {
            let _entered = span.enter();
            let _ = outcome_tx.send(runner.run(Value::Object(params)));
        }))
        .map_err(|err| {
            Error::new(
                ErrorKind::Library,
                format!("rclone {method}"),
                format!("could not start a thread for the job: {err}"),
            )
        })?;
        tokio::spawn(follow(shared.clone(), options.poll_interval));
        Ok(RcloneJob {
            method,
            shared,
            progress,
            outcome,
            reply: PhantomData,
        })
    }

    /// The stats group holding this job's counters.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// Progress updates: the current snapshot first, then each change until the job ends.
    pub fn progress(&self) -> WatchStream<Progress> {
        WatchStream::new(self.progress.clone())
    }

    /// A receiver of progress snapshots that outlives `wait`.
    pub fn progress_receiver(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// The latest progress snapshot.
    pub fn latest_progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Asks rclone to stop the job; `wait` then returns an `ErrorKind::Cancelled` error
    /// (or the result, if the job finished first).
    pub async fn cancel(&self) -> Result<()> {
        self.canceller().cancel().await
    }

    /// A handle that can stop the job while another task waits for it.
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller {
            shared: self.shared.clone(),
        }
    }

    /// Waits for the job to end and returns its reply.
    pub async fn wait(self) -> Result<T> {
        let output = self.outcome.await.map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                format!("rclone {}", self.method),
                "the job's thread stopped before the job ended",
            )
        })??;
        from_json(self.method, output)
    }
}

/// The first progress read comes this soon after the start.
const FIRST_POLL: Duration = Duration::from_millis(5);

/// Reads the job's progress until it ends; asks again to stop a stopped job that is still
/// running (a stop sent before rclone registered the job found nothing to stop).
async fn follow(shared: Arc<Shared>, poll_interval: Duration) {
    // Reads at a tenth of the time the job has run (5 ms at first, then up to the interval).
    let started = tokio::time::Instant::now();
    loop {
        let wait = (started.elapsed() / 10).clamp(FIRST_POLL.min(poll_interval), poll_interval);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.ended_notify.notified() => return,
        }
        if shared.stopped.load(Ordering::SeqCst) {
            if !*shared.ended() {
                if let Err(err) = stop_group(&shared).await {
                    tracing::debug!(%err, "could not stop an rclone job");
                }
            }
            continue;
        }
        let reader = shared.clone();
        let read = tokio::task::spawn_blocking(move || reader.publish_progress())
            .instrument(tracing::debug_span!("progress_read"))
            .await;
        if read.is_err() {
            return;
        }
    }
}
