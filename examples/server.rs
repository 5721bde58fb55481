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
//! written to the configuration file. SIGTERM / SIGINT stop taking work and let running
//! transfers finish within `shutdown_grace_secs`.

use file_orbit::engine::{Orbit, OrbitOptions};
use file_orbit::server::{Server, ServerConfig};
use file_orbit::service::logs;
use file_orbit::service::shutdown_signal;
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_CONFIG_NAME: &str = "file-orbit-server.toml";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("file-orbit server: {message}");
            ExitCode::from(2)
        }
    }
}

fn config_path(data_dir: &std::path::Path) -> Result<(PathBuf, bool), String> {
    let mut args = std::env::args().skip(1);
    let mut from_args = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => {
                from_args = Some(PathBuf::from(args.next().ok_or("--config needs a path")?))
            }
            other => {
                if let Some(path) = other.strip_prefix("--config=") {
                    from_args = Some(PathBuf::from(path));
                } else {
                    return Err(format!("unknown argument {other:?} (only --config PATH)"));
                }
            }
        }
    }
    if let Some(path) = from_args {
        return Ok((path, true));
    }
    if let Ok(path) = std::env::var("FILE_ORBIT_CONFIG") {
        if !path.is_empty() {
            return Ok((PathBuf::from(path), true));
        }
    }
    Ok((data_dir.join(DEFAULT_CONFIG_NAME), false))
}

async fn run() -> Result<ExitCode, String> {
    let data_dir = std::env::var("FILE_ORBIT_DATA_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let (path, required) = config_path(&data_dir)?;
    let mut config = match std::fs::read_to_string(&path) {
        Ok(text) => ServerConfig::from_toml(&text)
            .map_err(|err| format!("{}: {}", path.display(), err.message))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
            ServerConfig::default()
        }
        Err(err) => return Err(format!("{}: {err}", path.display())),
    };
    if let Ok(listen) = std::env::var("FILE_ORBIT_LISTEN") {
        config.listen = listen;
    }
    if let Ok(url) = std::env::var("FILE_ORBIT_STORE_URL") {
        config.store_url = Some(url);
    }
    if config.log.dir.is_none() {
        config.log.dir = Some(data_dir.join("logs"));
    }
    config.log.apply_env().map_err(|err| err.to_string())?;
    logs::init("server", &config.log).map_err(|err| err.to_string())?;
    let store_url = config
        .store_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("file-orbit.db").display()));

    let bootstrap = config.ensure_admin_key();
    if bootstrap.is_some() {
        // Keep only the hash, so the key is printed this once.
        let entry = toml::to_string(&config.api_keys[0]).map_err(|err| err.to_string())?;
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Generated at first start; the key itself was printed once.\n[[api_keys]]\n{entry}"
        ));
        std::fs::write(&path, text).map_err(|err| {
            format!(
                "saving the bootstrap key's hash to {}: {err}",
                path.display()
            )
        })?;
    }

    let orbit = Orbit::open(OrbitOptions {
        store_url: store_url.clone(),
        actor: "server".into(),
        limits: config.limits,
        ..Default::default()
    })
    .await
    .map_err(|err| err.to_string())?;
    let workers = config.workers;
    let log_dir = config.log.dir.clone();
    let server = Server::start(orbit.clone(), config)
        .await
        .map_err(|err| err.to_string())?;
    let addr = server.local_addr();
    println!("File Orbit server on http://{addr}");
    println!("  API:     http://{addr}/api/v1 (Authorization: Bearer <key>)");
    println!("  health:  http://{addr}/health   metrics: http://{addr}/metrics");
    println!(
        "  store:   {store_url}   workers: {workers}   config: {}",
        path.display()
    );
    if let Some(dir) = &log_dir {
        println!(
            "  logs:    {}/server.*.log (GET /api/v1/logs)",
            dir.display()
        );
    }
    if let Some(key) = bootstrap {
        println!();
        println!(
            "  Bootstrap admin API key (shown only now; its hash is in {}):",
            path.display()
        );
        println!("    {}", key.expose());
        println!();
    }
    shutdown_signal().await;
    println!("Stopping: no new work; waiting for running transfers ...");
    let clean = server.shutdown().await;
    orbit.close().await;
    if clean {
        println!("Stopped.");
    } else {
        eprintln!("Stopped after the grace period with transfers still running.");
    }
    Ok(ExitCode::SUCCESS)
}
