//! Leasing (single and batched, with the reaping of exhausted and cancelled leases first),
//! heartbeats and progress reports while a job runs.

use super::lease_sql::lease_statement;
use super::{Job, JobProgress, LeaseStatus, job_from_row, to_json};
use crate::engine::audit;
use crate::engine::store::{Backend, Store, db_error, now_ms, placeholder_rows};
use crate::error::Result;
use serde_json::json;
use sqlx::{Any, Row, Transaction};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Store {
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
        self.lease_many_reaching(workers, lease, aging, &[]).await
    }

    /// As `lease_many`, for a leaser that presents `reach` (`endpoint::reach_tokens`: an
    /// agent's name and labels): besides the jobs whose endpoints are unplaced, it gets
    /// those whose placed endpoints hold one of these tokens. `lease_many` presents none.
    pub async fn lease_many_reaching(
        &self,
        workers: &[impl AsRef<str>],
        lease: Duration,
        aging: Duration,
        reach: &[String],
    ) -> Result<Vec<Job>> {
        let reach = to_json(reach)?;
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
                        .bind(&reach)
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
                    .bind(&reach)
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
        let mut lost = Vec::new();
        for job in jobs.iter().filter(|job| job.attempts > 1) {
            let workers: Vec<Option<String>> = sqlx::query_scalar(
                "UPDATE job_attempts SET finished_at = $1, outcome = 'lost' \
                 WHERE job_id = $2 AND finished_at IS NULL RETURNING worker",
            )
            .bind(now)
            .bind(job.id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("closing a lost attempt"))?;
            lost.extend(
                workers
                    .into_iter()
                    .map(|worker| worker_lost(job.id, job.attempts - 1, worker)),
            );
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
        let entries: Vec<_> = lost
            .into_iter()
            .chain(jobs.iter().map(|job| audit::Entry {
                actor: job.lease_owner.as_deref().unwrap_or_default(),
                action: "job.started",
                subject: format!("job/{}", job.id),
                outcome: "ok",
                detail: json!({"attempt": job.attempts}),
            }))
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
            let workers: Vec<Option<String>> = sqlx::query_scalar(
                "UPDATE job_attempts SET finished_at = $1, outcome = 'lost' WHERE job_id = $2 AND finished_at IS NULL \
                 RETURNING worker",
            )
            .bind(now)
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error("reaping lost jobs"))?;
            let mut entries: Vec<_> = workers
                .into_iter()
                .map(|worker| worker_lost(id, attempts, worker))
                .collect();
            entries.push(audit::Entry {
                actor: "engine",
                action: "job.dead",
                subject: format!("job/{id}"),
                outcome: "failed",
                detail: json!({"attempt": attempts, "error_kind": "WorkerLost"}),
            });
            audit::append_many(tx, self.backend, &entries).await?;
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
}

/// The audit record of a job whose `worker` was lost during `attempt` (found when its
/// lease had expired).
fn worker_lost(id: i64, attempt: i64, worker: Option<String>) -> audit::Entry<'static> {
    audit::Entry {
        actor: "engine",
        action: "job.worker_lost",
        subject: format!("job/{id}"),
        outcome: "failed",
        detail: json!({"attempt": attempt, "worker": worker}),
    }
}
