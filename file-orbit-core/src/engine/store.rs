//! The `Store`: sqlx pools over SQLite (embedded default, WAL: one writer connection,
//! and read-only connections beside it for the API's reads) or PostgreSQL (many nodes,
//! one pool), migrated on open. Only parameterised SQL; `$N` placeholders work on both
//! backends.

use super::Limits;
use crate::error::{Error, ErrorKind, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::time::Duration;

/// Which database is behind the pool; the few statements that differ branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The durable store shared by every part of the engine.
#[derive(Clone)]
pub struct Store {
    /// Every write, and reads inside a write's transaction.
    pub(crate) pool: AnyPool,
    /// Reads on their own (the API's listings, health, metrics): on SQLite, connections
    /// that only read, so no read waits for the one writer nor holds it (WAL lets them
    /// read while it writes); on PostgreSQL, `pool`.
    pub(crate) reader: AnyPool,
    pub(crate) backend: Backend,
    /// When `lease` last reaped lost and cancelled jobs (ms since the epoch), per process.
    pub(crate) last_reap: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// The bounds submissions and templates are checked against.
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// A store error: the operation named, the database's message kept (it never holds
/// secrets: they are sealed before they reach SQL). Kind `Store`, retryable when the store
/// did not answer (network, server down), so callers tell a store outage from a remote
/// endpoint's (`Connection`).
pub(crate) fn db_error(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |err| {
        let kind = match &err {
            sqlx::Error::RowNotFound => ErrorKind::NotFound,
            _ => ErrorKind::Store,
        };
        let unreachable = matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_));
        Error::new(kind, context, err.to_string()).with_retryable(unreachable)
    }
}

/// Read-only SQLite connections beside the writer.
const READERS: u32 = 4;

/// Connects `options` to `url`; a failure is a Connection error with the url's password
/// redacted.
async fn connect(options: AnyPoolOptions, url: &str) -> Result<AnyPool> {
    options
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .map_err(|err| {
            Error::new(
                ErrorKind::Connection,
                "opening the store",
                crate::rclone::redact(&err.to_string()),
            )
        })
}

/// A pool of up to `connections` SQLite connections to `url` in WAL mode, each set up
/// with `pragmas` too.
async fn sqlite_pool(url: &str, connections: u32, pragmas: &'static str) -> Result<AnyPool> {
    let options = AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000;",
                )
                .await?;
                conn.execute(pragmas).await?;
                Ok(())
            })
        });
    connect(options, url).await
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host:port/db`.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let (backend, path) = if let Some(path) = url.strip_prefix("sqlite://") {
            (Backend::Sqlite, path.split('?').next().unwrap_or(path))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url)
        } else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "opening the store",
                "store url must start with sqlite:// or postgres://",
            ));
        };
        let pool = match backend {
            // One connection: SQLite has one writer; queueing here avoids SQLITE_BUSY.
            Backend::Sqlite => {
                sqlite_pool(
                    &format!("sqlite://{path}?mode=rwc"),
                    1,
                    "PRAGMA foreign_keys = ON;",
                )
                .await?
            }
            Backend::Postgres => connect(AnyPoolOptions::new().max_connections(16), path).await?,
        };
        let migrated = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
        };
        migrated
            .map_err(|err| Error::new(ErrorKind::Store, "migrating the store", err.to_string()))?;
        let reader = match backend {
            // An in-memory database exists only on the writer's connection.
            Backend::Sqlite if path != ":memory:" => {
                sqlite_pool(
                    &format!("sqlite://{path}?mode=rw"),
                    READERS,
                    "PRAGMA query_only = ON;",
                )
                .await?
            }
            _ => pool.clone(),
        };
        Ok(Store {
            pool,
            reader,
            backend,
            last_reap: Default::default(),
            limits: Limits::default(),
        })
    }

    /// The same store, checking submissions and templates against `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    /// Closes every connection (waiting for those in use to come back).
    pub(crate) async fn close(&self) {
        self.reader.close().await;
        self.pool.close().await;
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The rows one listing page holds: `asked` within 1..=1,000, 100 when not positive.
pub(crate) fn page_limit(asked: i64) -> i64 {
    if asked <= 0 { 100 } else { asked.min(1000) }
}

/// Milliseconds since the Unix epoch: every time in the store.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A column value `put_named` writes.
pub(crate) enum Cell<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

/// Creates or replaces row `name` of `table` (keyed by `name`, with `created_at` and
/// `updated_at`) inside `tx`, writing `columns` (names from code, never from input);
/// replacing keeps `created_at`. Says whether the row existed, for the audit's
/// `.created` / `.edited`.
pub(crate) async fn put_named(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    name: &str,
    columns: &[(&str, Cell<'_>)],
    context: &str,
) -> Result<bool> {
    let now = now_ms();
    let bind_all = |sql| {
        columns
            .iter()
            .fold(sqlx::query(sql), |query, (_, cell)| match cell {
                Cell::Text(text) => query.bind(text.to_string()),
                Cell::Int(number) => query.bind(*number),
                Cell::Null => query.bind(None::<String>),
            })
    };
    let n = columns.len();
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ${}", i + 1))
        .collect();
    let update = format!(
        "UPDATE {table} SET {}, updated_at = ${} WHERE name = ${}",
        sets.join(", "),
        n + 1,
        n + 2
    );
    let existed = bind_all(&update)
        .bind(now)
        .bind(name.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error(context))?
        .rows_affected()
        > 0;
    if !existed {
        let names: Vec<&str> = columns.iter().map(|(column, _)| *column).collect();
        let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}, created_at, updated_at, name) VALUES ({}, ${}, ${}, ${})",
            names.join(", "),
            values.join(", "),
            n + 1,
            n + 1,
            n + 2
        );
        bind_all(&insert)
            .bind(now)
            .bind(name.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db_error(context))?;
    }
    Ok(existed)
}

/// `rows` rows of numbered placeholders from `$first`, one per entry of `cells` (each
/// cell's `$` becomes its placeholder): `cells = ["$", "CAST($ AS BIGINT)"]` makes
/// `($1, CAST($2 AS BIGINT)), ($3, CAST($4 AS BIGINT))`. For multi-row statements:
/// sqlx's `QueryBuilder` writes `?` for the Any driver, which PostgreSQL refuses.
pub(crate) fn placeholder_rows(first: usize, rows: usize, cells: &[&str]) -> String {
    (0..rows)
        .map(|row| {
            let row: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(column, cell)| {
                    cell.replace('$', &format!("${}", first + row * cells.len() + column))
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::JobRequest;
    use crate::path_template::PathTemplate;
    use crate::transfer::TransferSpec;

    /// On SQLite a read in progress (a reader connection inside a read transaction) does
    /// not keep a write waiting: the writer is a connection of its own.
    #[tokio::test]
    async fn reads_in_progress_do_not_hold_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url).await.unwrap();
        let mut reading = store.reader.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *reading).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM jobs")
            .fetch_one(&mut *reading)
            .await
            .unwrap();
        let request = JobRequest::new(TransferSpec::file(
            "a",
            "in/x.csv",
            "b",
            PathTemplate::parse("{filename}").unwrap(),
        ));
        let submitted =
            tokio::time::timeout(Duration::from_secs(10), store.submit(&request, "test"))
                .await
                .expect("the write waited for the reads");
        submitted.unwrap();
        sqlx::query("ROLLBACK")
            .execute(&mut *reading)
            .await
            .unwrap();
        drop(reading);
        assert_eq!(store.job_counts().await.unwrap().total(), 1);
    }
}
