//! The standalone worker service (feature `worker`): its TOML configuration and the loop
//! that opens the shared store, runs workers and the sources its node may run until a
//! shutdown signal, then lets running transfers finish within the grace period, and where
//! the configuration comes from (`--config PATH`, `$FILE_ORBIT_CONFIG` or the environment
//! alone). With an `[agent]` section instead of `store_url` it runs in agent mode
//! (`crate::agent`). `examples/worker.rs` wires it to a process.

use crate::agent::AgentConfig;
use crate::endpoint::Bandwidth;
use crate::engine::{BandwidthOptions, Limits, NodeIdentity, Orbit, OrbitOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::service::declared::{
    DeclaredNotification, DeclaredSource, NotifierConfig, SourceRunnerConfig,
    apply_declared_notifications, apply_declared_sources,
};
use crate::service::logs::LogConfig;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// Overrides `WorkerConfig::store_url`.
pub const STORE_URL_ENV: &str = "FILE_ORBIT_STORE_URL";
/// Overrides `WorkerConfig::workers`.
pub const WORKERS_ENV: &str = "FILE_ORBIT_WORKERS";
/// The configuration file, when `--config` is not given.
pub const CONFIG_ENV: &str = "FILE_ORBIT_CONFIG";

/// The worker service's configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The store shared with the server: `postgres://...` (or a SQLite file on this host).
    /// Empty in agent mode.
    #[serde(default)]
    pub store_url: String,
    /// `[agent]`: agent mode, talking to the control plane instead of the store (exactly
    /// one of `store_url` and `[agent]`).
    #[serde(default)]
    pub agent: Option<AgentConfig>,
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
    /// `[node]`: this node's name (default the host name) and labels, which decide the
    /// sources it may run (e.g. a watch of a folder only this host sees).
    #[serde(default)]
    pub node: NodeIdentity,
    /// `[[sources]]` declared as code: stored at start when new or changed.
    #[serde(default)]
    pub sources: Vec<DeclaredSource>,
    /// `[source_runner]`: whether this worker runs stored sources, and their lease.
    #[serde(default)]
    pub source_runner: SourceRunnerConfig,
    /// The most this worker's transfers to and from remote endpoints may move together,
    /// on top of each endpoint's own limit (as an endpoint's `bandwidth`).
    #[serde(default)]
    pub bandwidth: Option<Bandwidth>,
    /// `[[notifications]]` declared as code: stored at start when new or changed.
    #[serde(default)]
    pub notifications: Vec<DeclaredNotification>,
    /// `[notifier]`: whether this worker sends notifications, the hosts their channels
    /// may reach (`allow`), job links (`link_base`: the server's URL), tries.
    #[serde(default)]
    pub notifier: NotifierConfig,
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
            agent: None,
            workers: default_workers(),
            lease_secs: default_lease(),
            shutdown_grace_secs: default_grace(),
            name: default_name(),
            log: LogConfig::default(),
            limits: Limits::default(),
            node: NodeIdentity::default(),
            sources: Vec::new(),
            source_runner: SourceRunnerConfig::default(),
            bandwidth: None,
            notifications: Vec::new(),
            notifier: NotifierConfig::default(),
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

    /// From this process's arguments and environment (see `discover`).
    pub fn from_process() -> Result<WorkerConfig> {
        WorkerConfig::discover(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// From `args` (without the program name: `--config PATH` or `--config=PATH`) and the
    /// variables `env` returns: the file named there, else `$FILE_ORBIT_CONFIG`, else the
    /// defaults for `$FILE_ORBIT_STORE_URL`; then the overrides (`apply_env_from`).
    pub fn discover(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkerConfig> {
        let command_line =
            |message: String| Error::new(ErrorKind::InvalidInput, "worker command line", message);
        let mut path = env(CONFIG_ENV).filter(|path| !path.is_empty());
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => {
                    path = Some(
                        args.next()
                            .ok_or_else(|| command_line("--config needs a path".into()))?,
                    )
                }
                other => match other.strip_prefix("--config=") {
                    Some(given) => path = Some(given.to_string()),
                    None => {
                        return Err(command_line(format!(
                            "unknown argument {other:?} (only --config PATH)"
                        )));
                    }
                },
            }
        }
        let mut config = match &path {
            Some(path) => {
                let at =
                    |message: String| Error::new(ErrorKind::InvalidInput, path.clone(), message);
                let text = std::fs::read_to_string(path).map_err(|err| at(err.to_string()))?;
                WorkerConfig::from_toml(&text).map_err(|err| Error {
                    context: path.clone(),
                    ..err
                })?
            }
            None => {
                let url = env(STORE_URL_ENV).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        "worker configuration",
                        format!("no configuration: pass --config PATH or set {STORE_URL_ENV}"),
                    )
                })?;
                WorkerConfig::new(&url)
            }
        };
        config.apply_env_from(env)?;
        Ok(config)
    }

    /// The defaults for an agent of the control plane `agent` names.
    pub fn agent(agent: AgentConfig) -> WorkerConfig {
        WorkerConfig {
            agent: Some(agent),
            ..WorkerConfig::new("")
        }
    }

    /// Applies `FILE_ORBIT_STORE_URL`, `FILE_ORBIT_WORKERS`, in agent mode
    /// `FILE_ORBIT_ENROLMENT_TOKEN`, and the log overrides.
    pub fn apply_env(&mut self) -> Result<()> {
        self.apply_env_from(|name| std::env::var(name).ok())
    }

    /// `apply_env` with the variables `env` returns (the log overrides always come from
    /// the process's environment).
    pub fn apply_env_from(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(url) = env(STORE_URL_ENV).filter(|url| !url.is_empty()) {
            self.store_url = url;
        }
        if let Some(agent) = &mut self.agent {
            agent.apply_env_from(&env);
        }
        if let Some(workers) = env(WORKERS_ENV) {
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
        match (&self.agent, self.store_url.is_empty()) {
            (None, true) => {
                return Err(invalid(
                    "store_url",
                    "must be set (or an [agent] section, for agent mode)",
                ));
            }
            (Some(_), false) => {
                return Err(invalid(
                    "store_url",
                    format!(
                        "an agent talks to the control plane, not to the store: give                          store_url (or ${STORE_URL_ENV}) or [agent], not both"
                    ),
                ));
            }
            (Some(agent), true) => self.validate_agent_mode(agent)?,
            (None, false) => {}
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
        self.node.validate().map_err(|err| Error {
            context: "worker configuration".into(),
            ..err.within("node")
        })?;
        self.source_runner.validate()?;
        self.notifier.validate()?;
        self.log.validate()
    }

    /// What agent mode does not support (yet) is refused by name.
    fn validate_agent_mode(&self, agent: &AgentConfig) -> Result<()> {
        let unsupported = [
            ("sources", !self.sources.is_empty()),
            ("notifications", !self.notifications.is_empty()),
            ("bandwidth", self.bandwidth.is_some()),
        ];
        for (field, given) in unsupported {
            if given {
                return Err(invalid(field, "is not supported on agents yet"));
            }
        }
        self.limits.validate()?;
        agent.validate()
    }

    pub fn orbit_options(&self) -> OrbitOptions {
        OrbitOptions {
            store_url: self.store_url.clone(),
            lease: Duration::from_secs(self.lease_secs),
            actor: self.name.clone(),
            limits: self.limits,
            node: self.node.clone(),
            bandwidth: BandwidthOptions {
                service: self.bandwidth.clone(),
                ..Default::default()
            },
            notify_allow: self.notifier.allow.clone(),
            ..OrbitOptions::default()
        }
    }
}

/// Runs `config.workers` workers on the store (and the sources this node may run), or in
/// agent mode (`[agent]`) leases through the control plane (`crate::agent::run`), until
/// `shutdown` resolves, then stops leasing and waits up to the grace period for running
/// transfers. True when they all finished in time; otherwise they are stopped and their
/// jobs go back to the queue.
pub async fn run(config: &WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<bool> {
    config.validate()?;
    if config.agent.is_some() {
        return crate::agent::run(config, shutdown).await;
    }
    let orbit = Orbit::open(config.orbit_options()).await?;
    apply_declared_sources(&orbit.acting_as("config"), &config.sources).await?;
    apply_declared_notifications(&orbit.acting_as("config"), &config.notifications).await?;
    let sources = match config.source_runner.enabled {
        true => Some(orbit.start_source_runner(config.source_runner.options())?),
        false => None,
    };
    let default_link = crate::notify::NotifierOptions::default().link_base;
    let notifier = match config.notifier.enabled {
        true => Some(orbit.start_notifier(config.notifier.options(&default_link))?),
        false => None,
    };
    let workers = orbit.start_workers(config.workers);
    tracing::info!(
        workers = config.workers,
        name = %config.name,
        "worker service started"
    );
    shutdown.await;
    if let Some(sources) = sources {
        sources.shutdown().await;
    }
    if let Some(notifier) = notifier {
        notifier.shutdown().await;
    }
    tracing::info!("stopping: no new jobs; waiting for running transfers");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let clean = workers.shutdown_within(grace).await;
    orbit.close().await;
    tracing::info!(clean, "worker service stopped");
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn discover(args: &[&str], env: &[(&str, &str)]) -> Result<WorkerConfig> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorkerConfig::discover(args.iter().map(|a| a.to_string()), |name| {
            env.get(name).cloned()
        })
    }

    #[test]
    fn the_config_comes_from_args_then_env_then_the_store_url_alone() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, workers: usize| {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                format!("store_url = \"sqlite://{name}.db\"\nworkers = {workers}\n"),
            )
            .unwrap();
            path.display().to_string()
        };
        let (from_args, from_env) = (write("args", 5), write("env", 6));
        let env = [(CONFIG_ENV, from_env.as_str())];
        assert_eq!(
            discover(&["--config", &from_args], &env).unwrap().workers,
            5
        );
        assert_eq!(
            discover(&[&format!("--config={from_args}")], &env)
                .unwrap()
                .workers,
            5
        );
        assert_eq!(discover(&[], &env).unwrap().workers, 6);
        // The environment overrides the file.
        let config = discover(
            &[],
            &[
                env[0],
                (STORE_URL_ENV, "postgres://db/x"),
                (WORKERS_ENV, "9"),
            ],
        )
        .unwrap();
        assert_eq!(
            (config.store_url.as_str(), config.workers),
            ("postgres://db/x", 9)
        );
        // No file: the store URL alone, with the defaults.
        let config = discover(&[], &[(STORE_URL_ENV, "sqlite://w.db")]).unwrap();
        assert_eq!(
            (config.store_url.as_str(), config.workers),
            ("sqlite://w.db", 4)
        );
    }

    #[test]
    fn missing_or_bad_input_is_named() {
        let err = discover(&[], &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("pass --config PATH or set FILE_ORBIT_STORE_URL"),
            "{err}"
        );
        let err = discover(&["--config"], &[]).unwrap_err();
        assert!(err.to_string().contains("--config needs a path"), "{err}");
        let err = discover(&["--workers", "3"], &[]).unwrap_err();
        assert!(err.to_string().contains("\"--workers\""), "{err}");
        let err = discover(
            &[],
            &[(STORE_URL_ENV, "sqlite://w.db"), (WORKERS_ENV, "many")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("FILE_ORBIT_WORKERS: \"many\""),
            "{err}"
        );
        let err = discover(&["--config", "/nonexistent/worker.toml"], &[]).unwrap_err();
        assert_eq!(err.context, "/nonexistent/worker.toml", "{err}");
    }
}
