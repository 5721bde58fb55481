//! What the agent's tasks share: the control-plane client, the board of running jobs,
//! rclone, the limits, and whether the control plane refuses the credential (leasing stops
//! then, and hello is retried every `REFUSED_HELLO_EVERY`).

use super::client::AgentClient;
use super::slot::{Board, Stop};
use crate::engine::Limits;
use crate::rclone::Rclone;
use std::time::Duration;
use tokio::sync::watch;

/// How often a refused agent says hello again (an admin may enrol it anew).
pub(super) const REFUSED_HELLO_EVERY: Duration = Duration::from_secs(30);

/// What the agent's tasks share.
pub(super) struct Shared {
    pub(super) client: AgentClient,
    pub(super) board: Board,
    pub(super) rclone: &'static Rclone,
    pub(super) limits: Limits,
    /// True while the control plane refuses the credential.
    pub(super) refused: watch::Sender<bool>,
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
