//! `NativeOrbit`: one `file_orbit_core::engine::Orbit`. Its plain operations are one table
//! (`Call` → `run`), each a single core call, reachable blocking (`call`, GIL released)
//! or from asyncio (`call_async`); operations that return a handle (a running transfer, a
//! background service) have their own methods. The orbit keeps a handle of each
//! transfer and service it starts (the source runner among them), so `close` can stop
//! them before it closes the store.

use crate::service::{NativeService, Service, ServiceStopper};
use crate::transfer::{NativeTransfer, TransferStopper};
use crate::{
    awaitable, block, from_json, from_json_named, lock, rclone, runtime, to_json, to_py_err,
};
use file_orbit_core::Result as CoreResult;
use file_orbit_core::Secret;
use file_orbit_core::endpoint::{Bandwidth, Endpoint, TestOptions};
use file_orbit_core::engine::{
    BandwidthOptions, JobFilter, JobRequest, JobState, Limits, MessageFilter, NodeIdentity, Orbit,
    OrbitOptions, TransferTemplate,
};
use file_orbit_core::error::{Error, ErrorKind};
use file_orbit_core::events::local::LocalWatch;
use file_orbit_core::events::poll::RemotePoll;
use file_orbit_core::events::runner::SourceRunnerOptions;
use file_orbit_core::events::source::Source;
use file_orbit_core::events::sqs::SqsSource;
use file_orbit_core::events::{IncomingEvent, Ingested};
use file_orbit_core::notify::{Notification, NotifierOptions};
use file_orbit_core::path_template::PathTemplate;
use file_orbit_core::transfer::{TransferJob, TransferSpec};
use pyo3::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to open the store: `OrbitOptions` with durations in milliseconds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenOptions {
    store_url: String,
    master_key: Option<String>,
    #[serde(default)]
    previous_keys: Vec<String>,
    lease_ms: Option<u64>,
    aging_ms: Option<u64>,
    poll_interval_ms: Option<u64>,
    actor: Option<String>,
    #[serde(default)]
    limits: Limits,
    /// This node's name (default: the host name) and labels, for sources' placements.
    node: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The service-wide bandwidth limit on remote endpoints.
    bandwidth: Option<Bandwidth>,
    /// The hosts, addresses and networks notification channels may reach.
    #[serde(default)]
    notify_allow: Vec<String>,
}

impl OpenOptions {
    fn into_core(self) -> OrbitOptions {
        let defaults = OrbitOptions::default();
        let ms =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
        OrbitOptions {
            store_url: self.store_url,
            master_key: self.master_key.map(Secret::new),
            previous_keys: self.previous_keys.into_iter().map(Secret::new).collect(),
            lease: ms(self.lease_ms, defaults.lease),
            aging: ms(self.aging_ms, defaults.aging),
            poll_interval: ms(self.poll_interval_ms, defaults.poll_interval),
            actor: self.actor.unwrap_or(defaults.actor),
            node: NodeIdentity {
                name: self.node.unwrap_or(defaults.node.name),
                labels: self.labels,
            },
            limits: self.limits,
            bandwidth: BandwidthOptions {
                service: self.bandwidth,
                ..defaults.bandwidth
            },
            notify_allow: self.notify_allow,
        }
    }
}

/// An endpoint named in the store, or given whole (not stored).
#[derive(Deserialize)]
#[serde(untagged)]
enum EndpointRef {
    Name(String),
    Config(Box<Endpoint>),
}

impl EndpointRef {
    async fn resolve(self, orbit: &Orbit) -> CoreResult<Endpoint> {
        match self {
            EndpointRef::Name(name) => orbit.endpoint(&name).await,
            EndpointRef::Config(endpoint) => {
                endpoint.validate()?;
                Ok(*endpoint)
            }
        }
    }
}

/// Every plain operation: `{"op": "<name>", ...its arguments}`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Call {
    PutEndpoint {
        endpoint: Endpoint,
        max_concurrent: u32,
    },
    Endpoints,
    TestEndpoint {
        endpoint: EndpointRef,
        write_probe: bool,
    },
    ListFiles {
        endpoint: String,
        path: String,
        limit: usize,
    },
    PreviewPath {
        template: String,
        file: String,
        source: String,
    },
    PutTemplate {
        template: TransferTemplate,
    },
    Templates,
    Submit {
        request: JobRequest,
    },
    Job {
        id: i64,
    },
    Jobs {
        state: Option<JobState>,
        limit: i64,
        offset: i64,
        #[serde(default)]
        before_id: Option<i64>,
    },
    Chain {
        id: i64,
    },
    /// The job once it differs from what the caller saw (`updated_at`), is finished, or
    /// `timeout_ms` passed.
    WaitJob {
        id: i64,
        seen_updated_at: i64,
        timeout_ms: u64,
    },
    Cancel {
        id: i64,
    },
    Retry {
        id: i64,
    },
    Ingest {
        event: IncomingEvent,
    },
    Event {
        id: i64,
    },
    Events {
        limit: i64,
    },
    ReplayEvent {
        id: i64,
    },
    FireDueSchedules,
    AuditLog {
        limit: i64,
    },
    VerifyAuditLog,
    RotateKeys,
    Workers,
    BandwidthUsage,
    /// A source as written (`Source::parse`'s JSON: name, kind, spec, enabled, placement).
    PutSource {
        source: Value,
    },
    Sources,
    SourceStatus {
        name: String,
    },
    PauseSource {
        name: String,
    },
    ResumeSource {
        name: String,
    },
    DeleteSource {
        name: String,
    },
    /// A notification as written (`Notification::parse`'s JSON: name, channel, events,
    /// filter, rate_limit, max_attempts, enabled).
    PutNotification {
        notification: Value,
    },
    Notification {
        name: String,
    },
    Notifications,
    DeleteNotification {
        name: String,
    },
    TestNotification {
        name: String,
    },
    Outbox {
        notification: Option<String>,
        state: Option<String>,
        limit: i64,
        before_id: Option<i64>,
    },
    RetryNotificationMessage {
        id: i64,
    },
    /// A new agent and its one-time enrolment token, valid for `ttl_ms`.
    CreateAgent {
        name: String,
        #[serde(default)]
        labels: Vec<String>,
        ttl_ms: i64,
    },
    Agents,
    Agent {
        name: String,
    },
    RevokeAgent {
        name: String,
    },
}

/// The states of an outbox message, as `Outbox`'s `state` names them.
const MESSAGE_STATES: [&str; 5] = ["collecting", "queued", "sending", "sent", "dead"];

/// How long an enrolment token may stay valid, in milliseconds: the bounds of the
/// server's `[agents] enrolment_ttl_secs` (a minute to 30 days).
const ENROLMENT_TTL_MS: std::ops::RangeInclusive<i64> = 60_000..=30 * 24 * 3600 * 1000;

/// How often `WaitJob` reads the job (the core's `Orbit::wait` uses the same period).
const JOB_POLL: Duration = Duration::from_millis(50);

/// Runs one operation on the core; the reply is JSON.
async fn run(orbit: Orbit, call: Call) -> CoreResult<Value> {
    Ok(match call {
        Call::PutEndpoint {
            endpoint,
            max_concurrent,
        } => {
            orbit.put_endpoint(&endpoint, max_concurrent).await?;
            Value::Null
        }
        Call::Endpoints => value(&orbit.endpoints().await?)?,
        Call::TestEndpoint {
            endpoint,
            write_probe,
        } => {
            let endpoint = endpoint.resolve(&orbit).await?;
            value(
                &endpoint
                    .test_with(orbit.rclone(), TestOptions { write_probe })
                    .await,
            )?
        }
        Call::ListFiles {
            endpoint,
            path,
            limit,
        } => value(&orbit.list_files(&endpoint, &path, limit).await?)?,
        Call::PreviewPath {
            template,
            file,
            source,
        } => json!(PathTemplate::preview(&template, &file, &source)?),
        Call::PutTemplate { template } => {
            orbit.put_template(&template).await?;
            Value::Null
        }
        Call::Templates => value(&orbit.templates().await?)?,
        Call::Submit { request } => json!(orbit.submit(&request).await?),
        Call::Job { id } => value(&orbit.job(id).await?)?,
        Call::Jobs {
            state,
            limit,
            offset,
            before_id,
        } => value(
            &orbit
                .jobs(&JobFilter {
                    state,
                    limit,
                    offset,
                    before_id,
                    ..JobFilter::default()
                })
                .await?,
        )?,
        Call::Workers => value(&orbit.store().worker_nodes().await?)?,
        Call::BandwidthUsage => value(&orbit.bandwidth_usage())?,
        Call::Chain { id } => value(&orbit.chain_of(id).await?)?,
        Call::WaitJob {
            id,
            seen_updated_at,
            timeout_ms,
        } => {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
            loop {
                let job = orbit.job(id).await?;
                if job.updated_at != seen_updated_at
                    || job.state.is_terminal()
                    || tokio::time::Instant::now() >= deadline
                {
                    break value(&job)?;
                }
                tokio::time::sleep(JOB_POLL).await;
            }
        }
        Call::Cancel { id } => value(&orbit.cancel(id).await?)?,
        Call::Retry { id } => {
            orbit.retry(id).await?;
            Value::Null
        }
        Call::Ingest { event } => match orbit.ingest(&event).await? {
            Ingested::New(record) => json!({"duplicate": false, "event": value(&record)?}),
            Ingested::Duplicate(record) => json!({"duplicate": true, "event": value(&record)?}),
        },
        Call::Event { id } => value(&orbit.event(id).await?)?,
        Call::Events { limit } => value(&orbit.events(limit).await?)?,
        Call::ReplayEvent { id } => json!(orbit.replay_event(id).await?),
        Call::FireDueSchedules => {
            let fired = orbit.fire_due_schedules().await?;
            let records: Vec<_> = fired.iter().map(Ingested::record).collect();
            value(&records)?
        }
        Call::AuditLog { limit } => value(&orbit.audit_log(limit).await?)?,
        Call::VerifyAuditLog => json!(orbit.verify_audit_log().await?),
        Call::RotateKeys => json!(orbit.rotate_keys().await?),
        Call::PutSource { source } => {
            orbit.put_source(&Source::parse(None, source)?).await?;
            Value::Null
        }
        Call::Sources => value(&orbit.sources().await?)?,
        Call::SourceStatus { name } => value(&orbit.source_status(&name).await?)?,
        Call::PauseSource { name } => {
            orbit.pause_source(&name).await?;
            Value::Null
        }
        Call::ResumeSource { name } => {
            orbit.resume_source(&name).await?;
            Value::Null
        }
        Call::DeleteSource { name } => {
            orbit.delete_source(&name).await?;
            Value::Null
        }
        Call::PutNotification { notification } => {
            let notification = Notification::parse(None, notification)?;
            orbit.put_notification(&notification).await?;
            value(&orbit.store().notification(&notification.name).await?)?
        }
        Call::Notification { name } => value(&orbit.store().notification(&name).await?)?,
        Call::Notifications => value(&orbit.notifications().await?)?,
        Call::DeleteNotification { name } => {
            orbit.delete_notification(&name).await?;
            Value::Null
        }
        Call::TestNotification { name } => json!(orbit.test_notification(&name).await?),
        Call::Outbox {
            notification,
            state,
            limit,
            before_id,
        } => {
            if let Some(state) = state.as_deref().filter(|s| !MESSAGE_STATES.contains(s)) {
                return Err(Error::invalid_field(
                    "outbox",
                    "state",
                    format!(
                        "{:?} is not one of {}",
                        state.chars().take(40).collect::<String>(),
                        MESSAGE_STATES.join(", ")
                    ),
                ));
            }
            if !(1..=1000).contains(&limit) {
                return Err(Error::invalid_field("outbox", "limit", "must be 1 to 1000"));
            }
            let filter = MessageFilter {
                notification,
                state,
                before_id,
                limit,
            };
            value(&orbit.notification_messages(&filter).await?)?
        }
        Call::RetryNotificationMessage { id } => {
            orbit.retry_notification_message(id).await?;
            Value::Null
        }
        Call::CreateAgent {
            name,
            labels,
            ttl_ms,
        } => {
            if !ENROLMENT_TTL_MS.contains(&ttl_ms) {
                return Err(Error::invalid_field(
                    "agent",
                    "ttl",
                    format!("must be 60 s to 30 days, not {ttl_ms} ms"),
                ));
            }
            let ttl = Duration::from_millis(ttl_ms.unsigned_abs());
            value(&orbit.create_agent(&name, &labels, ttl).await?)?
        }
        Call::Agents => value(&orbit.agents().await?)?,
        Call::Agent { name } => value(&orbit.agent(&name).await?)?,
        Call::RevokeAgent { name } => {
            orbit.revoke_agent(&name).await?;
            Value::Null
        }
    })
}

/// A core value as JSON.
fn value<T: serde::Serialize>(value: &T) -> CoreResult<Value> {
    serde_json::to_value(value)
        .map_err(|err| Error::new(ErrorKind::Protocol, "encoding a reply", err.to_string()))
}

/// What `start_transfer` needs: the spec and its two endpoints (names or configs).
async fn start_transfer(
    orbit: Orbit,
    spec: String,
    source: String,
    destination: String,
) -> CoreResult<NativeTransfer> {
    let spec: TransferSpec = from_json("transfer spec", &spec)?;
    let source: EndpointRef = from_json("source endpoint", &source)?;
    let destination: EndpointRef = from_json("destination endpoint", &destination)?;
    let source = source.resolve(&orbit).await?;
    let destination = destination.resolve(&orbit).await?;
    let job = TransferJob::start(
        orbit.rclone(),
        &spec,
        &source,
        &destination,
        chrono::Utc::now(),
    )
    .await?;
    Ok(NativeTransfer::follow(job))
}

/// Starts watching a local folder (`spec`: the core's `LocalWatch` JSON).
async fn watch_local(orbit: Orbit, spec: String) -> CoreResult<NativeService> {
    let spec: LocalWatch = from_json_named("local watch", &spec)?;
    let watcher = orbit.start_local_watch(spec).await?;
    Ok(NativeService::new(Service::LocalWatch(watcher)))
}

/// Starts consuming S3 notifications from the queue of `source` (the core's JSON form).
async fn consume_sqs(orbit: Orbit, source: String) -> CoreResult<NativeService> {
    let source: SqsSource = from_json_named("sqs source", &source)?;
    let consumer = orbit.start_sqs_source(source).await?;
    Ok(NativeService::new(Service::Sqs(consumer)))
}

/// What an orbit started in this process, for `close` to stop.
#[derive(Default)]
struct Started {
    closed: bool,
    transfers: Vec<TransferStopper>,
    services: Vec<ServiceStopper>,
}

/// The handles of one orbit's transfers and services; shared with the tasks that start
/// them.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<Started>>);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Started> {
        lock(&self.0)
    }

    fn check_open(&self) -> CoreResult<()> {
        if self.lock().closed {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "file_orbit.Orbit",
                "the orbit is closed",
            ));
        }
        Ok(())
    }

    /// Keeps `transfer`'s handle (forgetting those that ended); a transfer that started
    /// while the orbit closed is stopped at once.
    fn add_transfer(&self, transfer: &NativeTransfer) {
        let mut started = self.lock();
        if started.closed {
            runtime().spawn(transfer.stopper().stop());
            return;
        }
        started.transfers.retain(|running| !running.finished());
        started.transfers.push(transfer.stopper());
    }

    fn add_service(&self, service: NativeService) -> NativeService {
        let mut started = self.lock();
        started.services.retain(ServiceStopper::running);
        started.services.push(service.stopper());
        service
    }

    /// Marks the orbit closed; stops its services (workers put their running jobs back
    /// in the queue) and cancels its transfers, then closes the store. Idempotent; the
    /// first failure to stop something is returned after everything was tried.
    async fn close(self, orbit: Orbit) -> CoreResult<()> {
        let (transfers, services) = {
            let mut started = self.lock();
            if started.closed {
                return Ok(());
            }
            started.closed = true;
            (
                std::mem::take(&mut started.transfers),
                std::mem::take(&mut started.services),
            )
        };
        for service in services {
            service.stop_now().await;
        }
        let mut stopping: tokio::task::JoinSet<_> =
            transfers.into_iter().map(TransferStopper::stop).collect();
        let mut first_error = None;
        while let Some(stopped) = stopping.join_next().await {
            if let Ok(Err(err)) = stopped {
                first_error.get_or_insert(err);
            }
        }
        orbit.close().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// File Orbit's engine on one store (see the Python class `file_orbit.Orbit`).
#[pyclass(frozen, module = "file_orbit._native")]
pub struct NativeOrbit {
    orbit: Orbit,
    started: Registry,
}

impl NativeOrbit {
    /// The core orbit, unless `close` was called.
    fn live(&self) -> PyResult<Orbit> {
        self.started.check_open().map_err(to_py_err)?;
        Ok(self.orbit.clone())
    }

    /// Starts a transfer and keeps its handle.
    fn transfer(
        &self,
        spec: String,
        source: String,
        destination: String,
    ) -> PyResult<impl Future<Output = CoreResult<NativeTransfer>> + Send + use<>> {
        let orbit = self.live()?;
        let started = self.started.clone();
        Ok(async move {
            let transfer = start_transfer(orbit, spec, source, destination).await?;
            started.add_transfer(&transfer);
            Ok(transfer)
        })
    }
}

#[pymethods]
impl NativeOrbit {
    /// Opens (creating and migrating) the store; loads librclone on first use.
    #[staticmethod]
    fn open(py: Python<'_>, options: &str) -> PyResult<NativeOrbit> {
        let options: OpenOptions = from_json_named("orbit options", options).map_err(to_py_err)?;
        block(py, open(options))
    }

    /// `open` as an awaitable.
    #[staticmethod]
    fn open_async<'py>(py: Python<'py>, options: &str) -> PyResult<Bound<'py, PyAny>> {
        let options: OpenOptions = from_json_named("orbit options", options).map_err(to_py_err)?;
        awaitable(py, open(options))
    }

    /// Runs one operation (`{"op": ...}` JSON) and returns its JSON reply, GIL released.
    fn call(&self, py: Python<'_>, request: &str) -> PyResult<String> {
        let call: Call = from_json("request", request).map_err(to_py_err)?;
        let orbit = self.live()?;
        block(py, async move { to_json(&run(orbit, call).await?) })
    }

    /// `call` as an awaitable.
    fn call_async<'py>(&self, py: Python<'py>, request: &str) -> PyResult<Bound<'py, PyAny>> {
        let call: Call = from_json("request", request).map_err(to_py_err)?;
        let orbit = self.live()?;
        awaitable(py, async move { to_json(&run(orbit, call).await?) })
    }

    /// Starts a transfer now, in this process: spec JSON, source and destination as a
    /// JSON name or endpoint config.
    fn start_transfer(
        &self,
        py: Python<'_>,
        spec: String,
        source: String,
        destination: String,
    ) -> PyResult<NativeTransfer> {
        block(py, self.transfer(spec, source, destination)?)
    }

    /// `start_transfer` as an awaitable.
    fn start_transfer_async<'py>(
        &self,
        py: Python<'py>,
        spec: String,
        source: String,
        destination: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.transfer(spec, source, destination)?)
    }

    /// Starts `count` workers that run the queued jobs.
    fn start_workers(&self, count: usize) -> PyResult<NativeService> {
        let orbit = self.live()?;
        let _runtime = runtime().enter();
        let workers = NativeService::new(Service::Workers(orbit.start_workers(count)));
        Ok(self.started.add_service(workers))
    }

    /// Starts a local folder watch (spec JSON: the core's `LocalWatch`).
    fn watch_local(&self, py: Python<'_>, spec: String) -> PyResult<NativeService> {
        let watch = block(py, watch_local(self.live()?, spec))?;
        Ok(self.started.add_service(watch))
    }

    /// `watch_local` as an awaitable.
    fn watch_local_async<'py>(&self, py: Python<'py>, spec: String) -> PyResult<Bound<'py, PyAny>> {
        let orbit = self.live()?;
        let started = self.started.clone();
        awaitable(py, async move {
            let watch = watch_local(orbit, spec).await?;
            Ok(started.add_service(watch))
        })
    }

    /// Starts an SQS consumer of S3 notifications (source JSON: the core's `SqsSource`).
    fn consume_sqs(&self, py: Python<'_>, source: String) -> PyResult<NativeService> {
        let consumer = block(py, consume_sqs(self.live()?, source))?;
        Ok(self.started.add_service(consumer))
    }

    /// `consume_sqs` as an awaitable.
    fn consume_sqs_async<'py>(
        &self,
        py: Python<'py>,
        source: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let orbit = self.live()?;
        let started = self.started.clone();
        awaitable(py, async move {
            let consumer = consume_sqs(orbit, source).await?;
            Ok(started.add_service(consumer))
        })
    }

    /// Starts polling a remote folder (`spec`: the core's `RemotePoll` JSON).
    fn poll_remote(&self, spec: &str) -> PyResult<NativeService> {
        let spec: RemotePoll = from_json_named("remote poll", spec).map_err(to_py_err)?;
        let orbit = self.live()?;
        let _runtime = runtime().enter();
        let poller = NativeService::new(Service::Poll(orbit.start_remote_poll(spec)));
        Ok(self.started.add_service(poller))
    }

    /// Starts running the stored sources this node may run (leases of `lease_ms`, the
    /// sources read every `check_every_ms`).
    fn run_sources(&self, lease_ms: u64, check_every_ms: u64) -> PyResult<NativeService> {
        let orbit = self.live()?;
        let _runtime = runtime().enter();
        let runner = orbit
            .start_source_runner(SourceRunnerOptions {
                lease: Duration::from_millis(lease_ms),
                check_every: Duration::from_millis(check_every_ms),
            })
            .map_err(to_py_err)?;
        Ok(self
            .started
            .add_service(NativeService::new(Service::Sources(runner))))
    }

    /// Starts this node's notifier: it turns the audit log into outbox messages and sends
    /// those due (durations in milliseconds; the core checks their bounds).
    fn run_notifier(
        &self,
        link_base: String,
        check_every_ms: u64,
        first_retry_ms: u64,
        max_retry_ms: u64,
        timeout_ms: u64,
    ) -> PyResult<NativeService> {
        let orbit = self.live()?;
        let _runtime = runtime().enter();
        let notifier = orbit
            .start_notifier(NotifierOptions {
                link_base,
                check_every: Duration::from_millis(check_every_ms),
                first_retry: Duration::from_millis(first_retry_ms),
                max_retry: Duration::from_millis(max_retry_ms),
                timeout: Duration::from_millis(timeout_ms),
            })
            .map_err(to_py_err)?;
        Ok(self
            .started
            .add_service(NativeService::new(Service::Notifier(notifier))))
    }

    /// Starts firing the templates' cron schedules, checking every `interval_ms`.
    fn start_scheduler(&self, interval_ms: u64) -> PyResult<NativeService> {
        let orbit = self.live()?;
        let _runtime = runtime().enter();
        let scheduler = orbit.start_scheduler(Duration::from_millis(interval_ms));
        Ok(self
            .started
            .add_service(NativeService::new(Service::Scheduler(scheduler))))
    }

    /// Stops what this orbit started — its services (workers put running jobs back in
    /// the queue) and its transfers (cancelled) — and closes the store; later calls
    /// raise. Idempotent. GIL released.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.started.clone().close(self.orbit.clone()))
    }

    /// `close` as an awaitable.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.started.clone().close(self.orbit.clone()))
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.started.lock().closed
    }
}

async fn open(options: OpenOptions) -> CoreResult<NativeOrbit> {
    // Load librclone from the package's path before the core's `Rclone::global()` would
    // load it from the default places.
    tokio::task::spawn_blocking(rclone)
        .await
        .map_err(|err| Error::new(ErrorKind::Library, "loading librclone", err.to_string()))??;
    let orbit = Orbit::open(options.into_core()).await?;
    Ok(NativeOrbit {
        orbit,
        started: Registry::default(),
    })
}
