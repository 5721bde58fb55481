//! The job queue on the store: submit (idempotency keys), lease (priorities with aging,
//! `run_after`, per-endpoint concurrency, expired leases), heartbeat, complete (and the
//! next hop of a chain), fail (backoff with jitter, or dead letter), cancel and retry.
//! Every state change commits with its audit record; leases and completions also come in
//! batches (`lease_many`, `complete_many`), one transaction each. This file holds the
//! types and the row mapping; the operations live in the files below.

mod checks;
mod finish;
mod lease;
mod lease_sql;
mod submit;

use super::store::{Store, db_error};
use crate::error::{Error, ErrorKind, Result};
use crate::transfer::TransferSpec;
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::time::Duration;

/// Where a job is in its life.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to run (possibly until `run_after`, after a failed attempt).
    Queued,
    /// A worker holds it until `lease_expires_at`.
    Leased,
    Succeeded,
    /// Failed permanently or ran out of attempts; `last_error` says why.
    Dead,
    Cancelled,
}

impl JobState {
    /// The state's name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub(super) fn parse(text: &str) -> Result<JobState> {
        Ok(match text {
            "queued" => JobState::Queued,
            "leased" => JobState::Leased,
            "succeeded" => JobState::Succeeded,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            other => {
                return Err(Error::new(
                    ErrorKind::Store,
                    "reading a job",
                    format!("unknown state {other:?}"),
                ));
            }
        })
    }

    /// Succeeded, dead and cancelled jobs do not change by themselves any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

/// How often and how patiently a job is retried after retryable failures.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// First delay; each later one doubles (with jitter) up to `max_delay_ms`.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 2_000,
            max_delay_ms: 300_000,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, after `attempt` failures (1-based).
    fn delay_after(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.base_delay_ms))
            .with_max_delay(Duration::from_millis(
                self.max_delay_ms.max(self.base_delay_ms),
            ))
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(Duration::from_millis(self.max_delay_ms))
            // backon adds its jitter after capping.
            .min(Duration::from_millis(
                self.max_delay_ms.max(self.base_delay_ms),
            ))
    }
}

/// A request to run a transfer.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub spec: TransferSpec,
    /// Higher runs first; waiting jobs gain one point per aging interval.
    #[serde(default)]
    pub priority: i64,
    /// The same key twice makes one job.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Transfers to run one after another once this one succeeds, each its own job.
    #[serde(default)]
    pub next_hops: Vec<TransferSpec>,
    /// The transfer template that made this request, if any.
    #[serde(default)]
    pub template: Option<String>,
}

impl JobRequest {
    pub fn new(spec: TransferSpec) -> Self {
        JobRequest {
            spec,
            priority: 0,
            idempotency_key: None,
            retry: RetryPolicy::default(),
            next_hops: Vec::new(),
            template: None,
        }
    }

    /// The request's specs with the field each is at: `spec`, then `next_hops[i]`.
    pub fn named_specs(&self) -> impl Iterator<Item = (String, &TransferSpec)> {
        let hops = self
            .next_hops
            .iter()
            .enumerate()
            .map(|(index, hop)| (format!("next_hops[{index}]"), hop));
        std::iter::once(("spec".to_string(), &self.spec)).chain(hops)
    }

    /// The field (`spec.source`, `next_hops[1].destination`) and name of the first endpoint
    /// the request names that is not among `known`: such a job would only fail when run.
    pub fn unknown_endpoint(&self, known: &[String]) -> Option<(String, String)> {
        self.named_specs().find_map(|(at, spec)| {
            [("source", &spec.source), ("destination", &spec.destination)]
                .into_iter()
                .find(|(_, name)| !known.contains(name))
                .map(|(side, name)| (format!("{at}.{side}"), name.clone()))
        })
    }
}

/// A job as stored.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub idempotency_key: Option<String>,
    pub spec: TransferSpec,
    pub template: Option<String>,
    /// The first job of the chain this job belongs to (itself when it is the first).
    pub chain_id: i64,
    pub parent_id: Option<i64>,
    pub next_hops: Vec<TransferSpec>,
    pub priority: i64,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub last_error_kind: Option<String>,
    pub bytes: i64,
    pub files: i64,
    /// The running attempt's progress, as its worker last reported it (about once a
    /// second); None before the first report and once the attempt has ended.
    pub progress: Option<JobProgress>,
    /// How often the job's worker was lost while running it (crashed, killed, cut off).
    pub lost_attempts: i64,
    /// The stored source whose event made this job (or its chain's first job); none for a
    /// job submitted directly.
    pub source_name: Option<String>,
    /// What the user should know about the transfer although it succeeded, e.g. files the
    /// destination renamed (`"new\nline.txt" arrived as "new␊line.txt"`).
    pub warnings: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// One attempt at running a job, as the store records it: who ran it, when, and how it
/// ended (`succeeded`, `failed`, `cancelled`, `lost`; none while it runs) with its error.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct JobAttempt {
    pub attempt: i64,
    pub worker: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// A running attempt's progress as stored for every node of the cluster to read.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub bytes: u64,
    pub total_bytes: u64,
    pub files: u64,
    pub total_files: u64,
    /// Bytes per second.
    pub speed: f64,
    pub eta_secs: Option<u64>,
    /// When the worker read it (ms since the epoch).
    pub updated_at: i64,
}

impl JobProgress {
    pub fn of(progress: &crate::rclone::Progress, now: i64) -> JobProgress {
        JobProgress {
            bytes: progress.bytes,
            total_bytes: progress.total_bytes,
            files: progress.files,
            total_files: progress.total_files,
            speed: progress.speed,
            eta_secs: progress.eta.map(|eta| eta.as_secs()),
            updated_at: now,
        }
    }
}

const JOB_COLUMNS: &str = "id, idempotency_key, spec, template, chain_id, parent_id, next_hops, \
    priority, state, attempts, max_attempts, backoff_base_ms, backoff_max_ms, run_after, \
    lease_owner, lease_expires_at, cancel_requested, last_error, last_error_kind, bytes, files, \
    progress, lost_attempts, warnings, source_name, created_at, updated_at, finished_at";

fn job_from_row(row: &AnyRow) -> Result<Job> {
    let read = || -> Result<Job, sqlx::Error> {
        let json = |name: &str| -> Result<String, sqlx::Error> { row.try_get(name) };
        let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
        Ok(Job {
            id: row.try_get("id")?,
            idempotency_key: row.try_get("idempotency_key")?,
            spec: serde_json::from_str(&json("spec")?).map_err(decode)?,
            template: row.try_get("template")?,
            chain_id: row
                .try_get::<Option<i64>, _>("chain_id")?
                .unwrap_or_default(),
            parent_id: row.try_get("parent_id")?,
            next_hops: serde_json::from_str(&json("next_hops")?).map_err(decode)?,
            priority: row.try_get("priority")?,
            state: JobState::parse(&row.try_get::<String, _>("state")?)
                .map_err(|e| sqlx::Error::Decode(e.message.into()))?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_expires_at: row.try_get("lease_expires_at")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            last_error: row.try_get("last_error")?,
            last_error_kind: row.try_get("last_error_kind")?,
            bytes: row.try_get("bytes")?,
            files: row.try_get("files")?,
            progress: match row.try_get::<Option<String>, _>("progress")? {
                // Progress is advisory: an unreadable one is shown as none.
                Some(text) => serde_json::from_str(&text).ok(),
                None => None,
            },
            lost_attempts: row.try_get("lost_attempts")?,
            warnings: match row.try_get::<Option<String>, _>("warnings")? {
                Some(text) => serde_json::from_str(&text).map_err(decode)?,
                None => Vec::new(),
            },
            source_name: row.try_get("source_name")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    };
    read().map_err(db_error("reading a job"))
}

fn retry_policy_of(row: &AnyRow) -> Result<RetryPolicy> {
    let read = || -> Result<RetryPolicy, sqlx::Error> {
        Ok(RetryPolicy {
            max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
            base_delay_ms: row.try_get::<i64, _>("backoff_base_ms")? as u64,
            max_delay_ms: row.try_get::<i64, _>("backoff_max_ms")? as u64,
        })
    };
    read().map_err(db_error("reading a job"))
}

/// Jobs per state, as `Store::job_counts` reads them (states without jobs are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts(pub Vec<(JobState, i64)>);

impl JobCounts {
    /// Jobs in `state`.
    pub fn get(&self, state: JobState) -> i64 {
        self.0
            .iter()
            .filter(|(counted, _)| *counted == state)
            .map(|(_, n)| n)
            .sum()
    }

    /// Jobs in any state.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// Jobs queued or running (not succeeded, dead or cancelled).
    pub fn unfinished(&self) -> i64 {
        self.0
            .iter()
            .filter(|(state, _)| !state.is_terminal())
            .map(|(_, n)| n)
            .sum()
    }
}

/// A transfer that succeeded, for `Store::complete_many`.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: i64,
    /// The lease holder that ran it.
    pub worker: String,
    pub bytes: u64,
    pub files: u64,
}

/// What a lease holder learns on heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    /// Cancellation was asked for: stop and call `cancelled`.
    CancelRequested,
    /// The lease expired and another worker may run the job: stop, report nothing.
    Lost,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub limit: i64,
    pub offset: i64,
    /// Only jobs with a smaller id: the next page after one ending at this id (cheaper
    /// than a large offset).
    pub before_id: Option<i64>,
    /// Only jobs from or to this endpoint.
    pub endpoint: Option<String>,
    /// Only jobs made by this transfer template.
    pub template: Option<String>,
    /// Only jobs created at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Only jobs created at or before this time (ms since the epoch).
    pub until: Option<i64>,
}

impl Store {
    async fn begin(&self, context: &str) -> Result<Transaction<'static, Any>> {
        self.pool.begin().await.map_err(db_error(context))
    }

    async fn commit(tx: Transaction<'_, Any>, context: &str) -> Result<()> {
        tx.commit().await.map_err(db_error(context))
    }
}

/// The endpoints `jobs` name, each once.
pub(crate) fn endpoint_names(jobs: &[Job]) -> Vec<&str> {
    let mut names: Vec<&str> = jobs
        .iter()
        .flat_map(|job| [job.spec.source.as_str(), job.spec.destination.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|err| Error::new(ErrorKind::InvalidInput, "storing a job", err.to_string()))
}
