//! The registry of worker processes: each `Workers` records itself (host, pid, slots,
//! running transfers) and renews the record like a lease, so any node of a cluster can
//! tell which workers are alive.

use super::store::{Store, db_error, now_ms};
use crate::error::Result;
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;

/// A worker process as registered.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct WorkerNode {
    /// `host-pid`; its slots lease jobs as `host-pid-wN`.
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// Transfers it runs at once.
    pub slots: i64,
    /// Transfers it ran at its last renewal while alive; 0 once it is not (a worker that
    /// stopped or went silent holds no lease any more).
    pub running: i64,
    pub started_at: i64,
    pub last_seen: i64,
    /// Renewed in time and not stopped.
    pub alive: bool,
    pub stopped_at: Option<i64>,
}

/// The live part of the cluster: the worker processes alive now, their slots and the
/// transfers they reported running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LiveWorkers {
    pub alive: i64,
    pub slots: i64,
    pub running: i64,
}

impl LiveWorkers {
    pub fn of(nodes: &[WorkerNode]) -> LiveWorkers {
        nodes
            .iter()
            .filter(|node| node.alive)
            .fold(LiveWorkers::default(), |live, node| LiveWorkers {
                alive: live.alive + 1,
                slots: live.slots + node.slots,
                running: live.running + node.running,
            })
    }
}

/// How long a stopped or silent worker stays listed.
const LISTED_FOR: Duration = Duration::from_secs(24 * 3600);

/// How long a stopped or silent worker's entry is kept at all.
const KEPT_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

impl Store {
    /// Records worker process `id` as started, alive for `fresh_for` (and forgets the
    /// workers silent for a month).
    pub(crate) async fn register_node(
        &self,
        id: &str,
        host: &str,
        slots: usize,
        fresh_for: Duration,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM worker_nodes WHERE last_seen < $1")
            .bind(now - KEPT_FOR.as_millis() as i64)
            .execute(&self.pool)
            .await
            .map_err(db_error("pruning the worker registry"))?;
        sqlx::query(
            "INSERT INTO worker_nodes (id, host, pid, slots, running, started_at, last_seen, \
                 expires_at, stopped_at) VALUES ($1, $2, $3, $4, 0, $5, $5, $6, NULL) \
             ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, slots = $4, running = 0, \
                 started_at = $5, last_seen = $5, expires_at = $6, stopped_at = NULL",
        )
        .bind(id)
        .bind(host)
        .bind(i64::from(std::process::id()))
        .bind(slots as i64)
        .bind(now)
        .bind(now + fresh_for.as_millis() as i64)
        .execute(&self.pool)
        .await
        .map_err(db_error("registering a worker"))?;
        Ok(())
    }

    /// Renews worker process `id` for `fresh_for`, with its running transfers.
    pub(crate) async fn renew_node(
        &self,
        id: &str,
        running: usize,
        fresh_for: Duration,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE worker_nodes SET running = $1, last_seen = $2, expires_at = $3 WHERE id = $4",
        )
        .bind(running as i64)
        .bind(now)
        .bind(now + fresh_for.as_millis() as i64)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error("renewing a worker"))?;
        Ok(())
    }

    /// Records that worker process `id` stopped.
    pub(crate) async fn node_stopped(&self, id: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE worker_nodes SET running = 0, last_seen = $1, stopped_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error("recording a stopped worker"))?;
        Ok(())
    }

    /// The worker processes seen in the last day, alive ones first, then by last contact.
    pub async fn worker_nodes(&self) -> Result<Vec<WorkerNode>> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT id, host, pid, slots, running, started_at, last_seen, expires_at, stopped_at \
             FROM worker_nodes WHERE last_seen >= $1 ORDER BY last_seen DESC, id LIMIT 1000",
        )
        .bind(now - LISTED_FOR.as_millis() as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("listing workers"))?;
        let read = |row: &sqlx::any::AnyRow| -> std::result::Result<WorkerNode, sqlx::Error> {
            let stopped_at: Option<i64> = row.try_get("stopped_at")?;
            let alive = stopped_at.is_none() && row.try_get::<i64, _>("expires_at")? >= now;
            Ok(WorkerNode {
                id: row.try_get("id")?,
                host: row.try_get("host")?,
                pid: row.try_get("pid")?,
                slots: row.try_get("slots")?,
                running: if alive { row.try_get("running")? } else { 0 },
                started_at: row.try_get("started_at")?,
                last_seen: row.try_get("last_seen")?,
                alive,
                stopped_at,
            })
        };
        let mut nodes = rows
            .iter()
            .map(read)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db_error("listing workers"))?;
        nodes.sort_by_key(|node| !node.alive);
        Ok(nodes)
    }
}
