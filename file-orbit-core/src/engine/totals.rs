//! Totals the store keeps as jobs, attempts and events change (the triggers of migration
//! 0006, in the transaction of each change): jobs by state and endpoint pair, finished
//! attempts by outcome and duration bucket, events by state. `/metrics` and `/health`
//! read these few rows instead of counting every job, on the store's readers. On
//! PostgreSQL each change appends rows, which a read folds back into one per label set
//! once enough have gathered (the only write here).

use super::queue::{JobCounts, JobState};
use super::store::{Backend, Store, db_error};
use crate::error::Result;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Jobs in one state between one endpoint pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobTotal {
    pub state: JobState,
    pub source_endpoint: String,
    pub destination_endpoint: String,
    pub jobs: i64,
    /// Bytes the jobs moved (set when a job succeeds).
    pub bytes: i64,
    /// Attempts after each job's first.
    pub retries: i64,
}

/// Finished attempts with one outcome whose durations fall in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptTotal {
    /// `succeeded`, `failed`, `lost`, `released`, `cancelled`.
    pub outcome: String,
    /// The bucket's upper bound in milliseconds (`i64::MAX`: no bound).
    pub le_ms: i64,
    pub attempts: i64,
    /// Their durations added up.
    pub millis: i64,
}

/// Attempt totals with the buckets they are counted in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttemptTotals {
    /// Upper bounds (ms) of the duration buckets, ascending; the last is `i64::MAX`.
    pub buckets: Vec<i64>,
    pub totals: Vec<AttemptTotal>,
}

/// Once a table holds this many more rows than label sets, a read folds them.
const FOLD_AFTER: i64 = 1000;

/// Folds run one at a time across the cluster (a transaction-scoped advisory lock).
const FOLD_LOCK: i64 = 7243006;

/// One table of totals: its label columns and its value columns.
struct Table {
    name: &'static str,
    labels: &'static str,
    values: &'static [&'static str],
}

const JOBS: Table = Table {
    name: "job_totals",
    labels: "state, source_endpoint, destination_endpoint",
    values: &["jobs", "bytes", "retries"],
};

const ATTEMPTS: Table = Table {
    name: "attempt_totals",
    labels: "outcome, le_ms",
    values: &["attempts", "millis"],
};

const EVENTS: Table = Table {
    name: "event_totals",
    labels: "state",
    values: &["events"],
};

impl Table {
    /// `SUM(v) AS v` for each value column.
    fn sums(&self) -> String {
        self.values
            .iter()
            .map(|value| format!("CAST(SUM({value}) AS BIGINT) AS {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Label sets whose values do not all add up to zero.
    fn nonzero(&self) -> String {
        self.values
            .iter()
            .map(|value| format!("SUM({value}) <> 0"))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

impl Store {
    /// Jobs by state and endpoint pair (label sets without jobs left out).
    pub async fn job_totals(&self) -> Result<Vec<JobTotal>> {
        let context = "reading job totals";
        let rows = self.totals(&JOBS, context).await?;
        rows.iter()
            .map(|row| {
                let text = |name: &str| row.try_get::<String, _>(name).map_err(db_error(context));
                let value = |name: &str| row.try_get::<i64, _>(name).map_err(db_error(context));
                Ok(JobTotal {
                    state: JobState::parse(&text("state")?)?,
                    source_endpoint: text("source_endpoint")?,
                    destination_endpoint: text("destination_endpoint")?,
                    jobs: value("jobs")?,
                    bytes: value("bytes")?,
                    retries: value("retries")?,
                })
            })
            .collect()
    }

    /// Finished attempts by outcome and duration bucket.
    pub async fn attempt_totals(&self) -> Result<AttemptTotals> {
        let context = "reading attempt totals";
        let buckets = sqlx::query("SELECT le_ms FROM attempt_duration_buckets ORDER BY le_ms")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error(context))?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(db_error(context))?;
        let rows = self.totals(&ATTEMPTS, context).await?;
        let totals = rows
            .iter()
            .map(|row| {
                Ok(AttemptTotal {
                    outcome: row.try_get("outcome")?,
                    le_ms: row.try_get("le_ms")?,
                    attempts: row.try_get("attempts")?,
                    millis: row.try_get("millis")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error(context))?;
        Ok(AttemptTotals { buckets, totals })
    }

    /// Stored events by state: (state, events).
    pub async fn event_totals(&self) -> Result<Vec<(String, i64)>> {
        let context = "reading event totals";
        let rows = self.totals(&EVENTS, context).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("events")?)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error(context))
    }

    /// `table`'s label sets with their values added up (those adding up to nothing left
    /// out), from a reader; on PostgreSQL the rows are folded afterwards when many have
    /// gathered.
    async fn totals(&self, table: &Table, context: &str) -> Result<Vec<AnyRow>> {
        let sql = format!(
            "SELECT {labels}, {sums}, COUNT(*) AS pieces FROM {name} GROUP BY {labels} \
             ORDER BY {labels}",
            labels = table.labels,
            sums = table.sums(),
            name = table.name,
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error(context))?;
        let label_sets = rows.len() as i64;
        let (mut pieces, mut kept) = (0, Vec::with_capacity(rows.len()));
        for row in rows {
            pieces += row.try_get::<i64, _>("pieces").map_err(db_error(context))?;
            let mut nonzero = false;
            for value in table.values {
                nonzero |= row.try_get::<i64, _>(*value).map_err(db_error(context))? != 0;
            }
            if nonzero {
                kept.push(row);
            }
        }
        if self.backend == Backend::Postgres && pieces > label_sets + FOLD_AFTER {
            // The read stands; a failed fold only leaves the rows for the next one.
            if let Err(err) = self.fold(table).await {
                tracing::warn!(table = table.name, %err, "could not fold the store's totals");
            }
        }
        Ok(kept)
    }

    /// Replaces `table`'s rows by one per label set (PostgreSQL; one folder at a time,
    /// others skip). Rows appended meanwhile by other transactions stay for the next fold.
    async fn fold(&self, table: &Table) -> Result<()> {
        let context = "folding totals";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FOLD_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(context))?;
        if !locked {
            return Ok(());
        }
        let values = table.values.join(", ");
        let sql = format!(
            "WITH gone AS (DELETE FROM {name} RETURNING *) \
             INSERT INTO {name} ({labels}, {values}) \
             SELECT {labels}, {sums} FROM gone GROUP BY {labels} HAVING {nonzero}",
            name = table.name,
            labels = table.labels,
            sums = table.sums(),
            nonzero = table.nonzero(),
        );
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(db_error(context))?;
        tx.commit().await.map_err(db_error(context))
    }
}

impl JobCounts {
    /// Jobs per state from the totals per state and endpoint pair.
    pub fn of(totals: &[JobTotal]) -> JobCounts {
        let mut counts: Vec<(JobState, i64)> = Vec::new();
        for total in totals {
            match counts.iter_mut().find(|(state, _)| *state == total.state) {
                Some((_, jobs)) => *jobs += total.jobs,
                None => counts.push((total.state, total.jobs)),
            }
        }
        JobCounts(counts)
    }
}
