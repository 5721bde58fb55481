//! The REST server over an `Orbit` (feature `server`): `/api/v1` for endpoints,
//! templates, jobs (with live progress as Server-Sent Events), events and the audit log;
//! `/health` (no auth: ok or not per component; details for a viewer) and `/metrics`
//! (Prometheus text). Every other route needs an API key or JWT with a role (`viewer` <
//! `operator` < `admin`) and is rate limited per caller (failed authentication per client
//! address). API keys are managed in the store (`/api/v1/keys`). Secrets are never
//! returned: endpoints are listed from their public config. With `[tls]` it serves HTTPS
//! itself (`tls`); plain HTTP is meant for loopback.

mod agent_api;
mod agents_config;
mod api_doc;
mod auth;
mod config;
mod error;
mod guards;
mod handlers;
mod health;
mod keys;
mod keys_cli;
mod metrics;
mod routes;
mod startup;
mod tls;
mod ui;

pub use agents_config::AgentsConfig;
pub use api_doc::required_role;
pub use api_doc::{API_ROUTES, ApiRoute, openapi};
pub use auth::{Principal, sign_jwt};
pub use config::{
    ApiKeyEntry, ConsoleConfig, DeclaredEndpoint, RateLimit, Role, ServerConfig, generate_api_key,
    hash_api_key,
};
pub use error::ApiError;
pub use error::{ErrorBody, ErrorDetail};
pub use keys::{ApiKeyInfo, create_api_key, days_from_now, list_api_keys, revoke_api_key};
pub use keys_cli::{KEYS_USAGE, keys_command};
pub use startup::{
    CONFIG_ENV, Command, DATA_DIR_ENV, DEFAULT_CONFIG_NAME, LISTEN_ENV, STORE_URL_ENV, Startup,
};
pub use tls::{HANDSHAKE_TIMEOUT, TlsConfig};
pub use ui::{CONSOLE_ROUTES, CONTENT_SECURITY_POLICY, ConsoleRoute};

use crate::engine::{Orbit, Workers};
use crate::error::{Error, ErrorKind, Result};
use crate::events::runner::SourceRunner;
use crate::events::schedule::Scheduler;
use crate::notify::Notifier;
use auth::{Authenticator, RateLimiter};
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the server looks for due schedule ticks.
const SCHEDULE_CHECK: Duration = Duration::from_secs(1);

/// What `/health` knows about this process's workers.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    /// Workers started in this process.
    pub count: AtomicUsize,
    /// Set once shutdown began: no new jobs are taken.
    pub draining: AtomicBool,
}

/// Shared by every request.
pub struct AppState {
    pub orbit: Orbit,
    pub config: ServerConfig,
    pub workers: Arc<WorkerStatus>,
    authenticator: Authenticator,
    limiter: RateLimiter,
    /// Failed authentication, per client address.
    failed_auth: RateLimiter,
    /// Closed on shutdown: live streams end.
    stopping: watch::Receiver<bool>,
}

/// The API as an axum `Router` (for embedding in another server). Workers are not
/// started; `workers` says what `/health` reports about them.
pub fn router(
    orbit: Orbit,
    config: ServerConfig,
    workers: Arc<WorkerStatus>,
    stopping: watch::Receiver<bool>,
) -> axum::Router {
    let state = Arc::new(AppState {
        authenticator: Authenticator::new(&config, orbit.store().clone()),
        limiter: RateLimiter::new(config.rate_limit),
        failed_auth: RateLimiter::new(config.failed_auth_limit),
        orbit,
        config,
        workers,
        stopping,
    });
    routes::router(state)
}

///
/// ```no_run
/// use file_orbit_core::engine::{Orbit, OrbitOptions};
/// use file_orbit_core::server::{Server, ServerConfig};
///
/// # async fn example() -> file_orbit_core::Result<()> {
/// let orbit = Orbit::open(OrbitOptions::default()).await?;
/// let config = ServerConfig { listen: "127.0.0.1:8080".into(), ..ServerConfig::default() };
/// let server = Server::start(orbit, config).await?; // REST API + `config.workers` workers
/// println!("listening on http://{}", server.local_addr());
/// file_orbit_core::service::shutdown_signal().await; // SIGINT or SIGTERM
/// server.shutdown().await; // stop leasing, let running transfers finish
/// # Ok(())
/// # }
/// ```
/// A running server: HTTP (or HTTPS with `[tls]`) plus in-process workers.
pub struct Server {
    addr: SocketAddr,
    scheduler: Option<Scheduler>,
    sources: Option<SourceRunner>,
    notifier: Option<Notifier>,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    workers: Option<Workers>,
    status: Arc<WorkerStatus>,
    grace: Duration,
}

impl Server {
    /// Binds `config.listen`, starts `config.workers` workers and serves the API.
    pub async fn start(orbit: Orbit, config: ServerConfig) -> Result<Server> {
        config.validate()?;
        let tls = config.tls.acceptor()?;
        config
            .apply_declarations(&orbit.acting_as("config"))
            .await?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|err| {
                Error::invalid_field(
                    "starting the server",
                    "listen",
                    format!("cannot bind {}: {err}", config.listen),
                )
            })?;
        let addr = listener.local_addr().map_err(|err| {
            Error::new(
                ErrorKind::Connection,
                "starting the server",
                err.to_string(),
            )
        })?;
        let scheme = config.tls.scheme();
        tracing::info!(%addr, scheme, workers = config.workers, "server started");
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "plain HTTP on a non-loopback address: the API, its keys and agents' credentials travel in clear (set [tls] cert_path and key_path)"
            );
        }
        let status = Arc::new(WorkerStatus::default());
        let workers = (config.workers > 0).then(|| orbit.start_workers(config.workers));
        // Every node checks the schedules; each tick fires once across them all.
        let scheduler = Some(orbit.start_scheduler(SCHEDULE_CHECK));
        // Every node runs the sources it may and nobody else holds.
        let sources = match config.source_runner.enabled {
            true => Some(orbit.start_source_runner(config.source_runner.options())?),
            false => None,
        };
        // Every node may send notifications; each message is sent by the one leasing it.
        let notifier = match config.notifier.enabled {
            true => {
                Some(orbit.start_notifier(config.notifier.options(&format!("{scheme}://{addr}")))?)
            }
            false => None,
        };
        status.count.store(config.workers, Ordering::Relaxed);
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        let (stop, stopping) = watch::channel(false);
        let app = router(orbit, config, status.clone(), stopping.clone());
        let mut shutdown = stopping;
        let stopped = async move {
            let _ = shutdown.changed().await;
        };
        // The peer's address keys the failed-authentication buckets.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let http = match tls {
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }),
            Some(acceptor) => {
                // `tap_io` also gives the handlers `ConnectInfo<SocketAddr>` (axum derives it
                // for a tapped listener whose address is a `SocketAddr`).
                // No Nagle delay between the small TLS records of one response.
                let listener = tls::TlsListener::new(listener, addr, acceptor).tap_io(|tls| {
                    let _ = tls.get_ref().0.set_nodelay(true);
                });
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            }
        };
        Ok(Server {
            addr,
            scheduler,
            sources,
            notifier,
            stop,
            http,
            workers,
            status,
            grace,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and jobs, lets running transfers finish within the grace
    /// period, then stops the rest and releases their jobs to the queue; true when
    /// everything finished in time.
    pub async fn shutdown(mut self) -> bool {
        self.status.draining.store(true, Ordering::Relaxed);
        tracing::info!("server stopping: no new requests or jobs");
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.grace;
        let mut clean = true;
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.shutdown().await;
        }
        if let Some(sources) = self.sources.take() {
            sources.shutdown().await;
        }
        if let Some(notifier) = self.notifier.take() {
            notifier.shutdown().await;
        }
        if let Some(workers) = self.workers.take() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            clean &= workers.shutdown_within(left).await;
        }
        match tokio::time::timeout_at(deadline, &mut self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(_) => clean = false,
            Err(_) => {
                self.http.abort();
                clean = false;
            }
        }
        clean
    }
}
