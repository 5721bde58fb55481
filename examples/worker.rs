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
//! `$FILE_ORBIT_MASTER_KEY` (the server's key). With an `[agent]` section instead of
//! `store_url` it runs as an agent: no store, no master key, jobs leased from the control
//! plane's URLs over HTTP(S) with its own credential (`file_orbit::agent::AgentConfig`;
//! the enrolment token may come from `$FILE_ORBIT_ENROLMENT_TOKEN`). The logic lives in
//! `file_orbit::worker` and `file_orbit::agent`; this file only wires it to a process.

use file_orbit::service::{logs, shutdown_signal};
use file_orbit::worker::{self, WorkerConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match WorkerConfig::from_process() {
        Ok(config) => config,
        Err(err) => return fail(err),
    };
    if let Err(err) = logs::init("worker", &config.log) {
        return fail(err);
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
        Err(err) => fail(err),
    }
}

fn fail(err: file_orbit::Error) -> ExitCode {
    eprintln!("file-orbit worker: {err}");
    ExitCode::from(2)
}
