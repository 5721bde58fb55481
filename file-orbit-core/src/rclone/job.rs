//! Long rc calls as rclone jobs (`_async`): one stats group per job, polled with
//! `job/status` + `core/stats` into a progress stream, cancelled with `job/stop`.

use super::methods::{AsyncJob, CoreStats, CoreStatsDelete, JobStatus, JobStop, Stats};
use super::{Rclone, error_from_message, from_json};
use crate::error::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
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
    /// every tenth of the time it has run, from 5 ms), so small jobs end without waiting.
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
    client: &'static Rclone,
    method: &'static str,
    jobid: i64,
    group: String,
    progress: watch::Receiver<Progress>,
    outcome: oneshot::Receiver<Result<Value>>,
    stopped: Arc<AtomicBool>,
    reply: PhantomData<fn() -> T>,
}

/// Stops one rclone job; see `RcloneJob::canceller`.
#[derive(Clone)]
pub struct JobCanceller {
    client: &'static Rclone,
    jobid: i64,
    stopped: Arc<AtomicBool>,
}

impl JobCanceller {
    /// Stops the job unless it has already finished. A job stopped here ends as
    /// `ErrorKind::Cancelled` even when rclone reports success: a copy stopped before its
    /// first file returns no error from rclone, and must not pass for a finished copy.
    pub async fn cancel(&self) -> Result<()> {
        let not_found = |err: &Error| err.kind == ErrorKind::NotFound;
        match self
            .client
            .call_async(&JobStatus { jobid: self.jobid })
            .await
        {
            Ok(status) if status.finished => return Ok(()),
            Ok(_) => {}
            // The job already finished and expired: nothing left to stop.
            Err(err) if not_found(&err) => return Ok(()),
            Err(err) => return Err(err),
        }
        self.stopped.store(true, Ordering::SeqCst);
        match self.client.call_async(&JobStop { jobid: self.jobid }).await {
            Ok(_) => Ok(()),
            Err(err) if not_found(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }
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
        params.insert("_async".into(), true.into());
        params.insert("_group".into(), group.clone().into());
        if let Some(config) = options.config {
            params.insert("_config".into(), config.into());
        }
        if let Some(filter) = options.filter {
            params.insert("_filter".into(), filter.into());
        }
        let reply = client
            .rpc_async(method, params.into())
            .instrument(tracing::debug_span!("rclone_job_start"))
            .await?;
        let AsyncJob { jobid } = from_json(method, reply)?;
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (outcome_tx, outcome) = oneshot::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        tokio::spawn(follow(
            client,
            Followed {
                method,
                jobid,
                group: group.clone(),
                stopped: stopped.clone(),
            },
            options.poll_interval,
            progress_tx,
            outcome_tx,
        ));
        Ok(RcloneJob {
            client,
            method,
            jobid,
            group,
            progress,
            outcome,
            stopped,
            reply: PhantomData,
        })
    }

    /// rclone's id for this job.
    pub fn id(&self) -> i64 {
        self.jobid
    }

    /// The stats group holding this job's counters.
    pub fn group(&self) -> &str {
        &self.group
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
            client: self.client,
            jobid: self.jobid,
            stopped: self.stopped.clone(),
        }
    }

    /// Waits for the job to end and returns its reply.
    pub async fn wait(self) -> Result<T> {
        let output = self.outcome.await.map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                format!("rclone {}", self.method),
                "job follower stopped before the job ended",
            )
        })??;
        from_json(self.method, output)
    }
}

/// The first progress read comes this soon after the start.
const FIRST_POLL: Duration = Duration::from_millis(5);

/// The job `follow` polls.
struct Followed {
    method: &'static str,
    jobid: i64,
    group: String,
    /// Set by `JobCanceller::cancel` before it stops the job.
    stopped: Arc<AtomicBool>,
}

/// Polls the job until it ends, publishing progress; then drops its stats group.
async fn follow(
    client: &'static Rclone,
    job: Followed,
    poll_interval: Duration,
    progress: watch::Sender<Progress>,
    outcome: oneshot::Sender<Result<Value>>,
) {
    let Followed {
        method,
        jobid,
        group,
        stopped,
    } = job;
    // Polls at a tenth of the time the job has run (5 ms at first, then up to the
    // interval), so noticing the end adds at most ~10% to a short job.
    let started = tokio::time::Instant::now();
    let result = loop {
        let wait = (started.elapsed() / 10).clamp(FIRST_POLL.min(poll_interval), poll_interval);
        tokio::time::sleep(wait)
            .instrument(tracing::debug_span!("poll_sleep"))
            .await;
        let polled = tracing::debug_span!("poll_status");
        let status = match client
            .call_async(&JobStatus { jobid })
            .instrument(polled.clone())
            .await
        {
            Ok(status) => status,
            Err(err) => break Err(err),
        };
        let stats = CoreStats {
            group: Some(group.clone()),
        };
        if let Ok(stats) = client.call_async(&stats).instrument(polled).await {
            progress.send_if_modified(|current| {
                let next = Progress::from(stats);
                let changed = *current != next;
                *current = next;
                changed
            });
        }
        if status.finished {
            break if stopped.load(Ordering::SeqCst) {
                Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("rclone {method}"),
                    "the job was stopped",
                ))
            } else if status.success {
                Ok(status.output.unwrap_or(Value::Object(Map::new())))
            } else {
                Err(error_from_message(method, 500, &status.error))
            };
        }
    };
    let delete = CoreStatsDelete { group };
    if let Err(err) = client
        .call_async(&delete)
        .instrument(tracing::debug_span!("stats_delete"))
        .await
    {
        tracing::debug!(%err, "could not delete an rclone stats group");
    }
    let _ = outcome.send(result);
}
