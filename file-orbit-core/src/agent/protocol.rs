//! The agent protocol's messages (the wire contract of issue #17, `AGENTS.md`), as the
//! agent sends and reads them; they (de)serialise both ways so the control plane can use
//! the same types. Data only: no I/O, no policy.

use crate::endpoint::Endpoint;
use crate::engine::JobProgress;
use crate::error::Error;
use crate::transfer::TransferSpec;
use serde::{Deserialize, Serialize};

/// The backends an agent of this build can run.
pub const BACKENDS: [&str; 4] = ["local", "s3", "sftp", "smb"];

/// `POST /api/v1/agent/enrol`: a one-time token exchanged for the agent's credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub token: String,
    #[serde(flatten)]
    pub about: AgentAbout,
}

/// What the control plane answers an enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolReply {
    pub name: String,
    pub credential: String,
}

/// What an agent says about itself at enrolment and in every hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAbout {
    pub host: String,
    pub version: String,
    pub slots: usize,
    pub backends: Vec<String>,
}

impl AgentAbout {
    /// This process: its host name, File Orbit's version, `slots` and `BACKENDS`.
    pub fn this_process(slots: usize) -> AgentAbout {
        AgentAbout {
            host: crate::engine::host_name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            slots,
            backends: BACKENDS.iter().map(|b| b.to_string()).collect(),
        }
    }
}

/// `POST /api/v1/agent/hello`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    #[serde(flatten)]
    pub about: AgentAbout,
    /// True once per process start: the control plane returns every lease the agent
    /// still holds to the queue.
    pub started: bool,
}

/// What the control plane answers a hello: who the agent is and its cadences.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloReply {
    pub name: String,
    pub labels: Vec<String>,
    pub lease_secs: u64,
    pub report_ms: u64,
}

/// `POST /api/v1/agent/lease`: the free slots and how long to wait for work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub slots: Vec<usize>,
    pub wait_ms: u64,
}

/// The jobs leased to free slots (empty after the wait).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseReply {
    pub jobs: Vec<LeasedJob>,
}

/// One job leased to one slot, with the full configs of its two endpoints (secrets
/// included: the control plane serialises them under `with_secrets_revealed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedJob {
    pub slot: usize,
    pub job_id: i64,
    pub attempt: i64,
    pub created_at: i64,
    pub spec: TransferSpec,
    pub source: Endpoint,
    pub destination: Endpoint,
}

/// `POST /api/v1/agent/report`: the running jobs and their progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequest {
    pub running: Vec<RunningJob>,
}

/// One running job in a report; progress is null before its first stats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningJob {
    pub job_id: i64,
    pub slot: usize,
    pub progress: Option<JobProgress>,
}

/// What the control plane answers a report: each job's lease status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportReply {
    pub jobs: Vec<JobLeaseStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLeaseStatus {
    pub job_id: i64,
    pub status: LeaseState,
}

/// A reported job's lease: still this agent's, to stop (cancel requested), or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    Held,
    CancelRequested,
    Lost,
}

/// `POST /api/v1/agent/outcomes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutcomesRequest {
    pub outcomes: Vec<Outcome>,
}

/// How one leased job ended on its slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub job_id: i64,
    pub slot: usize,
    #[serde(flatten)]
    pub ended: Ended,
}

/// The end of a job on an agent (`"outcome": "succeeded" | "failed" | ...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Ended {
    Succeeded {
        bytes: u64,
        files: u64,
        warnings: Vec<String>,
    },
    Failed {
        error: OutcomeError,
    },
    /// Stopped after the control plane asked for a cancel.
    Cancelled,
    /// Stopped at the agent's shutdown: back to the queue, the attempt does not count.
    Released,
}

/// A failed transfer's error: its kind (`ErrorKind` as named, e.g. `NotFound`), what it
/// says, and whether another attempt may succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeError {
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}

impl From<&Error> for OutcomeError {
    fn from(err: &Error) -> OutcomeError {
        OutcomeError {
            kind: err.kind.as_str().to_string(),
            message: err.to_string(),
            retryable: err.retryable,
        }
    }
}

/// What the control plane answers outcomes: those recorded, and those refused because
/// the slot no longer holds the job's lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutcomesReply {
    pub recorded: Vec<i64>,
    pub refused: Vec<RefusedOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedOutcome {
    pub job_id: i64,
    pub reason: String,
}
