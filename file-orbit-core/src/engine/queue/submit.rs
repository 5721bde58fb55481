//! Submission (single and batched, idempotency keys, the chain's first hop) and the reads:
//! one job, its attempts, a filtered page, a chain, the counts per state.

use super::{
    JOB_COLUMNS, Job, JobAttempt, JobCounts, JobFilter, JobRequest, job_from_row, to_json,
};
use crate::engine::audit;
use crate::engine::store::{Store, db_error, now_ms, page_limit, placeholder_rows};
use crate::error::{Error, ErrorKind, Result};
use serde_json::json;
use sqlx::{Any, Row, Transaction};

impl Store {
    /// Stores a job (or finds the one with the same idempotency key) and returns its id.
    pub async fn submit(&self, request: &JobRequest, actor: &str) -> Result<i64> {
        self.submit_from(request, actor, None).await
    }

    /// As `submit`, for a job made from an event of the stored source `source_name`.
    pub(crate) async fn submit_from(
        &self,
        request: &JobRequest,
        actor: &str,
        source_name: Option<&str>,
    ) -> Result<i64> {
        self.limits.check_request(request)?;
        let mut tx = self.begin("submitting a job").await?;
        let origin = Origin {
            chain_id: None,
            parent_id: None,
            source_name,
        };
        let id = insert_job(&mut tx, request, &origin).await?;
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
            *id = match insert_job(&mut tx, request, &Origin::default()).await? {
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

    /// The jobs of `ids` that exist, in no particular order (one read).
    pub(crate) async fn jobs_with_ids(&self, ids: &[i64]) -> Result<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN {}",
            placeholder_rows(1, 1, &vec!["$"; ids.len()])
        );
        let rows = ids
            .iter()
            .fold(sqlx::query(&sql), |query, id| query.bind(*id))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("reading jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs, newest first, narrowed by `filter` (state, an endpoint on either side, a
    /// template, a creation time range, ids before one).
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let limit = page_limit(filter.limit);
        let before = filter.before_id.unwrap_or(i64::MAX);
        // With a state, `state = $1` first and ordering by (state, id) reads the
        // `jobs_by_state_id` index newest first; without, the primary key.
        let mut clauses = Vec::new();
        let mut binds: Vec<Bind<'_>> = Vec::new();
        if let Some(state) = filter.state {
            binds.push(Bind::Text(state.as_str()));
            clauses.push(format!("state = ${}", binds.len()));
        }
        binds.push(Bind::Int(before));
        clauses.push(format!("id < ${}", binds.len()));
        if let Some(endpoint) = &filter.endpoint {
            binds.push(Bind::Text(endpoint));
            let n = binds.len();
            clauses.push(format!(
                "(source_endpoint = ${n} OR destination_endpoint = ${n})"
            ));
        }
        if let Some(template) = &filter.template {
            binds.push(Bind::Text(template));
            clauses.push(format!("template = ${}", binds.len()));
        }
        if let Some(since) = filter.since {
            binds.push(Bind::Int(since));
            clauses.push(format!("created_at >= ${}", binds.len()));
        }
        if let Some(until) = filter.until {
            binds.push(Bind::Int(until));
            clauses.push(format!("created_at <= ${}", binds.len()));
        }
        let order = match filter.state {
            Some(_) => "state DESC, id DESC",
            None => "id DESC",
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY {order} LIMIT ${} OFFSET ${}",
            clauses.join(" AND "),
            binds.len() + 1,
            binds.len() + 2
        );
        let query = binds
            .into_iter()
            .fold(sqlx::query(&sql), |query, bind| match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
            });
        let rows = query
            .bind(limit)
            .bind(filter.offset.max(0))
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    /// Job `id`'s attempts, first to last (none for a job that never ran).
    pub async fn job_attempts(&self, id: i64) -> Result<Vec<JobAttempt>> {
        let rows = sqlx::query(
            "SELECT attempt, worker, started_at, finished_at, outcome, error FROM job_attempts \
             WHERE job_id = $1 ORDER BY attempt, id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("reading a job's attempts"))?;
        let read = |row: &sqlx::any::AnyRow| -> Result<JobAttempt, sqlx::Error> {
            Ok(JobAttempt {
                attempt: row.try_get("attempt")?,
                worker: row.try_get("worker")?,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
                outcome: row.try_get("outcome")?,
                error: row.try_get("error")?,
            })
        };
        rows.iter()
            .map(|row| read(row).map_err(db_error("reading a job's attempts")))
            .collect()
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
}

/// A value bound to a listing's placeholder.
enum Bind<'a> {
    Text(&'a str),
    Int(i64),
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
/// Where a job comes from: the chain it continues (its first job and the hop before),
/// and the stored source whose event made the chain.
#[derive(Default)]
pub(super) struct Origin<'a> {
    pub chain_id: Option<i64>,
    pub parent_id: Option<i64>,
    pub source_name: Option<&'a str>,
}

pub(super) async fn insert_job(
    tx: &mut Transaction<'_, Any>,
    request: &JobRequest,
    origin: &Origin<'_>,
) -> Result<Option<i64>> {
    let Origin {
        chain_id,
        parent_id,
        source_name,
    } = *origin;
    let now = now_ms();
    let row = sqlx::query(
        "INSERT INTO jobs (idempotency_key, spec, source_endpoint, destination_endpoint, template, \
             chain_id, parent_id, next_hops, priority, state, attempts, max_attempts, backoff_base_ms, \
             backoff_max_ms, run_after, cancel_requested, bytes, files, created_at, updated_at, source_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $11, $12, $13, 0, 0, 0, $13, $13, $14) \
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
    .bind(source_name)
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
