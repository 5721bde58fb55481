//! `check_core(kind, json)`, for the package's contract test only: reads the JSON a Python
//! model's `_to_core()` builds into the core type it stands for (an error names the field
//! the core refused) and returns the core's own JSON of what it read, so the test can see
//! that every key Python sets is one the core reads and keeps. Secrets come back as `***`.

use crate::{from_json, to_json, to_py_err};
use file_orbit_core::endpoint::{Endpoint, EndpointPlacement};
use file_orbit_core::engine::{JobRequest, RetryPolicy, TransferTemplate};
use file_orbit_core::error::{Error, ErrorKind, Result as CoreResult};
use file_orbit_core::events::IncomingEvent;
use file_orbit_core::events::local::LocalWatch;
use file_orbit_core::events::poll::RemotePoll;
use file_orbit_core::events::source::Source;
use file_orbit_core::events::sqs::SqsSource;
use file_orbit_core::notify::{Channel, Notification, RateLimit};
use file_orbit_core::transfer::{Filters, TransferSpec};
use pyo3::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The kinds `check_core` knows, each the name of one core type.
const KINDS: [&str; 15] = [
    "channel",
    "endpoint",
    "filters",
    "incoming_event",
    "job_request",
    "local_watch",
    "notification",
    "placement",
    "rate_limit",
    "remote_poll",
    "retry_policy",
    "source",
    "sqs_source",
    "template",
    "transfer_spec",
];

/// `json` read as a `T` and written back by the core.
fn round_trip<T: DeserializeOwned + Serialize>(kind: &str, json: &str) -> CoreResult<String> {
    let mut reader = serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut reader).map_err(|err| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("reading a {kind}"),
            format!("{}: {}", err.path(), err.inner()),
        )
    })?;
    to_json(&value)
}

/// Reads `json` as the core type `kind` names and returns the core's JSON of it.
#[pyfunction]
pub(crate) fn check_core(kind: &str, json: &str) -> PyResult<String> {
    match kind {
        // A channel and a notification as Python writes them, read by the core's one
        // parser of each.
        "channel" => from_json("channel", json)
            .and_then(Channel::parse)
            .and_then(|channel| to_json(&channel)),
        "notification" => from_json("notification", json)
            .and_then(|written| Notification::parse(None, written))
            .and_then(|notification| to_json(&notification)),
        "rate_limit" => round_trip::<RateLimit>(kind, json),
        "endpoint" => round_trip::<Endpoint>(kind, json),
        "placement" => round_trip::<EndpointPlacement>(kind, json),
        "filters" => round_trip::<Filters>(kind, json),
        "incoming_event" => round_trip::<IncomingEvent>(kind, json),
        "job_request" => round_trip::<JobRequest>(kind, json),
        "local_watch" => round_trip::<LocalWatch>(kind, json),
        "remote_poll" => round_trip::<RemotePoll>(kind, json),
        "retry_policy" => round_trip::<RetryPolicy>(kind, json),
        // A source as `Orbit.put_source` writes it, read by the one parser of sources.
        "source" => serde_json::from_str(json)
            .map_err(|err| Error::new(ErrorKind::InvalidInput, "reading a source", err.to_string()))
            .and_then(|written| Source::parse(None, written))
            .and_then(|source| to_json(&source)),
        "sqs_source" => round_trip::<SqsSource>(kind, json),
        "template" => round_trip::<TransferTemplate>(kind, json),
        "transfer_spec" => round_trip::<TransferSpec>(kind, json),
        other => Err(Error::new(
            ErrorKind::InvalidInput,
            "check_core",
            format!("kind: {other:?} is not one of {KINDS:?}"),
        )),
    }
    .map_err(to_py_err)
}
