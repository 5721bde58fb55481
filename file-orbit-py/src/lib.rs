//! The native module `file_orbit._native`: PyO3 glue over `file_orbit_core`, no logic of
//! its own. Every call goes to the core; the Python package `file_orbit` (python/) gives it
//! its public, typed API. What lives here:
//!
//! - one tokio runtime for the process (pyo3-async-runtimes' multi-thread runtime, created
//!   on first use): blocking calls release the GIL (`Python::detach`) around
//!   `runtime.block_on`, asyncio calls become awaitables with `future_into_py`;
//! - loading librclone from the wheel (`set_library_path`, called by the package at
//!   import; `$FILE_ORBIT_LIBRCLONE` still overrides it);
//! - the mapping of core errors to Python exceptions (`errors`);
//! - `check_core`, the core's side of the package's contract test (`contract`).
//!
//! Data crosses as JSON text in the core's own serde forms (the forms of the README's
//! TOML/JSON configs), so validation and defaults stay in the core.

mod contract;
mod errors;
mod orbit;
mod service;
mod transfer;

use file_orbit_core::endpoint::{Endpoint, SmbConfig};
use file_orbit_core::error::{Error, ErrorKind};
use file_orbit_core::events::source::SourceSpec;
use file_orbit_core::notify::Channel;
use file_orbit_core::rclone::{Rclone, RcloneOptions};
use file_orbit_core::serde_errors::from_json_value;
use file_orbit_core::{Result as CoreResult, Secret};
use pyo3::prelude::*;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

pub(crate) use errors::to_py_err;

/// The variable that names another librclone.so (librclone-sys's `LIBRARY_PATH_ENV`).
const LIBRARY_PATH_ENV: &str = "FILE_ORBIT_LIBRCLONE";

/// The librclone.so the package ships, if the package found one (set at import).
static LIBRARY_PATH: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The process's tokio runtime (multi-thread, created once, shared with asyncio calls).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `future` to completion on the runtime with the GIL released.
pub(crate) fn block<T: Send>(
    py: Python<'_>,
    future: impl Future<Output = CoreResult<T>> + Send,
) -> PyResult<T> {
    py.detach(|| runtime().block_on(future)).map_err(to_py_err)
}

/// Wraps `future` in an asyncio awaitable (it runs on the runtime, not the event loop).
pub(crate) fn awaitable<'py, T>(
    py: Python<'py>,
    future: impl Future<Output = CoreResult<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, async move { future.await.map_err(to_py_err) })
}

/// The process-wide rclone client, loaded from the package's librclone.so unless
/// `$FILE_ORBIT_LIBRCLONE` names another.
pub(crate) fn rclone() -> CoreResult<&'static Rclone> {
    let overridden = std::env::var_os(LIBRARY_PATH_ENV).is_some_and(|path| !path.is_empty());
    let library_path = if overridden {
        None // the loader reads the variable itself
    } else {
        lock(&LIBRARY_PATH).clone()
    };
    Rclone::init(RcloneOptions { library_path })
}

/// Locks `mutex`, poisoned or not: what the crate keeps behind locks (handles, a path)
/// stays valid when a thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serialises a core value to JSON text for the Python side.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> CoreResult<String> {
    serde_json::to_string(value)
        .map_err(|err| Error::new(ErrorKind::Protocol, "encoding a reply", err.to_string()))
}

/// Parses JSON text from the Python side into a core type; errors are `InvalidInput`.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> CoreResult<T> {
    serde_json::from_str(text)
        .map_err(|err| Error::new(ErrorKind::InvalidInput, what, err.to_string()))
}

/// Reads JSON text in the core's form (a source's spec, an endpoint, the orbit's options)
/// as `T`; an error names the field, never its value.
pub(crate) fn from_json_named<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> CoreResult<T> {
    from_json_value(what, from_json(what, text)?)
}

/// Remembers the librclone.so to load. `$FILE_ORBIT_LIBRCLONE` still wins; None leaves
/// the loader's order (the path cargo recorded, then the dynamic linker). Only the first
/// load uses it.
#[pyfunction]
#[pyo3(signature = (path))]
fn set_library_path(path: Option<PathBuf>) {
    *lock(&LIBRARY_PATH) = path;
}

/// Loads librclone now (if not yet) and returns (path it was loaded from, rclone version).
#[pyfunction]
fn load_rclone(py: Python<'_>) -> PyResult<(String, String)> {
    let rclone = py.detach(rclone).map_err(to_py_err)?;
    Ok((
        rclone.library_path().to_string(),
        rclone.version().version.clone(),
    ))
}

/// Checks an endpoint config (the core's JSON form); raises `ConfigError` naming the field.
#[pyfunction]
fn validate_endpoint(config: &str) -> PyResult<()> {
    let endpoint: Endpoint = from_json_named("endpoint config", config).map_err(to_py_err)?;
    endpoint.validate().map_err(to_py_err)
}

/// Checks a source's spec of `kind` (`sqs`, `local_watch` or `remote_poll`; the core's
/// JSON form) with the core's own checks; raises `ConfigError` naming the field.
#[pyfunction]
fn validate_source_spec(kind: &str, spec: &str) -> PyResult<()> {
    from_json("source spec", spec)
        .and_then(|fields| SourceSpec::parse(kind, fields))
        .map(drop)
        .map_err(to_py_err)
}

/// Checks a notification channel (the core's JSON form, `type` and its fields) with the
/// core's one reading of channels; raises `ConfigError` naming the field (`to[0]`, `url`).
#[pyfunction]
fn validate_channel(channel: &str) -> PyResult<()> {
    from_json("notification channel", channel)
        .and_then(Channel::parse)
        .map(drop)
        .map_err(to_py_err)
}

/// Splits `//host/share/path` into (host, share, root) with the core's parser.
#[pyfunction]
fn parse_unc(unc: &str) -> PyResult<(String, String, String)> {
    let smb = SmbConfig::from_unc(unc, "", Secret::new("")).map_err(to_py_err)?;
    Ok((smb.host, smb.share, smb.root))
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(set_library_path, module)?)?;
    module.add_function(wrap_pyfunction!(load_rclone, module)?)?;
    module.add_function(wrap_pyfunction!(validate_endpoint, module)?)?;
    module.add_function(wrap_pyfunction!(validate_source_spec, module)?)?;
    module.add_function(wrap_pyfunction!(validate_channel, module)?)?;
    module.add_function(wrap_pyfunction!(parse_unc, module)?)?;
    module.add_function(wrap_pyfunction!(contract::check_core, module)?)?;
    module.add_class::<orbit::NativeOrbit>()?;
    module.add_class::<transfer::NativeTransfer>()?;
    module.add_class::<service::NativeService>()?;
    module.add(
        "PINNED_RCLONE_VERSION",
        file_orbit_core::rclone::PINNED_RCLONE_VERSION,
    )?;
    Ok(())
}
