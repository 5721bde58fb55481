//! The `Store`: one sqlx pool over SQLite (embedded default, WAL, one writer) or
//! PostgreSQL (many nodes), migrated on open. Only parameterised SQL; `$N` placeholders
//! work on both backends.

use super::Limits;
use crate::error::{Error, ErrorKind, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
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
    pub(crate) pool: AnyPool,
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
        let mut error = Error::new(kind, context, err.to_string());
        error.retryable = unreachable;
        error
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host:port/db`.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "opening the store",
                "store url must start with sqlite:// or postgres://",
            ));
        };
        let options = match backend {
            // One connection: SQLite has one writer; queueing here avoids SQLITE_BUSY.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .map_err(|err| {
                Error::new(
                    ErrorKind::Connection,
                    "opening the store",
                    crate::rclone::redact(&err.to_string()),
                )
            })?;
        let migrated = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
        };
        migrated
            .map_err(|err| Error::new(ErrorKind::Store, "migrating the store", err.to_string()))?;
        Ok(Store {
            pool,
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

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Store {
    /// Deletes the row of `kind` (`endpoint`, `template`) named `name` with `delete` (a
    /// fixed `DELETE ... WHERE name = $1`) inside `tx`, audits `<kind>.deleted` by `actor`
    /// and commits; NotFound when there is no such row.
    pub(crate) async fn delete_named(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        delete: &'static str,
        kind: &str,
        name: &str,
        actor: &str,
    ) -> Result<()> {
        let context = format!("deleting {kind} {name:?}");
        let deleted = sqlx::query(delete)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error(&context))?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::new(
                ErrorKind::NotFound,
                context,
                format!("no {kind} named {name:?}"),
            ));
        }
        super::audit::append(
            &mut tx,
            self.backend,
            actor,
            &format!("{kind}.deleted"),
            &format!("{kind}/{name}"),
            "ok",
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await.map_err(db_error(&context))
    }
}

/// Milliseconds since the Unix epoch: every time in the store.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
