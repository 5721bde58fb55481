//! The job queue on the store: submit (idempotency keys), lease (priorities with aging,
//! `run_after`, per-endpoint concurrency, expired leases), heartbeat, complete (and the
//! next hop of a chain), fail (backoff with jitter, or dead letter), cancel and retry.
//! Every state change commits with its audit record; leases and completions also come in
//! batches (`lease_many`, `complete_many`), one transaction each.

use super::audit;
use super::store::{Backend, Store, db_error, now_ms, placeholder_rows};
use crate::error::{Error, ErrorKind, Result};
use crate::transfer::TransferSpec;
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a job is in its life.
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
}

/// A job as stored.
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
    /// What the user should know about the transfer although it succeeded, e.g. files the
    /// destination renamed (`"new\nline.txt" arrived as "new␊line.txt"`).
    pub warnings: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// A running attempt's progress as stored for every node of the cluster to read.
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
    progress, lost_attempts, warnings, created_at, updated_at, finished_at";

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
}

impl Store {
    async fn begin(&self, context: &str) -> Result<Transaction<'static, Any>> {
        self.pool.begin().await.map_err(db_error(context))
    }

    async fn commit(tx: Transaction<'_, Any>, context: &str) -> Result<()> {
        tx.commit().await.map_err(db_error(context))
    }

    /// Stores a job (or finds the one with the same idempotency key) and returns its id.
    pub async fn submit(&self, request: &JobRequest, actor: &str) -> Result<i64> {
        self.limits.check_request(request)?;
        let mut tx = self.begin("submitting a job").await?;
        let id = insert_job(&mut tx, request, None, None).await?;
        let id = match id {
            Some(id) => {
                let detail = json!({"source": request.spec.source, "destination": request.spec.destination,
                                    "template": request.template, "priority": request.priority});
                audit::append(
                    &mut tx,
                    self.backend,
                    actor,
                    "job.submitted",
                    &format!("job/{id}"),
                    "ok",
                    &detail,
                )
                .await?;
                id
            }
            None => job_id_by_key(&mut tx, request).await?,
        };
        Self::commit(tx, "submitting a job").await?;
        Ok(id)
    }

    /// Submits many jobs in one transaction. Each request is checked against the store's
    /// limits as `submit` does and gets its own answer, in order: the id of its job (new, or the one with its
    /// idempotency key) or its validation error; the valid ones are stored and audited
    /// together. Err only when the store fails, and then none is stored.
    pub async fn submit_many(
        &self,
        requests: &[JobRequest],
        actor: &str,
    ) -> Result<Vec<Result<i64>>> {
        let mut answers: Vec<Result<i64>> = requests
            .iter()
            .map(|request| self.limits.check_request(request).map(|()| 0))
            .collect();
        if answers.iter().all(Result::is_err) {
            return Ok(answers);
        }
        let context = "submitting jobs";
        let mut tx = self.begin(context).await?;
        let mut submitted = Vec::new();
        for (request, answer) in requests.iter().zip(answers.iter_mut()) {
            let Ok(id) = answer else {
                continue;
            };
            *id = match insert_job(&mut tx, request, None, None).await? {
                Some(id) => {
                    submitted.push(audit::Entry {
                        actor,
                        action: "job.submitted",
                        subject: format!("job/{id}"),
                        outcome: "ok",
                        detail: json!({"source": request.spec.source,
                                       "destination": request.spec.destination,
                                       "template": request.template,
                                       "priority": request.priority}),
                    });
                    id
                }
                None => job_id_by_key(&mut tx, request).await?,
            };
        }
        audit::append_many(&mut tx, self.backend, &submitted).await?;
        Self::commit(tx, context).await?;
        Ok(answers)
    }

    pub async fn job(&self, id: i64) -> Result<Job> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error("reading a job"))?
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "reading a job", format!("no job {id}"))
            })?;
        job_from_row(&row)
    }

    /// Jobs, newest first, optionally in one state.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let limit = if filter.limit <= 0 {
            100
        } else {
            filter.limit.min(1000)
        };
        let before = filter.before_id.unwrap_or(i64::MAX);
        // Two statements, so that each reads its index (`jobs_by_state_id`, or the primary
        // key) newest first instead of filtering every row.
        let sql = match filter.state {
            Some(_) => format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 AND id < $2 \
                 ORDER BY state DESC, id DESC LIMIT $3 OFFSET $4"
            ),
            None => format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
            ),
        };
        let mut query = sqlx::query(&sql);
        if let Some(state) = filter.state {
            query = query.bind(state.as_str());
        }
        let rows = query
            .bind(before)
            .bind(limit)
            .bind(filter.offset.max(0))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    /// Every job of a chain, in order.
    pub async fn chain(&self, chain_id: i64) -> Result<Vec<Job>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE chain_id = $1 ORDER BY id"
        ))
        .bind(chain_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading a chain"))?;
        rows.iter().map(job_from_row).collect()
    }

    /// Counts of jobs per state (from the totals the store keeps, not by counting jobs).
    pub async fn job_counts(&self) -> Result<JobCounts> {
        Ok(JobCounts::of(&self.job_totals().await?))
    }

    /// Leases the most urgent runnable job for `worker` for `lease`: queued and due, or
    /// leased by a worker whose lease expired; within the endpoints' concurrency limits.
    /// `aging` is how long a job waits to gain one priority point.
    pub async fn lease(
        &self,
        worker: &str,
        lease: Duration,
        aging: Duration,
    ) -> Result<Option<Job>> {
        Ok(self.lease_many(&[worker], lease, aging).await?.pop())
    }

    /// Leases up to one job per entry of `workers` (the first job to `workers[0]`, and so
    /// on), most urgent first, in one transaction, as `lease` would one by one; the
    /// endpoints' concurrency limits count the jobs leased earlier in the batch. Fewer (or
    /// none) when fewer are runnable.
    pub async fn lease_many(
        &self,
        workers: &[impl AsRef<str>],
        lease: Duration,
        aging: Duration,
    ) -> Result<Vec<Job>> {
        let now = now_ms();
        let expires = now + lease.as_millis() as i64;
        let aging = (aging.as_millis() as i64).max(1);
        let sql = lease_statement(self.backend, self.limits.max_lost_attempts);
        let mut tx = self.begin("leasing jobs").await?;
        if self.backend == Backend::Postgres {
            // PostgreSQL would plan the lease statement anew for its parameters each time:
            // 0.5-1.5 ms of planning for 0.3 ms of execution. Its generic plan is the same.
            // Leasers take turns (the lock is released at commit), so each one counts the
            // leases committed before it and endpoint limits hold across nodes.
            for statement in [
                "SET LOCAL plan_cache_mode = force_generic_plan",
                "SELECT pg_advisory_xact_lock(7243002)",
            ] {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("leasing jobs"))?;
            }
        }
        // Housekeeping at most once a second per process: the jobs it reaps are never
        // leasable, so nothing waits on it, and the hot path saves two statements.
        let last = self.last_reap.load(Ordering::Relaxed);
        if now - last >= 1000
            && self
                .last_reap
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.reap_cancelled(&mut tx, now).await?;
            self.reap_exhausted(&mut tx, now).await?;
        }
        let mut jobs = Vec::new();
        match self.backend {
            // One writer: one job per statement, each seeing the ones leased before it.
            Backend::Sqlite => {
                for worker in workers {
                    let row = sqlx::query(&sql)
                        .bind(worker.as_ref())
                        .bind(expires)
                        .bind(now)
                        .bind(aging)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error("leasing a job"))?;
                    match row {
                        Some(row) => jobs.push(job_from_row(&row)?),
                        None => break,
                    }
                }
            }
            // The whole batch in one statement: one round trip, one set of row locks.
            Backend::Postgres => {
                let owners: Vec<&str> = workers.iter().map(AsRef::as_ref).collect();
                let rows = sqlx::query(&sql)
                    .bind(to_json(&owners)?)
                    .bind(expires)
                    .bind(now)
                    .bind(aging)
                    // Heads per priority: enough to pass over rows locked elsewhere.
                    .bind((4 * owners.len()).max(16) as i64)
                    // Rows locked: a few spare for jobs an endpoint limit turns away.
                    .bind((owners.len() + owners.len() / 4 + 1) as i64)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error("leasing jobs"))?;
                for row in &rows {
                    jobs.push(job_from_row(row)?);
                }
                let rank = |job: &Job| {
                    owners
                        .iter()
                        .position(|o| Some(*o) == job.lease_owner.as_deref())
                };
                jobs.sort_by_key(rank);
            }
        }
        if jobs.is_empty() {
            Self::commit(tx, "leasing jobs").await?;
            return Ok(jobs);
        }
        // An attempt still open belonged to a worker that lost its lease (crashed); only a
        // job leased before can have one.
        for job in jobs.iter().filter(|job| job.attempts > 1) {
            sqlx::query(
                "UPDATE job_attempts SET finished_at = $1, outcome = 'lost' \
                 WHERE job_id = $2 AND finished_at IS NULL",
            )
            .bind(now)
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("closing a lost attempt"))?;
        }
        let sql = format!(
            "INSERT INTO job_attempts (job_id, attempt, worker, started_at) VALUES {}",
            placeholder_rows(1, jobs.len(), &["$"; 4])
        );
        let mut insert = sqlx::query(&sql);
        for job in &jobs {
            insert = insert
                .bind(job.id)
                .bind(job.attempts)
                .bind(job.lease_owner.as_deref())
                .bind(now);
        }
        insert
            .execute(&mut *tx)
            .await
            .map_err(db_error("recording an attempt"))?;
        let entries: Vec<_> = jobs
            .iter()
            .map(|job| audit::Entry {
                actor: job.lease_owner.as_deref().unwrap_or_default(),
                action: "job.started",
                subject: format!("job/{}", job.id),
                outcome: "ok",
                detail: json!({"attempt": job.attempts}),
            })
            .collect();
        audit::append_many(&mut tx, self.backend, &entries).await?;
        Self::commit(tx, "leasing jobs").await?;
        Ok(jobs)
    }

    /// Jobs whose worker died during their last allowed attempt, or whose workers were
    /// lost `limits.max_lost_attempts` times, become dead: a job that kills every worker
    /// that runs it must not be leased forever.
    async fn reap_exhausted(&self, tx: &mut Transaction<'_, Any>, now: i64) -> Result<()> {
        let max_lost = self.limits.max_lost_attempts as i64;
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_owner = NULL, finished_at = $1, updated_at = $1, \
                 progress = NULL, lost_attempts = lost_attempts + 1, \
                 last_error = CASE WHEN attempts >= max_attempts \
                     THEN 'the worker was lost during the last allowed attempt (crashed or cut off from the store)' \
                     ELSE 'the worker running this job was lost ' || CAST(lost_attempts + 1 AS TEXT) || \
                         ' times (crashed, killed or cut off from the store); the job may be what kills its \
                         workers, so it is not run again (limits.max_lost_attempts)' END, \
                 last_error_kind = 'WorkerLost' \
             WHERE state = 'leased' AND cancel_requested = 0 AND lease_expires_at < $1 \
                 AND (attempts >= max_attempts OR lost_attempts + 1 >= $2) RETURNING id, attempts",
        )
        .bind(now)
        .bind(max_lost)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error("reaping lost jobs"))?;
        for row in rows {
            let id: i64 = row.try_get(0).map_err(db_error("reaping lost jobs"))?;
            let attempts: i64 = row.try_get(1).map_err(db_error("reaping lost jobs"))?;
            sqlx::query(
                "UPDATE job_attempts SET finished_at = $1, outcome = 'lost' WHERE job_id = $2 AND finished_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_error("reaping lost jobs"))?;
            let detail = json!({"attempt": attempts, "error_kind": "WorkerLost"});
            audit::append(
                tx,
                self.backend,
                "engine",
                "job.dead",
                &format!("job/{id}"),
                "failed",
                &detail,
            )
            .await?;
        }
        Ok(())
    }

    /// Jobs whose worker died after cancellation was asked become cancelled.
    async fn reap_cancelled(&self, tx: &mut Transaction<'_, Any>, now: i64) -> Result<()> {
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, finished_at = $1, updated_at = $1 \
             WHERE state = 'leased' AND cancel_requested = 1 AND lease_expires_at < $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error("reaping cancelled jobs"))?;
        for row in rows {
            let id: i64 = row.try_get(0).map_err(db_error("reaping cancelled jobs"))?;
            audit::append(
                tx,
                self.backend,
                "engine",
                "job.cancelled",
                &format!("job/{id}"),
                "ok",
                &json!({}),
            )
            .await?;
        }
        Ok(())
    }

    /// Extends `worker`'s lease on job `id`.
    pub async fn heartbeat(&self, id: i64, worker: &str, lease: Duration) -> Result<LeaseStatus> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'leased' \
             RETURNING cancel_requested",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(id)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("renewing a lease"))?;
        Ok(match row {
            None => LeaseStatus::Lost,
            Some(row) if row.try_get::<i64, _>(0).unwrap_or(0) != 0 => LeaseStatus::CancelRequested,
            Some(_) => LeaseStatus::Held,
        })
    }

    /// Stores the live progress of running jobs, all in one statement: each entry is
    /// (job id, the worker holding it, its progress); entries whose lease was lost change
    /// nothing.
    pub async fn record_progress(&self, running: &[(i64, String, JobProgress)]) -> Result<()> {
        if running.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "WITH p (job_id, holder, p_bytes, p_files, p_json) AS (VALUES {}) \
             UPDATE jobs SET bytes = p.p_bytes, files = p.p_files, progress = p.p_json \
             FROM p WHERE jobs.id = p.job_id AND jobs.lease_owner = p.holder \
                 AND jobs.state = 'leased'",
            placeholder_rows(
                1,
                running.len(),
                &[
                    "CAST($ AS BIGINT)",
                    "$",
                    "CAST($ AS BIGINT)",
                    "CAST($ AS BIGINT)",
                    "$"
                ]
            )
        );
        let mut update = sqlx::query(&sql);
        for (id, worker, progress) in running {
            update = update
                .bind(*id)
                .bind(worker)
                .bind(progress.bytes as i64)
                .bind(progress.files as i64)
                .bind(to_json(progress)?);
        }
        update
            .execute(&self.pool)
            .await
            .map_err(db_error("recording progress"))?;
        Ok(())
    }

    /// Keeps `warnings` on job `id` (while `worker` holds it), for its outcome to show.
    pub async fn record_warnings(&self, id: i64, worker: &str, warnings: &[String]) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET warnings = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'leased'",
        )
        .bind(to_json(&warnings)?)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db_error("recording warnings"))?;
        Ok(())
    }

    /// Marks job `id` succeeded if `worker` still holds it, and queues the chain's next hop.
    /// Returns false (and changes nothing) when the lease was lost.
    pub async fn complete(&self, id: i64, worker: &str, bytes: u64, files: u64) -> Result<bool> {
        let done = Completion {
            id,
            worker: worker.to_string(),
            bytes,
            files,
        };
        Ok(self.complete_many(&[done]).await?.first() == Some(&true))
    }

    /// Records many successes in one transaction, as `complete` does each: for every entry,
    /// true when it was recorded, false when its worker had lost the lease.
    pub async fn complete_many(&self, done: &[Completion]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut tx = self.begin("completing jobs").await?;
        let mut recorded = vec![false; done.len()];
        let mut entries = Vec::new();
        // One statement per round of distinct jobs (a job reported twice, by a holder that
        // lost its lease and by the current one, takes two rounds), so that each changed
        // row names its entry. Only rows still leased by the named worker change.
        let mut pending: Vec<usize> = (0..done.len()).collect();
        while !pending.is_empty() {
            let mut seen = std::collections::HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) =
                pending.into_iter().partition(|&i| seen.insert(done[i].id));
            pending = later;
            let sql = format!(
                "WITH done (job_id, holder, done_bytes, done_files) AS (VALUES {}) \
                 UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, \
                     progress = NULL, bytes = done.done_bytes, files = done.done_files, finished_at = $1, \
                     updated_at = $1 \
                 FROM done WHERE jobs.id = done.job_id AND jobs.lease_owner = done.holder \
                     AND jobs.state = 'leased' \
                 RETURNING {JOB_COLUMNS}",
                placeholder_rows(
                    2,
                    round.len(),
                    &[
                        "CAST($ AS BIGINT)",
                        "$",
                        "CAST($ AS BIGINT)",
                        "CAST($ AS BIGINT)"
                    ]
                )
            );
            let mut update = sqlx::query(&sql).bind(now);
            for &i in &round {
                update = update
                    .bind(done[i].id)
                    .bind(&done[i].worker)
                    .bind(done[i].bytes as i64)
                    .bind(done[i].files as i64);
            }
            let rows = update
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error("completing jobs"))?;
            for row in &rows {
                let job = job_from_row(row)?;
                let Some(&i) = round.iter().find(|&&i| done[i].id == job.id) else {
                    continue;
                };
                recorded[i] = true;
                let completion = &done[i];
                entries.push(audit::Entry {
                    actor: &completion.worker,
                    action: "job.succeeded",
                    subject: format!("job/{}", job.id),
                    outcome: "ok",
                    detail: json!({"bytes": completion.bytes, "files": completion.files,
                                   "attempts": job.attempts}),
                });
                if let Some((hop, rest)) = job.next_hops.split_first() {
                    let request = JobRequest {
                        spec: hop.clone(),
                        priority: job.priority,
                        idempotency_key: None,
                        retry: retry_policy_of(row)?,
                        next_hops: rest.to_vec(),
                        template: job.template.clone(),
                    };
                    let next = insert_job(&mut tx, &request, Some(job.chain_id), Some(job.id))
                        .await?
                        .unwrap_or_default();
                    entries.push(audit::Entry {
                        actor: &completion.worker,
                        action: "job.submitted",
                        subject: format!("job/{next}"),
                        outcome: "ok",
                        detail: json!({"chain": job.chain_id, "after": job.id}),
                    });
                }
            }
        }
        let ids: Vec<i64> = (0..done.len())
            .filter(|&i| recorded[i])
            .map(|i| done[i].id)
            .collect();
        if !ids.is_empty() {
            // The open attempt of a job its worker held is its current one (`lease` closed
            // any lost one).
            let sql = format!(
                "UPDATE job_attempts SET finished_at = $1, outcome = 'succeeded' \
                 WHERE finished_at IS NULL AND job_id IN {}",
                placeholder_rows(2, 1, &vec!["$"; ids.len()])
            );
            let mut close = sqlx::query(&sql).bind(now);
            for id in ids {
                close = close.bind(id);
            }
            close
                .execute(&mut *tx)
                .await
                .map_err(db_error("recording an attempt"))?;
            audit::append_many(&mut tx, self.backend, &entries).await?;
        }
        Self::commit(tx, "completing jobs").await?;
        Ok(recorded)
    }

    /// Records a failed attempt of job `id`: retried later when `error` is retryable and
    /// attempts remain, else dead with the error kept. Returns the new state (None when
    /// the lease was lost).
    pub async fn fail(&self, id: i64, worker: &str, error: &Error) -> Result<Option<JobState>> {
        let now = now_ms();
        let mut tx = self.begin("recording a failure").await?;
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'leased'"
        ))
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("recording a failure"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let policy = retry_policy_of(&row)?;
        let retry = error.retryable && job.attempts < job.max_attempts;
        let (state, run_after, finished) = if retry {
            let delay = policy.delay_after(job.attempts as u32);
            (JobState::Queued, now + delay.as_millis() as i64, None)
        } else {
            (JobState::Dead, job.run_after, Some(now))
        };
        let message = error.to_string();
        let kind = format!("{:?}", error.kind);
        sqlx::query(
            "UPDATE jobs SET state = $1, run_after = $2, finished_at = $3, lease_owner = NULL, \
                 lease_expires_at = NULL, progress = NULL, last_error = $4, last_error_kind = $5, \
                 updated_at = $6 \
             WHERE id = $7",
        )
        .bind(state.as_str())
        .bind(run_after)
        .bind(finished)
        .bind(&message)
        .bind(&kind)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error("recording a failure"))?;
        finish_attempt(&mut tx, &job, "failed", Some(&message), now).await?;
        let action = if retry {
            "job.retry_scheduled"
        } else {
            "job.dead"
        };
        let detail = json!({"attempt": job.attempts, "error_kind": kind, "retryable": error.retryable,
                            "run_after": run_after});
        audit::append(
            &mut tx,
            self.backend,
            worker,
            action,
            &format!("job/{id}"),
            "failed",
            &detail,
        )
        .await?;
        Self::commit(tx, "recording a failure").await?;
        Ok(Some(state))
    }

    /// Puts job `id`, which `worker` stopped at shutdown, back in the queue at once; the
    /// interrupted attempt is closed as `released` and does not count against
    /// `max_attempts`. False (nothing changed) when the lease was lost.
    pub async fn release(&self, id: i64, worker: &str) -> Result<bool> {
        self.end_lease(
            id,
            worker,
            "state = 'queued', max_attempts = max_attempts + 1, run_after = $1",
            ("released", "job.released", "releasing a job"),
            |job| json!({"attempt": job.attempts}),
        )
        .await
    }

    /// Records that `worker` stopped job `id` on request.
    pub async fn cancelled(&self, id: i64, worker: &str) -> Result<bool> {
        self.end_lease(
            id,
            worker,
            "state = 'cancelled', finished_at = $1",
            ("cancelled", "job.cancelled", "cancelling a job"),
            |_| json!({}),
        )
        .await
    }

    /// Ends `worker`'s lease on job `id` in one transaction: `set` (a fixed SET clause;
    /// `$1` is now) with the lease cleared, the attempt closed as `outcome`, and `action`
    /// audited with `detail`. False (nothing changed) when the lease was lost.
    async fn end_lease(
        &self,
        id: i64,
        worker: &str,
        set: &'static str,
        (outcome, action, context): (&str, &str, &str),
        detail: impl FnOnce(&Job) -> serde_json::Value,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin(context).await?;
        let row = sqlx::query(&format!(
            "UPDATE jobs SET {set}, lease_owner = NULL, lease_expires_at = NULL, progress = NULL, \
                 updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'leased' RETURNING {JOB_COLUMNS}"
        ))
        .bind(now)
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let job = job_from_row(&row)?;
        finish_attempt(&mut tx, &job, outcome, None, now).await?;
        audit::append(
            &mut tx,
            self.backend,
            worker,
            action,
            &format!("job/{id}"),
            "ok",
            &detail(&job),
        )
        .await?;
        Self::commit(tx, context).await?;
        Ok(true)
    }

    /// Cancels job `id`: at once when queued, by asking its worker when leased.
    pub async fn cancel(&self, id: i64, actor: &str) -> Result<JobState> {
        let now = now_ms();
        let mut tx = self.begin("cancelling a job").await?;
        let job = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error("cancelling a job"))?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "cancelling a job",
                    format!("no job {id}"),
                )
            })?;
        let job = job_from_row(&job)?;
        let (update, action, state) = match job.state {
            JobState::Queued => (
                "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1 WHERE id = $2",
                "job.cancelled",
                JobState::Cancelled,
            ),
            JobState::Leased => (
                "UPDATE jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2",
                "job.cancel_requested",
                JobState::Leased,
            ),
            terminal => return Ok(terminal),
        };
        sqlx::query(update)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("cancelling a job"))?;
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &format!("job/{id}"),
            "ok",
            &json!({}),
        )
        .await?;
        Self::commit(tx, "cancelling a job").await?;
        Ok(state)
    }

    /// How attempt `attempt` of job `id` ended (`succeeded`, `failed`, `lost`, ...); None
    /// while it runs or when there is no such attempt.
    pub async fn attempt_outcome(&self, id: i64, attempt: i64) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT outcome FROM job_attempts WHERE job_id = $1 AND attempt = $2")
                .bind(id)
                .bind(attempt)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error("reading an attempt"))?;
        match row {
            Some(row) => row.try_get(0).map_err(db_error("reading an attempt")),
            None => Ok(None),
        }
    }

    /// Runs a dead or cancelled job again from its first attempt.
    pub async fn retry(&self, id: i64, actor: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin("retrying a job").await?;
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = $1, cancel_requested = 0, \
                 finished_at = NULL, last_error = NULL, last_error_kind = NULL, updated_at = $1 \
             WHERE id = $2 AND state IN ('dead', 'cancelled')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error("retrying a job"))?
        .rows_affected();
        if changed == 0 {
            drop(tx); // SQLite has one connection: release it before reading.
            let state = self.job(id).await?.state;
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "retrying a job",
                format!("job {id} is {state:?}; only dead or cancelled jobs can be retried"),
            ));
        }
        audit::append(
            &mut tx,
            self.backend,
            actor,
            "job.retried",
            &format!("job/{id}"),
            "ok",
            &json!({}),
        )
        .await?;
        Self::commit(tx, "retrying a job").await
    }
}

/// The lease statement. Both forms read the same candidates: the oldest due jobs of
/// each distinct priority (within a priority the oldest job has the highest aged
/// priority), from the partial index `jobs_queue` by a loose index scan, plus expired
/// leases, minus the jobs of endpoints at their limit (computed once, not per row); only
/// these few are sorted by aged priority.
///
/// - SQLite: `$1` is one worker; leases the most urgent candidate. Run once per worker of
///   a batch (one writer: each run sees the jobs leased before it).
/// - PostgreSQL: `$1` is a JSON array of workers; leases up to one job each in one
///   statement (leasers take turns on an advisory lock). `$5` candidates per priority,
///   of which the `$6` most urgent are locked (`SKIP LOCKED`: rows another transaction is
///   changing, a cancel or a completion, are passed over). A locked candidate is admitted
///   when each of its endpoints still has a seat counting the candidates before it that
///   use that endpoint (admitted or not, so a limit is never exceeded).
///
/// Both: `$2` lease expiry, `$3` now, `$4` aging (ms per priority point). An expired lease
/// is a lost attempt: a job is leased again only while its losses stay below `max_lost`.
/// The aged priority is computed in floating point, so no priority or age overflows it.
fn lease_statement(backend: Backend, max_lost: u32) -> String {
    let queue_index = match backend {
        Backend::Postgres => "",
        Backend::Sqlite => "INDEXED BY jobs_queue",
    };
    let not_busy = "j.source_endpoint NOT IN (SELECT name FROM busy) \
                    AND j.destination_endpoint NOT IN (SELECT name FROM busy)";
    let relet = format!(
        "j.state = 'leased' AND j.lease_expires_at < $3 AND j.cancel_requested = 0 \
         AND j.attempts < j.max_attempts AND j.lost_attempts + 1 < {max_lost}"
    );
    let runnable = format!("((j.state = 'queued' AND j.run_after <= $3) OR ({relet}))");
    let urgency =
        "CAST(j.priority AS DOUBLE PRECISION) + CAST($3 - j.created_at AS DOUBLE PRECISION) / $4";
    let heads = match backend {
        Backend::Postgres => format!(
            "SELECT c.id FROM prios CROSS JOIN LATERAL (SELECT j.id FROM jobs j \
                 WHERE j.state = 'queued' AND j.priority = prios.p AND j.run_after <= $3 \
                 AND {not_busy} ORDER BY j.created_at, j.id LIMIT $5) c"
        ),
        // One connection, one leaser at a time: the head of each priority is enough.
        Backend::Sqlite => format!(
            "SELECT (SELECT j.id FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 AND j.priority = prios.p AND j.run_after <= $3 AND {not_busy} \
                 ORDER BY j.created_at, j.id LIMIT 1) \
             FROM prios WHERE prios.p IS NOT NULL"
        ),
    };
    let candidates = format!(
        "WITH RECURSIVE prios(p) AS ( \
             SELECT * FROM (SELECT j.priority FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 ORDER BY j.priority DESC LIMIT 1) top \
             UNION ALL \
             SELECT (SELECT j.priority FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 AND j.priority < prios.p ORDER BY j.priority DESC LIMIT 1) \
             FROM prios WHERE prios.p IS NOT NULL), \
         used(name, n) AS ( \
             SELECT x.name, COUNT(*) FROM ( \
                 SELECT r.source_endpoint AS name FROM jobs r \
                     WHERE r.state = 'leased' AND r.lease_expires_at >= $3 \
                 UNION ALL \
                 SELECT r.destination_endpoint FROM jobs r \
                     WHERE r.state = 'leased' AND r.lease_expires_at >= $3 \
                     AND r.destination_endpoint <> r.source_endpoint) x \
             GROUP BY x.name), \
         busy(name) AS ( \
             SELECT u.name FROM used u LEFT JOIN endpoints e ON e.name = u.name \
             WHERE u.n >= COALESCE(e.max_concurrent, 1000000)), \
         candidates(id) AS ( \
             {heads} \
             UNION ALL \
             SELECT j.id FROM jobs j WHERE {relet} AND {not_busy})"
    );
    match backend {
        Backend::Sqlite => format!(
            "{candidates} \
             UPDATE jobs SET state = 'leased', lease_owner = $1, lease_expires_at = $2, \
                 attempts = attempts + 1, updated_at = $3, \
                 lost_attempts = lost_attempts + CASE WHEN state = 'leased' THEN 1 ELSE 0 END \
             WHERE id = (SELECT j.id FROM jobs j NOT INDEXED \
                 WHERE j.id IN (SELECT id FROM candidates) AND {runnable} \
                 ORDER BY {urgency} DESC, j.id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
        ),
        // An array keeps the planner on the primary key (a recursive CTE's row estimate
        // would make it scan the table).
        Backend::Postgres => format!(
            "{candidates}, \
             locked AS ( \
                 SELECT j.id, j.source_endpoint AS src, j.destination_endpoint AS dst, \
                     {urgency} AS urgency \
                 FROM jobs j WHERE j.id = ANY (ARRAY(SELECT id FROM candidates)) AND {runnable} \
                 ORDER BY urgency DESC, j.id LIMIT $6 FOR UPDATE OF j SKIP LOCKED), \
             ranked AS ( \
                 SELECT id, src, dst, ROW_NUMBER() OVER (ORDER BY urgency DESC, id) AS pos \
                 FROM locked), \
             uses(id, pos, name) AS ( \
                 SELECT id, pos, src FROM ranked \
                 UNION ALL SELECT id, pos, dst FROM ranked WHERE dst <> src), \
             seats(id, name, k) AS ( \
                 SELECT id, name, ROW_NUMBER() OVER (PARTITION BY name ORDER BY pos) FROM uses), \
             admitted(job_id, n) AS ( \
                 SELECT r.id, ROW_NUMBER() OVER (ORDER BY r.pos) FROM ranked r \
                 WHERE NOT EXISTS ( \
                     SELECT 1 FROM seats s LEFT JOIN endpoints e ON e.name = s.name \
                         LEFT JOIN used u ON u.name = s.name \
                     WHERE s.id = r.id AND s.k > COALESCE(e.max_concurrent, 1000000) - COALESCE(u.n, 0))), \
             owners(owner, n) AS ( \
                 SELECT value, ordinality \
                 FROM json_array_elements_text(CAST($1 AS json)) WITH ORDINALITY) \
             UPDATE jobs SET state = 'leased', lease_owner = o.owner, lease_expires_at = $2, \
                 attempts = attempts + 1, updated_at = $3, \
                 lost_attempts = jobs.lost_attempts + CASE WHEN jobs.state = 'leased' THEN 1 ELSE 0 END \
             FROM admitted a JOIN owners o ON o.n = a.n WHERE jobs.id = a.job_id \
             RETURNING {JOB_COLUMNS}"
        ),
    }
}

/// The id of the job stored with `request`'s idempotency key.
async fn job_id_by_key(tx: &mut Transaction<'_, Any>, request: &JobRequest) -> Result<i64> {
    let key = request.idempotency_key.as_deref().unwrap_or_default();
    sqlx::query("SELECT id FROM jobs WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(&mut **tx)
        .await
        .and_then(|row| row.try_get::<i64, _>(0))
        .map_err(db_error("finding a job by idempotency key"))
}

/// Inserts a job; None when its idempotency key already exists.
async fn insert_job(
    tx: &mut Transaction<'_, Any>,
    request: &JobRequest,
    chain_id: Option<i64>,
    parent_id: Option<i64>,
) -> Result<Option<i64>> {
    let now = now_ms();
    let row = sqlx::query(
        "INSERT INTO jobs (idempotency_key, spec, source_endpoint, destination_endpoint, template, \
             chain_id, parent_id, next_hops, priority, state, attempts, max_attempts, backoff_base_ms, \
             backoff_max_ms, run_after, cancel_requested, bytes, files, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $11, $12, $13, 0, 0, 0, $13, $13) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(request.idempotency_key.as_deref())
    .bind(to_json(&request.spec)?)
    .bind(&request.spec.source)
    .bind(&request.spec.destination)
    .bind(request.template.as_deref())
    .bind(chain_id)
    .bind(parent_id)
    .bind(to_json(&request.next_hops)?)
    .bind(request.priority)
    .bind(request.retry.max_attempts as i64)
    .bind(request.retry.base_delay_ms as i64)
    .bind(request.retry.max_delay_ms as i64)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error("storing a job"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0).map_err(db_error("storing a job"))?;
    if chain_id.is_none() {
        sqlx::query("UPDATE jobs SET chain_id = id WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_error("storing a job"))?;
    }
    Ok(Some(id))
}

async fn finish_attempt(
    tx: &mut Transaction<'_, Any>,
    job: &Job,
    outcome: &str,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE job_attempts SET finished_at = $1, outcome = $2, error = $3 \
         WHERE job_id = $4 AND attempt = $5 AND finished_at IS NULL",
    )
    .bind(now)
    .bind(outcome)
    .bind(error)
    .bind(job.id)
    .bind(job.attempts)
    .execute(&mut **tx)
    .await
    .map_err(db_error("recording an attempt"))?;
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|err| Error::new(ErrorKind::InvalidInput, "storing a job", err.to_string()))
}
