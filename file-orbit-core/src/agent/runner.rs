//! The worker service in agent mode: starts rclone, obtains the credential (enrolling if
//! needed), says hello, then leases jobs for its free slots through the control plane and
//! runs each in its slot until shutdown; then stops leasing, gives running transfers the
//! grace period and releases the rest. It never opens a store: everything goes through
//! the `AgentClient`.

use super::cadence::{REFUSED_HELLO_EVERY, Sent, keep_reporting, keep_saying_hello, send_outcomes};
use super::client::{AgentClient, is_credential_refused};
use super::config::AgentConfig;
use super::credential;
use super::protocol::{AgentAbout, Ended, Hello, HelloReply, LeasedJob, Outcome};
use super::slot::{Board, Stop, run_job};
use crate::engine::Limits;
use crate::error::{Error, ErrorKind, Result};
use crate::rclone::Rclone;
use crate::worker::WorkerConfig;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

/// How long released transfers get to stop once the grace period is over.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// The longest wait between failed calls in a row: the control plane may be failing
/// over, and work resumes within this once it is back.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The shortest time between two lease calls that came back empty (a control plane that
/// answers at once instead of waiting is not called in a tight loop).
const MIN_EMPTY_LEASE: Duration = Duration::from_secs(1);

/// What the agent's tasks share.
pub(super) struct Shared {
    pub(super) client: AgentClient,
    pub(super) board: Board,
    rclone: &'static Rclone,
    limits: Limits,
    /// True while the control plane refuses the credential.
    refused: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn is_refused(&self) -> bool {
        *self.refused.borrow()
    }

    /// The control plane refused the credential: logged once, leasing stops, running
    /// transfers stop (their jobs went back to the queue with the revocation).
    pub(super) fn credential_refused(&self) {
        let first = self
            .refused
            .send_if_modified(|refused| !std::mem::replace(refused, true));
        if first {
            tracing::error!(
                "credential refused: revoked? no more jobs are leased; hello is retried every {}s",
                REFUSED_HELLO_EVERY.as_secs()
            );
            self.board.stop_all(Stop::Lost);
        }
    }

    /// A call with the credential succeeded: leasing resumes if it had stopped.
    pub(super) fn credential_accepted(&self) {
        if self
            .refused
            .send_if_modified(|refused| std::mem::replace(refused, false))
        {
            tracing::info!("credential accepted again: leasing resumes");
        }
    }
}

/// Waits between failed calls in a row: from 100 ms, doubling with jitter, up to 5 s.
fn retries() -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(MAX_RETRY)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs the worker service in agent mode (`config.agent`) until `shutdown` resolves,
/// then stops leasing and waits up to `shutdown_grace_secs` for running transfers. True
/// when they all finished in time; otherwise they are stopped and released to the queue.
pub async fn run(config: &WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<bool> {
    config.validate()?;
    let agent = config.agent.as_ref().ok_or_else(|| {
        Error::invalid_field(
            "worker configuration",
            "agent",
            "agent mode needs an [agent] section",
        )
    })?;
    let (stop, stopped) = watch::channel(false);
    let work = serve(config, agent, stopped);
    tokio::pin!(work);
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut work => result,
        () = &mut shutdown => {
            let _ = stop.send(true);
            work.await
        }
    }
}

async fn serve(
    config: &WorkerConfig,
    agent: &AgentConfig,
    mut stopped: watch::Receiver<bool>,
) -> Result<bool> {
    let client = AgentClient::new(agent)?;
    let rclone = tokio::task::spawn_blocking(Rclone::global)
        .await
        .map_err(|err| Error::new(ErrorKind::Library, "starting rclone", err.to_string()))??;
    let about = AgentAbout::this_process(config.workers);
    let shared = Arc::new(Shared {
        client,
        board: Board::default(),
        rclone,
        limits: config.limits,
        refused: watch::channel(false).0,
    });
    let Some(hello) = start(&shared, agent, &about, &mut stopped).await? else {
        tracing::info!("agent stopped before the control plane answered");
        return Ok(true);
    };
    tracing::info!(
        name = %hello.name,
        labels = ?hello.labels,
        slots = config.workers,
        control_plane = %shared.client.current_url(),
        "agent started"
    );
    let lease = Duration::from_secs(hello.lease_secs.max(1));
    let hellos = tokio::spawn(keep_saying_hello(shared.clone(), about, lease / 3));
    let reporter = tokio::spawn(keep_reporting(
        shared.clone(),
        Duration::from_millis(hello.report_ms.max(100)),
    ));
    let (outcomes, outbox) = mpsc::unbounded_channel();
    let sender = tokio::spawn(send_outcomes(shared.clone(), outbox, lease / 2));
    let mut running = dispatch(&shared, config.workers, &outcomes, stopped).await;
    tracing::info!("stopping: no new jobs; waiting for running transfers");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let clean = tokio::time::timeout(grace, finish(&mut running))
        .await
        .is_ok();
    if !clean {
        shared.board.stop_all(Stop::Release);
        let _ = tokio::time::timeout(RELEASE_WAIT, finish(&mut running)).await;
    }
    // Aborts whatever did not stop; its lease expires and the job runs again.
    drop(running);
    drop(outcomes);
    let _ = sender.await;
    reporter.abort();
    hellos.abort();
    tracing::info!(clean, "agent stopped");
    Ok(clean)
}

/// Waits for every slot in `running` to end.
async fn finish(running: &mut JoinSet<usize>) {
    while running.join_next().await.is_some() {}
}

/// The credential (enrolling if needed) and the first hello (`started: true`), each call
/// retried while the control plane is unreachable and, for a refused credential, every
/// 30 s; None when shutdown came first.
async fn start(
    shared: &Shared,
    agent: &AgentConfig,
    about: &AgentAbout,
    stopped: &mut watch::Receiver<bool>,
) -> Result<Option<HelloReply>> {
    let client = &shared.client;
    let obtained = persist(stopped, || credential::obtain(client, agent, about)).await;
    if obtained.transpose()?.is_none() {
        return Ok(None);
    }
    let hello = Hello {
        about: about.clone(),
        started: true,
    };
    loop {
        match persist(stopped, || client.hello(&hello)).await {
            Some(Ok(reply)) => {
                shared.credential_accepted();
                return Ok(Some(reply));
            }
            Some(Err(err)) if is_credential_refused(&err) => {
                shared.credential_refused();
                tokio::select! {
                    _ = tokio::time::sleep(REFUSED_HELLO_EVERY) => {}
                    _ = stopped.changed() => return Ok(None),
                }
            }
            Some(Err(err)) => return Err(err),
            None => return Ok(None),
        }
    }
}

/// `call` until it succeeds or fails for good (retrying errors that are retryable, with
/// backoff); None when `stopped` comes first.
async fn persist<T, F, Fut>(stopped: &mut watch::Receiver<bool>, call: F) -> Option<Result<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut waits = retries();
    let mut failures = 0u32;
    loop {
        if *stopped.borrow() {
            return None;
        }
        let result = tokio::select! {
            result = call() => result,
            _ = stopped.changed() => return None,
        };
        match result {
            Err(err) if err.retryable => {
                failures += 1;
                let wait = waits.next().unwrap_or(MAX_RETRY);
                if failures == 1 || failures % 12 == 0 {
                    tracing::warn!(%err, failures, retry_in = ?wait, "control plane unreachable");
                } else {
                    tracing::debug!(%err, failures, retry_in = ?wait, "control plane unreachable");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return None,
                }
            }
            other => return Some(other),
        }
    }
}

/// Leases jobs for the free slots and runs each in its slot until `stopped`; returns the
/// slots still running.
async fn dispatch(
    shared: &Arc<Shared>,
    slots: usize,
    outcomes: &mpsc::UnboundedSender<Sent>,
    mut stopped: watch::Receiver<bool>,
) -> JoinSet<usize> {
    let mut free: Vec<usize> = (0..slots).collect();
    let mut running: JoinSet<usize> = JoinSet::new();
    let mut refused = shared.refused.subscribe();
    let mut waits = retries();
    let mut failures = 0u32;
    while !*stopped.borrow() {
        while let Some(slot) = running.try_join_next() {
            free.extend(slot);
        }
        if *refused.borrow_and_update() || free.is_empty() {
            tokio::select! {
                Some(slot) = running.join_next() => free.extend(slot),
                _ = refused.changed() => {}
                _ = stopped.changed() => break,
            }
            continue;
        }
        free.sort_unstable();
        let asked = Instant::now();
        let leased = tokio::select! {
            leased = shared.client.lease(free.clone()) => leased,
            // A lease in flight is dropped: whatever it leased returns to the queue when
            // its lease expires, or at once when this agent says hello again.
            _ = stopped.changed() => break,
        };
        let pause = match leased {
            Ok(reply) => {
                if failures > 0 {
                    tracing::info!(failures, "leasing works again");
                    failures = 0;
                    waits = retries();
                }
                let empty = reply.jobs.is_empty();
                for job in reply.jobs {
                    start_job(shared, job, &mut free, &mut running, outcomes);
                }
                (empty && asked.elapsed() < MIN_EMPTY_LEASE)
                    .then(|| MIN_EMPTY_LEASE - asked.elapsed())
            }
            Err(err) if is_credential_refused(&err) => {
                shared.credential_refused();
                None
            }
            Err(err) => {
                failures += 1;
                let wait = waits.next().unwrap_or(MAX_RETRY);
                if failures == 1 || failures % 12 == 0 {
                    tracing::warn!(%err, failures, retry_in = ?wait, "leasing failed");
                } else {
                    tracing::debug!(%err, failures, retry_in = ?wait, "leasing failed");
                }
                Some(wait)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                Some(slot) = running.join_next() => free.extend(slot),
                _ = stopped.changed() => break,
            }
        }
    }
    running
}

/// Runs `job` in its slot, which must be free; a job for a slot that is not (a control
/// plane out of step) is handed back at once.
fn start_job(
    shared: &Arc<Shared>,
    job: LeasedJob,
    free: &mut Vec<usize>,
    running: &mut JoinSet<usize>,
    outcomes: &mpsc::UnboundedSender<Sent>,
) {
    let (job_id, slot) = (job.job_id, job.slot);
    let Some(at) = free.iter().position(|free| *free == slot) else {
        tracing::warn!(
            job = job_id,
            slot,
            "leased to a slot that is not free; releasing it"
        );
        let outcome = Outcome {
            job_id,
            slot,
            ended: Ended::Released,
        };
        let _ = outcomes.send((outcome, oneshot::channel().0));
        return;
    };
    free.swap_remove(at);
    let stop = shared.board.add(job_id, slot);
    let span = tracing::info_span!("job", job = job_id, slot, attempt = job.attempt);
    let shared = shared.clone();
    let outcomes = outcomes.clone();
    running.spawn(
        async move {
            let ended = run_job(shared.rclone, &shared.limits, &shared.board, job, stop).await;
            shared.board.remove(job_id);
            if let Some(ended) = ended {
                // The slot is free once its outcome was sent: until then the control plane
                // still holds the lease, and a lease call calling the slot free would hand
                // the job back to the queue. The sender outlives every slot.
                let (sent, when_sent) = oneshot::channel();
                let _ = outcomes.send((
                    Outcome {
                        job_id,
                        slot,
                        ended,
                    },
                    sent,
                ));
                let _ = when_sent.await;
            }
            slot
        }
        .instrument(span),
    );
}
