//! One leased job on one of the agent's slots: the limits check, its endpoints' bandwidth
//! limits, the transfer with `TransferJob`, and how it ended; plus the board of running jobs the reporter reads
//! progress from and stops transfers through. It never calls the control plane itself.

use super::protocol::{Ended, LeasedJob, OutcomeError, RunningJob};
use crate::endpoint::{Endpoint, Rates};
use crate::engine::{JobProgress, Limits};
use crate::error::{ErrorKind, Result};
use crate::rclone::methods::OrbitBwLimit;
use crate::rclone::{Progress, Rclone};
use crate::transfer::TransferJob;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;
use tracing::Instrument;

/// Why a running transfer is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The control plane asked for a cancel: the outcome is `cancelled`.
    Cancel,
    /// The lease is gone (or the credential refused): nothing to report.
    Lost,
    /// The agent shuts down and the grace period is over: the outcome is `released`.
    Release,
}

/// A job on the board: its slot, its progress once the transfer started, and where a
/// stop is sent.
struct OnSlot {
    slot: usize,
    progress: Option<watch::Receiver<Progress>>,
    stop: watch::Sender<Option<Stop>>,
}

/// The running jobs by id.
#[derive(Default)]
pub(super) struct Board(Mutex<HashMap<i64, OnSlot>>);

impl Board {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<i64, OnSlot>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `job_id` on the board for `slot`; the receiver learns when it is to stop.
    pub(super) fn add(&self, job_id: i64, slot: usize) -> watch::Receiver<Option<Stop>> {
        let (stop, stopped) = watch::channel(None);
        let entry = OnSlot {
            slot,
            progress: None,
            stop,
        };
        self.locked().insert(job_id, entry);
        stopped
    }

    pub(super) fn remove(&self, job_id: i64) {
        self.locked().remove(&job_id);
    }

    fn show_progress(&self, job_id: i64, progress: watch::Receiver<Progress>) {
        if let Some(entry) = self.locked().get_mut(&job_id) {
            entry.progress = Some(progress);
        }
    }

    /// Every job on the board with its progress as of `now` (ms).
    pub(super) fn running(&self, now: i64) -> Vec<RunningJob> {
        let mut running: Vec<RunningJob> = self
            .locked()
            .iter()
            .map(|(job_id, entry)| RunningJob {
                job_id: *job_id,
                slot: entry.slot,
                progress: entry
                    .progress
                    .as_ref()
                    .map(|progress| JobProgress::of(&progress.borrow(), now)),
            })
            .collect();
        running.sort_by_key(|job| job.slot);
        running
    }

    /// Asks `job_id`'s transfer to stop (the first reason sent holds).
    pub(super) fn stop(&self, job_id: i64, why: Stop) {
        if let Some(entry) = self.locked().get(&job_id) {
            entry.stop.send_if_modified(|current| {
                let first = current.is_none();
                if first {
                    *current = Some(why);
                }
                first
            });
        }
    }

    /// Asks every running transfer to stop.
    pub(super) fn stop_all(&self, why: Stop) {
        let ids: Vec<i64> = self.locked().keys().copied().collect();
        for id in ids {
            self.stop(id, why);
        }
    }
}

/// Runs `job` within `limits` until it ends or `stop` says otherwise; None when there is
/// nothing to report (its lease is lost).
pub(super) async fn run_job(
    rclone: &'static Rclone,
    limits: &Limits,
    board: &Board,
    job: LeasedJob,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Option<Ended> {
    let early = *stop.borrow_and_update();
    let ended = match early {
        // Stopped before it started.
        Some(why) => Ok(stopped(why)),
        None => transfer(rclone, limits, board, &job, stop).await,
    };
    match ended {
        Ok(ended) => ended,
        Err(err) if err.kind == ErrorKind::Cancelled => Some(Ended::Cancelled),
        Err(err) => {
            tracing::info!(%err, "transfer failed");
            Some(Ended::Failed {
                error: OutcomeError::from(&err),
            })
        }
    }
}

/// What a transfer stopped for `why` reports.
fn stopped(why: Stop) -> Option<Ended> {
    match why {
        Stop::Cancel => Some(Ended::Cancelled),
        Stop::Lost => None,
        Stop::Release => Some(Ended::Released),
    }
}

async fn transfer(
    rclone: &'static Rclone,
    limits: &Limits,
    board: &Board,
    job: &LeasedJob,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Result<Option<Ended>> {
    // A job stored by a control plane with higher limits must not exhaust this host.
    limits.check_spec(&job.spec, "spec")?;
    let (source, destination) = (&job.source, &job.destination);
    let now =
        chrono::DateTime::from_timestamp_millis(job.created_at).unwrap_or_else(chrono::Utc::now);
    // A spec that leaves parallelism open gets the backends' default, within the limits.
    let bounded = limits.bound_default_parallelism(&job.spec, source, destination);
    let spec = bounded.as_ref().unwrap_or(&job.spec);
    apply_bandwidth(rclone, source).await;
    apply_bandwidth(rclone, destination).await;
    let transfer = TransferJob::start(rclone, spec, source, destination, now)
        .instrument(tracing::debug_span!("transfer_start"))
        .await?;
    let canceller = transfer.canceller();
    let mut warnings = transfer.warnings().to_vec();
    board.show_progress(job.job_id, transfer.progress_receiver());
    let wait = transfer
        .wait()
        .instrument(tracing::debug_span!("transfer_wait"));
    tokio::pin!(wait);
    let mut stopping: Option<Stop> = None;
    loop {
        tokio::select! {
            result = &mut wait => {
                return match (result, stopping) {
                    (_, Some(Stop::Lost)) => Ok(None),
                    (Ok(progress), _) => {
                        tracing::info!(bytes = progress.bytes, files = progress.files, "transfer succeeded");
                        Ok(Some(Ended::Succeeded {
                            bytes: progress.bytes,
                            files: progress.files,
                            warnings: std::mem::take(&mut warnings),
                        }))
                    }
                    (Err(_), Some(why)) => Ok(stopped(why)),
                    (Err(err), None) => Err(err),
                };
            }
            // Only a sent stop counts (an error means the board dropped the entry).
            Ok(()) = stop.changed(), if stopping.is_none() => {
                let wanted = *stop.borrow_and_update();
                if let Some(why) = wanted {
                    tracing::info!(?why, "stopping the transfer");
                    stopping = Some(why);
                    if let Err(err) = canceller.cancel().await {
                        tracing::warn!(%err, "could not stop the transfer");
                    }
                }
            }
        }
    }
}

/// Sets `endpoint`'s bandwidth limit in this process to the rates its limit (a rate or a
/// timetable, in this host's local time) sets now, or none, before one of its transfers
/// starts. A timetable's next change reaches the agent's transfers that start after it. A
/// failure is only logged: the transfer runs unthrottled rather than not at all.
async fn apply_bandwidth(rclone: &'static Rclone, endpoint: &Endpoint) {
    let rates = endpoint
        .bandwidth
        .as_ref()
        .map_or(Rates::UNLIMITED, |limit| {
            limit.rates_at(&chrono::Local::now())
        });
    let call = OrbitBwLimit {
        endpoint: Some(endpoint.name.clone()),
        upload: rates.upload.unwrap_or(0),
        download: rates.download.unwrap_or(0),
    };
    if let Err(err) = rclone.call_async(&call).await {
        tracing::warn!(endpoint = %endpoint.name, %err, "could not set the bandwidth limit");
    }
}
