//! Finishing a lease (complete and the next hop, fail with backoff or dead letter, release,
//! cancelled), warnings, and the operator's cancel and retry; attempts get their outcome.

use super::submit::{Origin, insert_job};
use super::{
    Completion, JOB_COLUMNS, Job, JobRequest, JobState, job_from_row, retry_policy_of, to_json,
};
use crate::engine::audit;
use crate::engine::store::{Store, db_error, now_ms, placeholder_rows};
use crate::error::{Error, ErrorKind, Result};
use serde_json::json;
use sqlx::{Any, Row, Transaction};

impl Store {
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
                    let origin = Origin {
                        chain_id: Some(job.chain_id),
                        parent_id: Some(job.id),
                        source_name: job.source_name.as_deref(),
                    };
                    let next = insert_job(&mut tx, &request, &origin)
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
        let kind = error.kind.as_str();
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
        .bind(kind)
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
                            "run_after": run_after, "error": message});
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
