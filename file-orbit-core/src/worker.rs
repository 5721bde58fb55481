//! The standalone worker service (feature `worker`): its TOML configuration and the loop
//! that opens the shared store, runs workers until a shutdown signal, then lets running
//! transfers finish within the grace period. `examples/worker.rs` wires it to a process.

use crate::engine::{Limits, Orbit, OrbitOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::service::logs::LogConfig;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// Overrides `WorkerConfig::store_url`.
pub const STORE_URL_ENV: &str = "FILE_ORBIT_STORE_URL";
/// Overrides `WorkerConfig::workers`.
pub const WORKERS_ENV: &str = "FILE_ORBIT_WORKERS";

/// The worker service's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The store shared with the server: `postgres://...` (or a SQLite file on this host).
    pub store_url: String,
    /// Concurrent transfers of this process.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long a lease lasts without a heartbeat: a killed worker's jobs run again after it.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// How long running transfers may take to finish on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// This worker in the audit log and lease owners; default `worker`.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub log: LogConfig,
    /// `[limits]`: a stored job above them is not run here (it is dead, with the reason).
    #[serde(default)]
    pub limits: Limits,
}

fn default_workers() -> usize {
    4
}
fn default_lease() -> u64 {
    30
}
fn default_grace() -> u64 {
    30
}
fn default_name() -> String {
    "worker".into()
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid_field("worker configuration", field, message)
}

impl WorkerConfig {
    /// The defaults for a store.
    pub fn new(store_url: &str) -> WorkerConfig {
        WorkerConfig {
            store_url: store_url.to_string(),
            workers: default_workers(),
            lease_secs: default_lease(),
            shutdown_grace_secs: default_grace(),
            name: default_name(),
            log: LogConfig::default(),
            limits: Limits::default(),
        }
    }

    /// Parses a TOML configuration; an unknown key is an error naming it.
    pub fn from_toml(text: &str) -> Result<WorkerConfig> {
        let config: WorkerConfig = toml::from_str(text).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                "worker configuration",
                err.to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `FILE_ORBIT_STORE_URL`, `FILE_ORBIT_WORKERS` and the log overrides.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Ok(url) = std::env::var(STORE_URL_ENV) {
            self.store_url = url;
        }
        if let Ok(workers) = std::env::var(WORKERS_ENV) {
            self.workers = workers.parse().map_err(|_| {
                invalid(
                    WORKERS_ENV,
                    format!("{workers:?} is not a number of workers"),
                )
            })?;
        }
        self.log.apply_env()?;
        self.validate()
    }

    pub fn validate(&self) -> Result<()> {
        if self.store_url.is_empty() {
            return Err(invalid("store_url", "must be set"));
        }
        if self.workers == 0 {
            return Err(invalid("workers", "must be at least 1"));
        }
        if self.lease_secs == 0 {
            return Err(invalid("lease_secs", "must be at least 1"));
        }
        if self.name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        self.log.validate()
    }

    pub fn orbit_options(&self) -> OrbitOptions {
        OrbitOptions {
            store_url: self.store_url.clone(),
            lease: Duration::from_secs(self.lease_secs),
            actor: self.name.clone(),
            limits: self.limits,
            ..OrbitOptions::default()
        }
    }
}

/// Runs `config.workers` workers on the store until `shutdown` resolves, then stops
/// leasing and waits up to the grace period for running transfers. True when they all
/// finished in time; otherwise they are stopped and their jobs go back to the queue.
pub async fn run(config: &WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<bool> {
    config.validate()?;
    let orbit = Orbit::open(config.orbit_options()).await?;
    let workers = orbit.start_workers(config.workers);
    tracing::info!(
        workers = config.workers,
        name = %config.name,
        "worker service started"
    );
    shutdown.await;
    tracing::info!("stopping: no new jobs; waiting for running transfers");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let clean = workers.shutdown_within(grace).await;
    orbit.close().await;
    tracing::info!(clean, "worker service stopped");
    Ok(clean)
}
