//! The agent's recurring calls besides leasing: `hello` every third of a lease (every
//! 30 s once the credential is refused), `report` of the running jobs' progress every
//! `report_ms` (stopping those the control plane cancels or took back), and the outcomes
//! sender, which batches what the slots finished and retries for up to half a lease.

use super::client::is_credential_refused;
use super::protocol::{AgentAbout, Hello, LeaseState, Outcome};
use super::runner::Shared;
use super::slot::Stop;
use backon::{ExponentialBuilder, Retryable};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How often a refused agent says hello, to learn when it is accepted again.
pub(super) const REFUSED_HELLO_EVERY: Duration = Duration::from_secs(30);

/// The most outcomes sent in one call.
pub(super) const OUTCOME_BATCH: usize = 64;

/// Says hello every `every` (every `REFUSED_HELLO_EVERY` while the credential is
/// refused), until aborted.
pub(super) async fn keep_saying_hello(shared: Arc<Shared>, about: AgentAbout, every: Duration) {
    let hello = Hello {
        about,
        started: false,
    };
    let mut failures = 0u32;
    loop {
        let pause = match shared.is_refused() {
            true => REFUSED_HELLO_EVERY,
            false => every,
        };
        tokio::time::sleep(pause).await;
        match shared.client.hello(&hello).await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(failures, "hello answered again");
                    failures = 0;
                }
                shared.credential_accepted();
            }
            Err(err) if is_credential_refused(&err) => shared.credential_refused(),
            Err(err) => {
                failures += 1;
                tracing::warn!(%err, failures, "hello failed");
            }
        }
    }
}

/// Every `every`, reports the running jobs' progress (which renews their leases) and
/// stops those whose lease is cancelled or lost, until aborted.
pub(super) async fn keep_reporting(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tick.tick().await;
        if shared.is_refused() {
            continue;
        }
        let running = shared.board.running(crate::engine::now_ms());
        if running.is_empty() {
            continue;
        }
        match shared.client.report(running).await {
            Ok(reply) => {
                if failures > 0 {
                    tracing::info!(failures, "reports answered again");
                    failures = 0;
                }
                for job in reply.jobs {
                    match job.status {
                        LeaseState::Held => {}
                        LeaseState::CancelRequested => shared.board.stop(job.job_id, Stop::Cancel),
                        LeaseState::Lost => shared.board.stop(job.job_id, Stop::Lost),
                    }
                }
            }
            Err(err) if is_credential_refused(&err) => shared.credential_refused(),
            Err(err) => {
                failures += 1;
                // Once a second while the control plane is away: the first and then one
                // in a minute or so.
                if failures == 1 || failures % 60 == 0 {
                    tracing::warn!(%err, failures, "reporting progress failed");
                }
            }
        }
    }
}

/// Sends the outcomes the slots send, up to `OUTCOME_BATCH` a call, each call retried
/// (when retrying can help) for up to `patience`; returns when every sender is gone and
/// all is sent. An outcome not sent is not lost: its lease expires and the job runs again.
pub(super) async fn send_outcomes(
    shared: Arc<Shared>,
    mut outcomes: mpsc::UnboundedReceiver<Sent>,
    patience: Duration,
) {
    let mut pending = Vec::with_capacity(OUTCOME_BATCH);
    while outcomes.recv_many(&mut pending, OUTCOME_BATCH).await > 0 {
        let retries = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(patience));
        let (batch, acks): (Vec<Outcome>, Vec<oneshot::Sender<()>>) =
            std::mem::take(&mut pending).into_iter().unzip();
        let sent = (|| shared.client.outcomes(batch.clone()))
            .retry(retries)
            .when(|err| err.retryable)
            .notify(|err, after| {
                tracing::warn!(outcomes = batch.len(), %err, ?after, "sending outcomes failed; retrying");
            })
            .await;
        match sent {
            Ok(reply) => {
                for refused in reply.refused {
                    tracing::info!(
                        job = refused.job_id,
                        reason = %refused.reason,
                        "outcome refused: the lease is no longer this slot's"
                    );
                }
            }
            Err(err) if is_credential_refused(&err) => shared.credential_refused(),
            Err(err) => {
                tracing::warn!(outcomes = batch.len(), %err, "could not send outcomes; their jobs run again once the leases expire");
            }
        }
        // Sent, refused or given up: the slots are free again.
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// An outcome on its way to the control plane, and who waits until it was sent.
pub(super) type Sent = (Outcome, oneshot::Sender<()>);
