//! A File Orbit worker on another host (or beside the server): runs transfers from the
//! store it shares with the server, usually PostgreSQL.
//!
//!     cargo run --release --example worker --features worker -- --config worker.toml
//!
//! Configuration (TOML, see `file_orbit::worker::WorkerConfig`; unknown keys are refused
//! by name): `--config PATH`, else `$FILE_ORBIT_CONFIG`. `$FILE_ORBIT_STORE_URL` and
//! `$FILE_ORBIT_WORKERS` override `store_url` and `workers`; with both set no file is
//! needed. Logs go to stderr and, with `[log] dir` or `$FILE_ORBIT_LOG_DIR`, to
//! `worker.<date>.log` there. SIGTERM / SIGINT stop taking jobs and let running transfers
//! finish within `shutdown_grace_secs`; the store's master key comes from
//! `$FILE_ORBIT_MASTER_KEY` (the server's key).

use file_orbit::service::logs;
use file_orbit::service::shutdown_signal;
use file_orbit::worker::{self, WorkerConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("file-orbit worker: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = logs::init("worker", &config.log) {
        eprintln!("file-orbit worker: {err}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(worker::run(&config, shutdown_signal())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("stopped after the grace period with transfers still running");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("file-orbit worker: {err}");
            ExitCode::from(2)
        }
    }
}

fn load_config() -> Result<WorkerConfig, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var("FILE_ORBIT_CONFIG")
        .ok()
        .filter(|p| !p.is_empty());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => path = Some(args.next().ok_or("--config needs a path")?),
            other => match other.strip_prefix("--config=") {
                Some(given) => path = Some(given.to_string()),
                None => return Err(format!("unknown argument {other:?} (only --config PATH)")),
            },
        }
    }
    let mut config = match &path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| format!("{path}: {err}"))?;
            WorkerConfig::from_toml(&text).map_err(|err| format!("{path}: {}", err.detail()))?
        }
        None => {
            let url = std::env::var(worker::STORE_URL_ENV).map_err(|_| {
                format!(
                    "no configuration: pass --config PATH or set {}",
                    worker::STORE_URL_ENV
                )
            })?;
            WorkerConfig::new(&url)
        }
    };
    config
        .apply_env()
        .map_err(|err| err.detail().into_owned())?;
    Ok(config)
}
