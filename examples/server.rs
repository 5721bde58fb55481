//! The File Orbit server: REST API plus in-process workers on one store.
//!
//!     cargo run --release --example server --features server [-- --config server.toml]
//!
//! Configuration (TOML, see `file_orbit::server::ServerConfig`; unknown keys are refused
//! by name): `--config PATH`, else `$FILE_ORBIT_CONFIG`, else `file-orbit-server.toml`
//! in the data directory (`$FILE_ORBIT_DATA_DIR`, default the current directory) when it
//! exists. `$FILE_ORBIT_LISTEN` and `$FILE_ORBIT_STORE_URL` override `listen` and
//! `store_url`. The store defaults to `sqlite://<data dir>/file-orbit.db`.
//!
//! Logs go to stderr and to `server.<date>.log` in `[log] dir` (default `<data dir>/logs`;
//! `$FILE_ORBIT_LOG_DIR`, `$FILE_ORBIT_LOG_FORMAT` = text | json override), rotated daily
//! and kept 14 files; `GET /api/v1/logs` reads them.
//!
//! With no API key configured, an admin key is generated, printed once, and its SHA-256
//! written to the configuration file. More keys (kept in the store, seen by every node):
//!
//!     cargo run --release --example server --features server -- keys create --name ci \
//!         --role operator [--expires-days 30]      # prints the key once
//!     ... -- keys list          ... -- keys revoke ci
//!
//! (or `POST/GET /api/v1/keys`, `DELETE /api/v1/keys/{name}` as an admin). SIGTERM / SIGINT stop taking work and let running
//! transfers finish within `shutdown_grace_secs`. The logic lives in `file_orbit::server`
//! (`Startup`, `keys_command`); this file only wires it to a process.

use file_orbit::Result;
use file_orbit::engine::{Orbit, Store};
use file_orbit::server::{Command, Server, Startup, keys_command};
use file_orbit::service::shutdown_signal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("file-orbit server: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<()> {
    let mut startup = Startup::from_process()?;
    if let Command::Keys(args) = &startup.command {
        let store = Store::open(&startup.store_url).await?;
        print!(
            "{}",
            keys_command(&store, &startup.config.api_keys, args).await?
        );
        return Ok(());
    }
    startup.init_logs()?;
    let bootstrap = startup.save_bootstrap_key()?;
    let orbit = Orbit::open(startup.orbit_options()).await?;
    let server = Server::start(orbit.clone(), startup.config.clone()).await?;
    print!(
        "{}",
        startup.banner(server.local_addr(), bootstrap.as_ref())
    );
    shutdown_signal().await;
    println!("Stopping: no new work; waiting for running transfers ...");
    let clean = server.shutdown().await;
    orbit.close().await;
    if clean {
        println!("Stopped.");
    } else {
        eprintln!("Stopped after the grace period with transfers still running.");
    }
    Ok(())
}
