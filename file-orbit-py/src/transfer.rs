//! `NativeTransfer`: a running `file_orbit_core::transfer::TransferJob`. A task on the
//! runtime follows it into one watch channel of numbered snapshots (progress, then the
//! outcome); Python's waiting thread asks for the next snapshot after the one it saw, with
//! the GIL released, and calls the user's progress callback itself (never a tokio thread).

use crate::errors::ErrorInfo;
use crate::{awaitable, block, runtime};
use file_orbit_core::Result as CoreResult;
use file_orbit_core::error::{Error, ErrorKind};
use file_orbit_core::rclone::{JobCanceller, Progress};
use file_orbit_core::transfer::TransferJob;
use pyo3::prelude::*;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// What the follower saw last: `seq` counts the changes.
#[derive(Clone, Default)]
struct Snapshot {
    seq: u64,
    progress: Progress,
    outcome: Option<Result<(), ErrorInfo>>,
}

/// A transfer running in this process (see the Python class `file_orbit.Transfer`).
#[pyclass(frozen, module = "file_orbit._native")]
pub struct NativeTransfer {
    state: watch::Receiver<Snapshot>,
    canceller: JobCanceller,
    /// Where the files go, relative to the destination endpoint (the rendered template).
    #[pyo3(get)]
    destination_path: String,
}

impl NativeTransfer {
    /// Follows `job` on the runtime until it ends.
    pub fn follow(job: TransferJob) -> NativeTransfer {
        let (sender, state) = watch::channel(Snapshot::default());
        let canceller = job.canceller();
        let destination_path = job.destination_path.clone();
        let mut progress = job.progress();
        runtime().spawn(async move {
            let outcome = job.wait();
            tokio::pin!(outcome);
            loop {
                tokio::select! {
                    biased;
                    result = &mut outcome => {
                        sender.send_modify(|snapshot| {
                            snapshot.seq += 1;
                            if let Ok(last) = &result {
                                snapshot.progress = last.clone();
                            }
                            snapshot.outcome = Some(result.map(|_| ()).map_err(|err| ErrorInfo::from(&err)));
                        });
                        break;
                    }
                    Some(update) = progress.next() => {
                        sender.send_modify(|snapshot| {
                            snapshot.seq += 1;
                            snapshot.progress = update;
                        });
                    }
                }
            }
        });
        NativeTransfer {
            state,
            canceller,
            destination_path,
        }
    }

    /// A handle that stops this transfer without keeping the Python object alive.
    pub fn stopper(&self) -> TransferStopper {
        TransferStopper {
            state: self.state.clone(),
            canceller: self.canceller.clone(),
        }
    }

    /// The first snapshot after `seen` (or the outcome), waiting at most `timeout`.
    fn next(
        &self,
        seen: u64,
        timeout: Duration,
    ) -> impl Future<Output = CoreResult<Update>> + use<> {
        let mut state = self.state.clone();
        async move {
            let _ = tokio::time::timeout(
                timeout,
                state.wait_for(|s| s.seq > seen || s.outcome.is_some()),
            )
            .await;
            let snapshot = state.borrow().clone();
            Ok(update(&snapshot))
        }
    }
}

/// What the orbit keeps of a transfer it started, to stop it when it closes.
pub struct TransferStopper {
    state: watch::Receiver<Snapshot>,
    canceller: JobCanceller,
}

/// How long stopping a transfer waits for rclone to report it ended.
const STOP_WAIT: Duration = Duration::from_secs(30);

impl TransferStopper {
    pub fn finished(&self) -> bool {
        self.state.borrow().outcome.is_some()
    }

    /// Cancels the transfer unless it has ended, and waits (at most `STOP_WAIT`) for it
    /// to end.
    pub async fn stop(mut self) -> CoreResult<()> {
        if self.finished() {
            return Ok(());
        }
        self.canceller.cancel().await?;
        let ended = self.state.wait_for(|snapshot| snapshot.outcome.is_some());
        match tokio::time::timeout(STOP_WAIT, ended).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::new(
                ErrorKind::Remote,
                "stopping a transfer",
                format!(
                    "it had not ended {} s after its cancel",
                    STOP_WAIT.as_secs()
                ),
            )),
        }
    }
}

/// One step of `Transfer.wait`: (seq, progress JSON, finished).
type Update = (u64, String, bool);

fn update(snapshot: &Snapshot) -> Update {
    (
        snapshot.seq,
        progress_json(&snapshot.progress),
        snapshot.outcome.is_some(),
    )
}

fn progress_json(progress: &Progress) -> String {
    json!({
        "bytes": progress.bytes,
        "total_bytes": progress.total_bytes,
        "files": progress.files,
        "total_files": progress.total_files,
        "checks": progress.checks,
        "errors": progress.errors,
        "speed": progress.speed,
        "eta": progress.eta.map(|eta| eta.as_secs_f64()),
        "elapsed": progress.elapsed.as_secs_f64(),
    })
    .to_string()
}

#[pymethods]
impl NativeTransfer {
    /// Blocks (GIL released) until a snapshot newer than `seen` or the end, at most
    /// `timeout` seconds; returns (seq, progress JSON, finished).
    fn next_update(&self, py: Python<'_>, seen: u64, timeout: f64) -> PyResult<Update> {
        block(py, self.next(seen, seconds(timeout)))
    }

    /// `next_update` as an awaitable.
    fn next_update_async<'py>(
        &self,
        py: Python<'py>,
        seen: u64,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.next(seen, seconds(timeout)))
    }

    /// The final progress JSON, or the transfer's exception; None while it runs.
    fn result(&self) -> PyResult<Option<String>> {
        let snapshot = self.state.borrow();
        match &snapshot.outcome {
            None => Ok(None),
            Some(Ok(())) => Ok(Some(progress_json(&snapshot.progress))),
            Some(Err(err)) => Err(err.to_py_err()),
        }
    }

    /// Asks rclone to stop the transfer (blocking, GIL released).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let canceller = self.canceller.clone();
        block(py, async move { canceller.cancel().await })
    }

    /// `cancel` as an awaitable.
    fn cancel_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let canceller = self.canceller.clone();
        awaitable(py, async move { canceller.cancel().await })
    }
}

/// A timeout in seconds from Python, clamped to something `Duration` takes.
fn seconds(timeout: f64) -> Duration {
    Duration::from_secs_f64(timeout.clamp(0.0, 86_400.0))
}
