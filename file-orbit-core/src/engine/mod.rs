//! The durable engine and `Orbit`, its embeddable entry point: a store (SQLite or
//! PostgreSQL), endpoints with sealed credentials, transfer templates, the job queue,
//! chains, the audit log, and in-process workers.

mod agent_work;
mod agents;
mod api_keys;
mod audit;
mod bandwidth;
mod dashboard;
mod endpoints;
mod event_log;
mod keyring;
mod limits;
mod names;
mod nodes;
mod notifications;
mod notify_cursor;
mod queue;
mod revocation;
mod sessions;
mod sources;
mod store;
mod templates;
mod totals;
mod worker;

pub use agent_work::{
    AgentError, AgentOutcome, LeasedJob, MAX_AGENT_BATCH, OutcomesAnswer, RefusedOutcome,
    ReportAnswer, RunningReport, RunningStatus,
};
pub use agents::{
    AgentHello, AgentIdentity, AgentSummary, CREDENTIAL_PREFIX, ENROLMENT_PREFIX, Enrolment,
    MAX_AGENT_SLOTS,
};
pub use api_keys::StoredApiKey;
pub use audit::{AuditFilter, AuditOrder, AuditRecord};
pub use bandwidth::{BandwidthOptions, BandwidthUsage};
pub use dashboard::{
    AgentsOverview, Dashboard, RunningJob, THROUGHPUT_MINUTES, ThroughputMinute, WorkersOverview,
};
use endpoints::StoredEndpoint;
pub use endpoints::{BandwidthChange, DEFAULT_MAX_CONCURRENT, EndpointSummary};
pub use event_log::{EventRecord, EventState};
pub use keyring::Keyring;
pub use limits::Limits;
pub(crate) use names::{check_name, name_of};
pub use nodes::{LiveWorkers, WorkerNode};
pub(crate) use notifications::StoredNotification;
pub use notifications::{MessageFilter, NotificationSummary, OutboxMessage};
pub(crate) use notify_cursor::{Dispatch, NewMessage, RuleRow};
pub use queue::{
    Completion, Job, JobAttempt, JobCounts, JobFilter, JobProgress, JobRequest, JobState,
    LeaseStatus, RetryPolicy,
};
pub use sessions::StoredSession;
pub use sources::{NodeIdentity, Placement, SourceCounters, SourceState, SourceStatus, host_name};
pub(crate) use sources::{SourceReport, StoredSource};
pub(crate) use store::now_ms;
pub use store::{Backend, Store};
pub use templates::{FileEvent, Matcher, MissedTicks, Schedule, ScheduleState, TransferTemplate};
pub use totals::{AttemptTotal, AttemptTotals, JobTotal};
pub use worker::Workers;

use crate::endpoint::{Diagnosis, Endpoint, Listing, TestOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::rclone::Rclone;
use crate::secret::{Secret, with_secrets_revealed};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the base64 master key that seals stored credentials.
pub const MASTER_KEY_ENV: &str = "FILE_ORBIT_MASTER_KEY";

/// How to open an `Orbit`.
#[derive(Debug, Clone)]
pub struct OrbitOptions {
    /// `sqlite://path.db` (the default, `sqlite://file-orbit.db`) or `postgres://...`.
    pub store_url: String,
    /// Seals endpoint credentials. Unset: `$FILE_ORBIT_MASTER_KEY`, else (SQLite only) a
    /// key file beside the database, created with mode 0600.
    pub master_key: Option<Secret>,
    /// Older keys that still open records sealed before a rotation.
    pub previous_keys: Vec<Secret>,
    /// How long a worker's lease lasts without a heartbeat.
    pub lease: Duration,
    /// How long a waiting job takes to gain one priority point.
    pub aging: Duration,
    /// How often idle workers look for work.
    pub poll_interval: Duration,
    /// Who this process is in the audit log.
    pub actor: String,
    /// This node's name and labels: which sources it may run (see `Placement`).
    pub node: NodeIdentity,
    /// Bounds on the numbers of jobs and templates (parallelism, priority, retries, hops).
    pub limits: Limits,
    /// The service-wide bandwidth limit and how endpoints' limits are applied.
    pub bandwidth: BandwidthOptions,
    /// The hosts, addresses and networks notification channels may reach (see
    /// `notify::guard`): `hooks.slack.com`, `*.webhook.office.com`, `10.1.2.3`,
    /// `10.0.0.0/8`. Private, loopback and link-local addresses only when listed.
    pub notify_allow: Vec<String>,
}

impl Default for OrbitOptions {
    fn default() -> Self {
        OrbitOptions {
            store_url: "sqlite://file-orbit.db".into(),
            master_key: None,
            previous_keys: Vec::new(),
            lease: Duration::from_secs(30),
            aging: Duration::from_secs(60),
            poll_interval: Duration::from_millis(200),
            actor: "local".into(),
            node: NodeIdentity::default(),
            limits: Limits::default(),
            bandwidth: BandwidthOptions::default(),
            notify_allow: Vec::new(),
        }
    }
}

/// File Orbit embedded in a program: one store, its workers and its rclone.
///
/// ```no_run
/// use file_orbit_core::engine::{JobRequest, Orbit, OrbitOptions};
/// use std::time::Duration;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let orbit = Orbit::open(OrbitOptions::default()).await?; // sqlite://file-orbit.db
/// orbit.put_endpoint(&serde_json::from_str(r#"{"name": "in", "type": "local", "root": "/data/in"}"#)?, 4).await?;
/// orbit.put_endpoint(&serde_json::from_str(r#"{"name": "out", "type": "local", "root": "/data/out"}"#)?, 4).await?;
/// let spec = serde_json::from_str(
///     r#"{"source": "in", "destination": "out", "destination_path": "{year}", "scope": "tree"}"#,
/// )?;
/// let id = orbit.submit(&JobRequest::new(spec)).await?;
/// let workers = orbit.start_workers(2);
/// let job = orbit.wait(id, Duration::from_secs(60)).await?;
/// println!("job {id}: {:?}", job.state);
/// workers.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Orbit {
    inner: Arc<Inner>,
    /// Who the audit log names for changes made through this handle.
    actor: Arc<str>,
    /// The stored source whose events are ingested through this handle, recorded on
    /// them (see `for_source`).
    source_name: Option<Arc<str>>,
}

struct Inner {
    store: Store,
    keyring: Keyring,
    rclone: &'static Rclone,
    options: OrbitOptions,
    /// Bumped whenever this process makes work runnable, so idle workers wake at once
    /// instead of at their next poll (which still catches other processes' work).
    new_work: tokio::sync::watch::Sender<u64>,
    governor: bandwidth::Governor,
}

impl Orbit {
    /// Opens (creating and migrating) the store and starts rclone.
    pub async fn open(options: OrbitOptions) -> Result<Orbit> {
        let rclone = Rclone::global()?;
        options.limits.validate()?;
        let store = Store::open(&options.store_url)
            .await?
            .with_limits(options.limits);
        let master = match &options.master_key {
            Some(key) => key.clone(),
            None => match std::env::var(MASTER_KEY_ENV) {
                Ok(key) if !key.is_empty() => Secret::new(key),
                _ => key_file_beside(&options.store_url)?,
            },
        };
        let keyring = Keyring::new(&master, &options.previous_keys)?;
        options.node.validate()?;
        Ok(Orbit {
            actor: options.actor.as_str().into(),
            source_name: None,
            inner: Arc::new(Inner {
                store,
                keyring,
                rclone,
                options,
                new_work: tokio::sync::watch::channel(0).0,
                governor: Default::default(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Closes the store's connections (waiting for those in use to come back); every
    /// handle of this orbit then fails its store calls. Stop its workers, watches and
    /// schedulers first.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    pub fn options(&self) -> &OrbitOptions {
        &self.inner.options
    }

    pub fn rclone(&self) -> &'static Rclone {
        self.inner.rclone
    }

    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }

    /// The same Orbit, naming `actor` in the audit log for the changes made through it
    /// (the server passes each API caller's name).
    pub fn acting_as(&self, actor: &str) -> Orbit {
        Orbit {
            inner: self.inner.clone(),
            actor: actor.into(),
            source_name: self.source_name.clone(),
        }
    }

    /// The same Orbit, recording `name` as the source of the events ingested and the jobs
    /// submitted through it (the source runner hands each source it starts such a handle).
    pub fn for_source(&self, name: &str) -> Orbit {
        Orbit {
            inner: self.inner.clone(),
            actor: self.actor.clone(),
            source_name: Some(name.into()),
        }
    }

    /// The stored source this handle ingests for, if any.
    pub fn source_name(&self) -> Option<&str> {
        self.source_name.as_deref()
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Creates or replaces an endpoint (validated; credentials sealed).
    pub async fn put_endpoint(&self, endpoint: &Endpoint, max_concurrent: u32) -> Result<()> {
        endpoint.validate()?;
        if max_concurrent == 0 {
            return Err(Error::invalid_field(
                format!("endpoint {:?}", endpoint.name),
                "max_concurrent",
                "must be at least 1",
            ));
        }
        let sealed_json =
            with_secrets_revealed(|| serde_json::to_vec(endpoint)).map_err(|err| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "storing an endpoint",
                    err.to_string(),
                )
            })?;
        let (key_id, sealed) = self.inner.keyring.seal(&sealed_json)?;
        let placement = endpoint.placement.stored();
        let public = serde_json::to_value(endpoint).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                "storing an endpoint",
                err.to_string(),
            )
        })?;
        let stored = StoredEndpoint {
            name: &endpoint.name,
            kind: public["type"].as_str().unwrap_or_default(),
            public: &public,
            sealed: &sealed,
            key_id: &key_id,
            max_concurrent,
            bandwidth: endpoint.bandwidth.as_ref().map(|limit| limit.as_str()),
            placement: placement.as_deref(),
        };
        self.store().put_endpoint(&stored, self.actor()).await
    }

    /// Deletes an endpoint. Refused while queued or running jobs or a template use it.
    pub async fn delete_endpoint(&self, name: &str) -> Result<()> {
        self.store().delete_endpoint(name, self.actor()).await
    }

    /// The endpoint named `name`, credentials unsealed.
    pub async fn endpoint(&self, name: &str) -> Result<Endpoint> {
        let (sealed, key_id) = self.store().sealed_endpoint(name).await?;
        self.unseal_endpoint(&key_id, &sealed)
    }

    /// Those of the endpoints `names` that exist, credentials unsealed, from one store read
    /// (a missing name is simply absent).
    pub(crate) async fn endpoints_named(
        &self,
        names: &[&str],
    ) -> Result<std::collections::HashMap<String, Endpoint>> {
        let sealed = self.store().sealed_endpoints(names).await?;
        sealed
            .into_iter()
            .map(|(name, sealed, key_id)| Ok((name, self.unseal_endpoint(&key_id, &sealed)?)))
            .collect()
    }

    fn unseal_endpoint(&self, key_id: &str, sealed: &str) -> Result<Endpoint> {
        let plain = self.inner.keyring.open(key_id, sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|err| Error::new(ErrorKind::Store, "reading an endpoint", err.to_string()))
    }

    /// Tests endpoint `name` (see `Endpoint::test_with`) and audits the outcome as
    /// `endpoint.tested` (a failure is what notifications call `endpoint_test_failed`).
    pub async fn test_endpoint(&self, name: &str, options: TestOptions) -> Result<Diagnosis> {
        let endpoint = self.endpoint(name).await?;
        let diagnosis = endpoint.test_with(self.rclone(), options).await;
        let (outcome, detail) = match &diagnosis.problem {
            None => ("ok", serde_json::json!({"warning": diagnosis.warning})),
            Some(problem) => (
                "failed",
                serde_json::json!({"problem": problem, "message": diagnosis.message}),
            ),
        };
        self.store()
            .append_audit(
                self.actor(),
                "endpoint.tested",
                &format!("endpoint/{name}"),
                outcome,
                &detail,
            )
            .await?;
        Ok(diagnosis)
    }

    /// One folder of endpoint `name` (see `Endpoint::list_folder`): `path` relative to its
    /// root, at most `limit` entries, folders first. Reads only; not audited.
    pub async fn list_files(&self, name: &str, path: &str, limit: usize) -> Result<Listing> {
        let folder = crate::endpoint::relative_folder(path)?;
        let endpoint = self.endpoint(name).await?;
        endpoint.list_folder(self.rclone(), &folder, limit).await
    }

    /// Every endpoint, secrets shown as `***`, with the bandwidth rates in force now and
    /// the next timetable change (on the governor's clock).
    pub async fn endpoints(&self) -> Result<Vec<EndpointSummary>> {
        self.store().endpoints(self.inner.timetable_now()).await
    }

    /// Re-seals every endpoint and source with the current master key; returns how many changed.
    pub async fn rotate_keys(&self) -> Result<usize> {
        let current = self.inner.keyring.current_key_id().to_string();
        let stale = self
            .store()
            .endpoints_sealed_by_other_keys(&current)
            .await?;
        for (name, max_concurrent) in &stale {
            let endpoint = self.endpoint(name).await?;
            self.put_endpoint(&endpoint, *max_concurrent).await?;
        }
        Ok(stale.len()
            + self.reseal_sources(&current).await?
            + self.reseal_notifications(&current).await?)
    }

    pub async fn put_template(&self, template: &TransferTemplate) -> Result<()> {
        self.store().put_template(template, self.actor()).await
    }

    pub async fn delete_template(&self, name: &str) -> Result<()> {
        self.store().delete_template(name, self.actor()).await
    }

    /// Every template's schedule with its next and last tick.
    pub async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        self.store().schedules().await
    }

    pub async fn templates(&self) -> Result<Vec<TransferTemplate>> {
        self.store().templates().await
    }

    /// Submits a job (marked as made by this handle's stored source, see `for_source`);
    /// the same idempotency key twice returns the first job's id.
    pub async fn submit(&self, request: &JobRequest) -> Result<i64> {
        self.placement_check().await?.check_request(request)?;
        let id = self
            .store()
            .submit_from(request, self.actor(), self.source_name())
            .await?;
        self.wake_workers();
        Ok(id)
    }

    /// Submits many jobs in one transaction: each answer is its job's id or its own
    /// validation error (see `Store::submit_many`).
    pub async fn submit_many(&self, requests: &[JobRequest]) -> Result<Vec<Result<i64>>> {
        let placement = self.placement_check().await?;
        let checks: Vec<Result<()>> = requests
            .iter()
            .map(|request| placement.check_request(request))
            .collect();
        // Only the placeable requests reach the store; the others keep their own error.
        let stored = match checks.iter().all(Result::is_ok) {
            true => self.store().submit_many(requests, self.actor()).await?,
            false => {
                let placeable: Vec<JobRequest> = requests
                    .iter()
                    .zip(&checks)
                    .filter(|(_, check)| check.is_ok())
                    .map(|(request, _)| request.clone())
                    .collect();
                match placeable.is_empty() {
                    true => Vec::new(),
                    false => self.store().submit_many(&placeable, self.actor()).await?,
                }
            }
        };
        let mut stored = stored.into_iter();
        let answers: Vec<Result<i64>> = checks
            .into_iter()
            .map(|check| match check {
                Ok(()) => stored.next().unwrap_or(Ok(0)),
                Err(err) => Err(err),
            })
            .collect();
        if answers.iter().any(Result::is_ok) {
            self.wake_workers();
        }
        Ok(answers)
    }

    /// Tells idle workers in this process that a job may be runnable.
    pub(crate) fn wake_workers(&self) {
        self.inner
            .new_work
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub(crate) fn new_work(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.new_work.subscribe()
    }

    /// Submits one job per enabled template that matches `event`; returns their ids.
    pub async fn submit_matching(&self, event: &FileEvent) -> Result<Vec<i64>> {
        let now = chrono::Utc::now();
        let mut ids = Vec::new();
        for template in self.templates().await? {
            if template.matches(event, now)? {
                ids.push(self.submit(&template.request_for(event)).await?);
            }
        }
        Ok(ids)
    }

    pub async fn job(&self, id: i64) -> Result<Job> {
        self.store().job(id).await
    }

    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.store().jobs(filter).await
    }

    /// Every job of the chain that job `id` belongs to, in order.
    pub async fn chain_of(&self, id: i64) -> Result<Vec<Job>> {
        let job = self.job(id).await?;
        self.store().chain(job.chain_id).await
    }

    pub async fn cancel(&self, id: i64) -> Result<JobState> {
        self.store().cancel(id, self.actor()).await
    }

    /// Runs a dead or cancelled job again.
    pub async fn retry(&self, id: i64) -> Result<()> {
        self.store().retry(id, self.actor()).await?;
        self.wake_workers();
        Ok(())
    }

    /// Waits until job `id` is succeeded, dead or cancelled (at most `timeout`).
    pub async fn wait(&self, id: i64, timeout: Duration) -> Result<Job> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        loop {
            ticker.tick().await;
            let job = self.job(id).await?;
            if job.state.is_terminal() {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("waiting for job {id}"),
                    format!("still {:?} after {timeout:?}", job.state),
                ));
            }
        }
    }

    /// Starts `count` workers in this process.
    pub fn start_workers(&self, count: usize) -> Workers {
        self.govern_bandwidth();
        Workers::start(self.clone(), count)
    }

    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        self.store().audit_log(limit).await
    }

    /// Up to `limit` audit records matching `filter`, in `order`.
    pub async fn audit_records(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        self.store().audit_records(filter, order, limit).await
    }

    /// `Ok(None)` when the audit chain is intact, else the first bad record's id.
    pub async fn verify_audit_log(&self) -> Result<Option<i64>> {
        self.store().verify_audit_log().await
    }
}

/// The master key from a file beside a SQLite database, created (0600) on first use.
fn key_file_beside(store_url: &str) -> Result<Secret> {
    let no_key = || {
        Error::new(
            ErrorKind::InvalidInput,
            "master key",
            format!(
                "set {MASTER_KEY_ENV} (32 random bytes, base64) to seal credentials in this store"
            ),
        )
    };
    let path = store_url.strip_prefix("sqlite://").ok_or_else(no_key)?;
    let path = PathBuf::from(format!("{}.key", path.split('?').next().unwrap_or(path)));
    let io = |err: std::io::Error| {
        Error::new(
            ErrorKind::Store,
            "master key",
            format!("{}: {err}", path.display()),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(key) => Ok(Secret::new(key.trim())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = Keyring::generate_key();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(key.expose().as_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(err) => Err(io(err)),
    }
}
