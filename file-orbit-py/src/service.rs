//! `NativeService`: a background part of the engine running on the runtime — workers, a
//! local folder watch, a remote poll, an SQS consumer, the scheduler, the source runner or
//! the notifier — until `stop()` (or until the Python object is dropped, which stops it in
//! the background, or its orbit is closed).

use crate::{awaitable, block, lock, runtime, to_json, to_py_err};
use file_orbit_core::engine::Workers;
use file_orbit_core::events::local::LocalWatcher;
use file_orbit_core::events::poll::Poller;
use file_orbit_core::events::runner::SourceRunner;
use file_orbit_core::events::schedule::Scheduler;
use file_orbit_core::events::sqs::SqsConsumer;
use file_orbit_core::notify::Notifier;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The core's handle of a running background service.
pub enum Service {
    Workers(Workers),
    LocalWatch(LocalWatcher),
    Poll(Poller),
    Sqs(SqsConsumer),
    Scheduler(Scheduler),
    /// The stored sources this node runs (stopping it releases their leases).
    Sources(SourceRunner),
    /// The notifier: outbox messages made and sent (stopping it leaves unsent ones to
    /// whichever node leases them next).
    Notifier(Notifier),
}

impl Service {
    async fn shutdown(self) {
        match self {
            Service::Workers(workers) => workers.shutdown().await,
            Service::LocalWatch(watcher) => drop(watcher.shutdown().await),
            Service::Poll(poller) => drop(poller.shutdown().await),
            Service::Sqs(consumer) => drop(consumer.shutdown().await),
            Service::Scheduler(scheduler) => scheduler.shutdown().await,
            Service::Sources(runner) => runner.shutdown().await,
            Service::Notifier(notifier) => notifier.shutdown().await,
        }
    }

    /// Like `shutdown`, but workers give their running transfers only `grace`: then those
    /// stop and their jobs go back to the queue. True when everything ended in time.
    async fn shutdown_within(self, grace: Duration) -> bool {
        match self {
            Service::Workers(workers) => workers.shutdown_within(grace).await,
            other => {
                other.shutdown().await;
                true
            }
        }
    }
}

/// Where a running service lives; empty once stopped.
type Slot = Mutex<Option<Service>>;

fn take(slot: &Slot) -> Option<Service> {
    lock(slot).take()
}

/// What the orbit keeps of a service it started, to stop it when it closes.
pub struct ServiceStopper(Weak<Slot>);

impl ServiceStopper {
    /// Whether the service still runs (it was neither stopped nor dropped).
    pub fn running(&self) -> bool {
        self.0.upgrade().is_some_and(|slot| lock(&slot).is_some())
    }

    /// Stops the service unless it has stopped already; running transfers of workers
    /// stop at once and their jobs go back to the queue.
    pub async fn stop_now(self) {
        if let Some(service) = self.0.upgrade().and_then(|slot| take(&slot)) {
            service.shutdown_within(Duration::ZERO).await;
        }
    }
}

/// A running service (see the Python class `file_orbit.Service`).
#[pyclass(frozen, module = "file_orbit._native")]
pub struct NativeService {
    service: Arc<Slot>,
}

impl NativeService {
    pub fn new(service: Service) -> NativeService {
        NativeService {
            service: Arc::new(Mutex::new(Some(service))),
        }
    }

    /// A handle that stops this service without keeping it alive.
    pub fn stopper(&self) -> ServiceStopper {
        ServiceStopper(Arc::downgrade(&self.service))
    }

    fn take(&self) -> Option<Service> {
        take(&self.service)
    }
}

#[pymethods]
impl NativeService {
    /// Stops the service and waits for work under way (GIL released); with `grace`
    /// (seconds), running transfers of workers get only that long, then stop and their
    /// jobs go back to the queue. True when everything ended in time; idempotent.
    #[pyo3(signature = (grace=None))]
    fn stop(&self, py: Python<'_>, grace: Option<f64>) -> PyResult<bool> {
        block(py, stopped(self.take(), grace))
    }

    /// `stop` as an awaitable.
    #[pyo3(signature = (grace=None))]
    fn stop_async<'py>(&self, py: Python<'py>, grace: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, stopped(self.take(), grace))
    }

    /// Whether `stop` has not been called yet.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.service).is_some()
    }

    /// Counters of a local watch as (stored, duplicates, failed, scans, watching,
    /// last_error); None for other services.
    fn watch_stats(&self) -> Option<(u64, u64, u64, u64, bool, Option<String>)> {
        let guard = lock(&self.service);
        match guard.as_ref() {
            Some(Service::LocalWatch(watcher)) => {
                let stats = watcher.stats();
                Some((
                    stats.stored,
                    stats.duplicates,
                    stats.failed,
                    stats.scans,
                    stats.watching,
                    stats.last_error,
                ))
            }
            _ => None,
        }
    }

    /// Counters of an SQS consumer as the core's JSON of `SqsStats`; None for other
    /// services.
    fn sqs_stats(&self) -> PyResult<Option<String>> {
        let guard = lock(&self.service);
        match guard.as_ref() {
            Some(Service::Sqs(consumer)) => to_json(&consumer.stats()).map(Some).map_err(to_py_err),
            _ => Ok(None),
        }
    }
}

/// Stops `service` (if not stopped already), within `grace` seconds when given.
async fn stopped(service: Option<Service>, grace: Option<f64>) -> file_orbit_core::Result<bool> {
    Ok(match (service, grace) {
        (None, _) => true,
        (Some(service), None) => {
            service.shutdown().await;
            true
        }
        (Some(service), Some(grace)) => {
            let grace = Duration::from_secs_f64(grace.clamp(0.0, 86_400.0));
            service.shutdown_within(grace).await
        }
    })
}

impl Drop for NativeService {
    fn drop(&mut self) {
        if let Some(service) = self.take() {
            runtime().spawn(service.shutdown());
        }
    }
}
