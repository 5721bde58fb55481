//! In-process workers: lease a job, run its transfer while heartbeating the lease, report
//! the outcome. A lost lease or a cancel request stops the transfer; shutdown stops
//! leasing and lets running transfers finish, or after a grace period stops them and
//! hands their jobs back to the queue.

use super::Orbit;
use super::queue::{Job, LeaseStatus};
use crate::error::{ErrorKind, Result};
use crate::transfer::TransferJob;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Running workers; `shutdown` stops them (so does dropping this handle, after their
/// current jobs).
pub struct Workers {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// How long released transfers get to stop and record the release.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

impl Workers {
    pub(super) fn start(orbit: Orbit, count: usize) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(false);
        let base = format!("{}-{}", hostname(), std::process::id());
        let handles = (0..count)
            .map(|index| {
                let worker = Worker {
                    orbit: orbit.clone(),
                    id: format!("{base}-w{index}"),
                    released: released.clone(),
                };
                tokio::spawn(worker.run(stopped.clone()))
            })
            .collect();
        Workers {
            stop,
            release,
            handles,
        }
    }

    /// Stops leasing new jobs and waits for running transfers to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }

    /// Stops leasing new jobs and gives running transfers `grace` to end; then stops the
    /// rest and puts their jobs back in the queue at once (the interrupted attempt does not
    /// count against `max_attempts`), so another worker takes them without waiting for the
    /// lease to expire. True when everything finished within the grace period.
    pub async fn shutdown_within(mut self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let all = join_all_handles(&mut self.handles);
        if tokio::time::timeout(grace, all).await.is_ok() {
            return true;
        }
        let _ = self.release.send(true);
        let all = join_all_handles(&mut self.handles);
        let _ = tokio::time::timeout(RELEASE_WAIT, all).await;
        false
    }
}

/// Waits for every handle (each is polled to completion once).
async fn join_all_handles(handles: &mut [JoinHandle<()>]) {
    for handle in handles.iter_mut() {
        if !handle.is_finished() {
            let _ = handle.await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

struct Worker {
    orbit: Orbit,
    id: String,
    /// Set when shutdown's grace period is over: stop the transfer, release the job.
    released: watch::Receiver<bool>,
}

/// How a transfer ended for its worker.
enum Ended {
    Done {
        bytes: u64,
        files: u64,
    },
    /// Another worker holds the job now: nothing to report.
    LeaseLost,
    /// Stopped at shutdown: the job goes back to the queue.
    Released,
}

impl Worker {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let options = self.orbit.options().clone();
        let mut new_work = self.orbit.new_work();
        while !*stopped.borrow() {
            // Seen before leasing: work submitted after this makes `changed` return at once.
            new_work.borrow_and_update();
            match self
                .orbit
                .store()
                .lease(&self.id, options.lease, options.aging)
                .await
            {
                Ok(Some(job)) => {
                    self.execute(job).await;
                    // A success may have queued a chain's next hop or freed an endpoint slot.
                    self.orbit.wake_workers();
                }
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(options.poll_interval) => {}
                        _ = new_work.changed() => {}
                        _ = stopped.changed() => break,
                    }
                }
                Err(err) => {
                    tracing::warn!(worker = %self.id, %err, "leasing failed");
                    tokio::select! {
                        _ = tokio::time::sleep(options.poll_interval * 5) => {}
                        _ = stopped.changed() => break,
                    }
                }
            }
        }
    }

    #[tracing::instrument(skip_all, fields(job = job.id, worker = %self.id))]
    async fn execute(&self, job: Job) {
        let store = self.orbit.store();
        let outcome = self.transfer(&job).await;
        let reported = match outcome {
            Ok(Ended::Done { bytes, files }) => {
                tracing::info!(bytes, files, "transfer succeeded");
                store
                    .complete(job.id, &self.id, bytes, files)
                    .await
                    .map(|_| ())
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
    }

    /// Runs the transfer while heartbeating its lease.
    async fn transfer(&self, job: &Job) -> Result<Ended> {
        let orbit = &self.orbit;
        let source = orbit.endpoint(&job.spec.source).await?;
        let destination = orbit.endpoint(&job.spec.destination).await?;
        let now = chrono::DateTime::from_timestamp_millis(job.created_at)
            .unwrap_or_else(chrono::Utc::now);
        let transfer =
            TransferJob::start(orbit.rclone(), &job.spec, &source, &destination, now).await?;
        let canceller = transfer.canceller();
        let lease = orbit.options().lease;
        let mut heartbeat = tokio::time::interval(lease / 3);
        heartbeat.tick().await;
        let wait = transfer.wait();
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
                        Ok(progress) => Ok(Ended::Done { bytes: progress.bytes, files: progress.files }),
                        Err(_) if released => Ok(Ended::Released),
                        Err(err) => Err(err),
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
}
