//! The work of agents as the control plane sees it: leasing jobs for an agent's free slots
//! (only jobs whose endpoints are placed where it may run them, each with the two endpoints
//! it uses, credentials unsealed), its progress reports (which renew the leases and tell
//! it of cancels and lost leases) and the outcomes it reports. Each call acts only on the
//! leases of the agent's own slots: a credential cannot reach another agent's jobs.

use super::Orbit;
use super::agents::{AgentIdentity, MAX_AGENT_SLOTS};
use super::queue::{Completion, JobProgress, LeaseStatus, endpoint_names};
use crate::endpoint::reach_tokens;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::with_secrets_revealed;
use crate::transfer::TransferSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job leased to an agent's slot, with what it needs to run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedJob {
    pub slot: u32,
    pub job_id: i64,
    pub attempt: i64,
    pub created_at: i64,
    pub spec: TransferSpec,
    /// The job's two endpoints, credentials included (serialized with secrets revealed).
    pub source: Value,
    pub destination: Value,
}

/// A running job's progress as an agent reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningReport {
    pub job_id: i64,
    pub slot: u32,
    #[serde(default)]
    pub progress: Option<JobProgress>,
}

/// What the control plane answers a report with, per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunningStatus {
    Held,
    CancelRequested,
    Lost,
}

/// The status of one reported job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportAnswer {
    pub job_id: i64,
    pub status: RunningStatus,
}

/// How an agent's run of a job ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentOutcome {
    Succeeded {
        job_id: i64,
        slot: u32,
        bytes: u64,
        files: u64,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Failed {
        job_id: i64,
        slot: u32,
        error: AgentError,
    },
    Cancelled {
        job_id: i64,
        slot: u32,
    },
    Released {
        job_id: i64,
        slot: u32,
    },
}

/// A failed transfer's error as an agent reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentError {
    /// `ErrorKind::as_str`, e.g. `NotFound`.
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}

impl AgentError {
    fn to_error(&self, agent: &str) -> Error {
        let kind = ErrorKind::parse(&self.kind).unwrap_or(ErrorKind::Remote);
        let message: String = self.message.chars().take(MAX_ERROR_CHARS).collect();
        Error::new(kind, format!("agent {agent}"), message).with_retryable(self.retryable)
    }
}

/// The longest error message an agent may store with a job.
const MAX_ERROR_CHARS: usize = 4096;

impl AgentOutcome {
    pub fn job_id(&self) -> i64 {
        match self {
            AgentOutcome::Succeeded { job_id, .. }
            | AgentOutcome::Failed { job_id, .. }
            | AgentOutcome::Cancelled { job_id, .. }
            | AgentOutcome::Released { job_id, .. } => *job_id,
        }
    }

    fn slot(&self) -> u32 {
        match self {
            AgentOutcome::Succeeded { slot, .. }
            | AgentOutcome::Failed { slot, .. }
            | AgentOutcome::Cancelled { slot, .. }
            | AgentOutcome::Released { slot, .. } => *slot,
        }
    }
}

/// An outcome the control plane did not record, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedOutcome {
    pub job_id: i64,
    pub reason: String,
}

/// What the control plane did with a batch of outcomes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutcomesAnswer {
    pub recorded: Vec<i64>,
    pub refused: Vec<RefusedOutcome>,
}

/// The most jobs one report or one batch of outcomes may carry.
pub const MAX_AGENT_BATCH: usize = MAX_AGENT_SLOTS as usize;

/// Checks a slot number; the error names `field`.
fn check_slot(slot: u32, field: &str) -> Result<()> {
    match slot < MAX_AGENT_SLOTS {
        true => Ok(()),
        false => Err(Error::invalid_field(
            "agent",
            field,
            format!("{slot} is not a slot (0-{})", MAX_AGENT_SLOTS - 1),
        )),
    }
}

fn check_batch(len: usize, field: &str) -> Result<()> {
    match len <= MAX_AGENT_BATCH {
        true => Ok(()),
        false => Err(Error::invalid_field(
            "agent",
            field,
            format!("at most {MAX_AGENT_BATCH} entries, not {len}"),
        )),
    }
}

impl Orbit {
    /// Leases up to one job per slot in `slots` for `agent` (no waiting), each with its two
    /// endpoints. A job whose endpoints cannot be read is failed here, not handed out.
    pub async fn lease_for_agent(
        &self,
        agent: &AgentIdentity,
        slots: &[u32],
    ) -> Result<Vec<LeasedJob>> {
        check_batch(slots.len(), "slots")?;
        slots
            .iter()
            .try_for_each(|slot| check_slot(*slot, "slots"))?;
        let mut distinct = slots.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != slots.len() {
            return Err(Error::invalid_field(
                "agent",
                "slots",
                "each free slot once: a slot runs one job",
            ));
        }
        let owners: Vec<String> = slots.iter().map(|slot| agent.owner(*slot)).collect();
        let options = self.options();
        let jobs = self
            .store()
            .lease_many_reaching(
                &owners,
                options.lease,
                options.aging,
                &reach_tokens(&agent.name, &agent.labels),
            )
            .await?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let endpoints = self.endpoints_named(&endpoint_names(&jobs)).await?;
        let mut leased = Vec::with_capacity(jobs.len());
        for job in jobs {
            let owner = job.lease_owner.clone().unwrap_or_default();
            let slot = slots[owners.iter().position(|o| *o == owner).unwrap_or(0)];
            let side = |name: &str| -> Result<Value> {
                let endpoint = endpoints.get(name).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        "running a job",
                        format!("no endpoint named {name:?}"),
                    )
                })?;
                with_secrets_revealed(|| serde_json::to_value(endpoint)).map_err(|err| {
                    Error::new(ErrorKind::Protocol, "leasing to an agent", err.to_string())
                })
            };
            match side(&job.spec.source).and_then(|s| Ok((s, side(&job.spec.destination)?))) {
                Ok((source, destination)) => leased.push(LeasedJob {
                    slot,
                    job_id: job.id,
                    attempt: job.attempts,
                    created_at: job.created_at,
                    spec: job.spec,
                    source,
                    destination,
                }),
                Err(err) => {
                    self.store().fail(job.id, &owner, &err).await?;
                }
            }
        }
        Ok(leased)
    }

    /// Puts back in the queue the jobs still leased to slots `agent` says are free: leases
    /// whose answer never reached it (a timeout, a failover), which would otherwise wait for
    /// their expiry. As a release: the attempt does not count.
    pub async fn release_free_slots(&self, agent: &AgentIdentity, slots: &[u32]) -> Result<()> {
        let free: Vec<String> = slots.iter().map(|slot| agent.owner(*slot)).collect();
        for (id, owner) in self.store().agent_leases(Some(&agent.name)).await? {
            if free.contains(&owner) {
                tracing::info!(job = id, %owner, "a free slot still held the job: released");
                self.store().release(id, &owner).await?;
            }
        }
        Ok(())
    }

    /// Renews the leases of `agent`'s running jobs, stores their progress, and says of each
    /// whether it is still held, asked to cancel, or lost.
    pub async fn agent_report(
        &self,
        agent: &AgentIdentity,
        running: &[RunningReport],
    ) -> Result<Vec<ReportAnswer>> {
        check_batch(running.len(), "running")?;
        let mut answers = Vec::with_capacity(running.len());
        let mut progress = Vec::new();
        for report in running {
            check_slot(report.slot, "running.slot")?;
            let owner = agent.owner(report.slot);
            let status = match self
                .store()
                .heartbeat(report.job_id, &owner, self.options().lease)
                .await?
            {
                LeaseStatus::Held => RunningStatus::Held,
                LeaseStatus::CancelRequested => RunningStatus::CancelRequested,
                LeaseStatus::Lost => RunningStatus::Lost,
            };
            if let (RunningStatus::Held, Some(now)) = (status, &report.progress) {
                progress.push((report.job_id, owner, now.clone()));
            }
            answers.push(ReportAnswer {
                job_id: report.job_id,
                status,
            });
        }
        self.store().record_progress(&progress).await?;
        Ok(answers)
    }

    /// Records the outcomes `agent` reports (successes in one transaction); an outcome for
    /// a lease the slot no longer holds is refused, not recorded.
    pub async fn agent_outcomes(
        &self,
        agent: &AgentIdentity,
        outcomes: &[AgentOutcome],
    ) -> Result<OutcomesAnswer> {
        check_batch(outcomes.len(), "outcomes")?;
        outcomes
            .iter()
            .try_for_each(|outcome| check_slot(outcome.slot(), "outcomes.slot"))?;
        let store = self.store();
        let mut answer = OutcomesAnswer::default();
        let mut successes = Vec::new();
        let lost = |job_id| RefusedOutcome {
            job_id,
            reason: "the lease is no longer this slot's (expired, cancelled or revoked)".into(),
        };
        for outcome in outcomes {
            let (id, owner) = (outcome.job_id(), agent.owner(outcome.slot()));
            let held = match outcome {
                AgentOutcome::Succeeded {
                    bytes,
                    files,
                    warnings,
                    ..
                } => {
                    if !warnings.is_empty() {
                        store.record_warnings(id, &owner, warnings).await?;
                    }
                    successes.push(Completion {
                        id,
                        worker: owner,
                        bytes: *bytes,
                        files: *files,
                    });
                    continue;
                }
                AgentOutcome::Failed { error, .. } => store
                    .fail(id, &owner, &error.to_error(&agent.name))
                    .await?
                    .is_some(),
                AgentOutcome::Cancelled { .. } => store.cancelled(id, &owner).await?,
                AgentOutcome::Released { .. } => store.release(id, &owner).await?,
            };
            match held {
                true => answer.recorded.push(id),
                false => answer.refused.push(lost(id)),
            }
        }
        let recorded = store.complete_many(&successes).await?;
        for (success, recorded) in successes.iter().zip(recorded) {
            match recorded {
                true => answer.recorded.push(success.id),
                false => answer.refused.push(lost(success.id)),
            }
        }
        self.wake_workers();
        Ok(answer)
    }
}
