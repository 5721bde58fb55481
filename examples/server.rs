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
//! transfers finish within `shutdown_grace_secs`.

use file_orbit::engine::{Orbit, OrbitOptions, Store};
use file_orbit::server::{
    Role, Server, ServerConfig, create_api_key, days_from_now, list_api_keys, revoke_api_key,
};
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

/// `keys ...` arguments, when the command line asks to manage API keys instead of serving.
type KeysCommand = Vec<String>;

/// The configuration file (and whether it must exist) and the `keys` command, if any.
fn parse_args(data_dir: &std::path::Path) -> Result<(PathBuf, bool, Option<KeysCommand>), String> {
    let mut args = std::env::args().skip(1);
    let mut from_args = None;
    let mut keys = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => {
                from_args = Some(PathBuf::from(args.next().ok_or("--config needs a path")?))
            }
            "keys" => {
                keys = Some(args.by_ref().collect());
            }
            other => {
                if let Some(path) = other.strip_prefix("--config=") {
                    from_args = Some(PathBuf::from(path));
                } else {
                    return Err(format!(
                        "unknown argument {other:?} (only --config PATH and keys ...)"
                    ));
                }
            }
        }
    }
    if let Some(path) = from_args {
        return Ok((path, true, keys));
    }
    if let Ok(path) = std::env::var("FILE_ORBIT_CONFIG") {
        if !path.is_empty() {
            return Ok((PathBuf::from(path), true, keys));
        }
    }
    Ok((data_dir.join(DEFAULT_CONFIG_NAME), false, keys))
}

const KEYS_USAGE: &str = "keys create --name NAME --role viewer|operator|admin [--expires-days N] \
    | keys list | keys revoke NAME";

/// `keys create | list | revoke` on the configured store (audited as `cli`).
async fn manage_keys(
    store_url: &str,
    config: &ServerConfig,
    args: &[String],
) -> Result<ExitCode, String> {
    let store = Store::open(store_url)
        .await
        .map_err(|err| err.to_string())?;
    let declared = &config.api_keys;
    match args.first().map(String::as_str) {
        Some("create") => {
            let (mut name, mut role, mut days) = (None, None, None);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                let mut value = || rest.next().ok_or(format!("{arg} needs a value"));
                match arg.as_str() {
                    "--name" => name = Some(value()?.clone()),
                    "--role" => {
                        let text = value()?;
                        role = Some(
                            serde_json::from_value::<Role>(serde_json::json!(text)).map_err(
                                |_| format!("--role {text:?}: viewer, operator or admin"),
                            )?,
                        );
                    }
                    "--expires-days" => {
                        let text = value()?;
                        days = Some(
                            text.parse::<u32>()
                                .ok()
                                .filter(|days| *days > 0)
                                .ok_or(format!("--expires-days {text:?}: a positive number"))?,
                        );
                    }
                    other => return Err(format!("keys create: unknown argument {other:?}")),
                }
            }
            let name = name.ok_or("keys create needs --name NAME")?;
            let role = role.ok_or("keys create needs --role viewer|operator|admin")?;
            let expires_at = days.map(days_from_now);
            let (key, info) = create_api_key(&store, declared, &name, role, expires_at, "cli")
                .await
                .map_err(|err| err.to_string())?;
            let role = format!("{:?}", info.role).to_lowercase();
            println!(
                "API key {:?} ({role}) created; it is shown only now:",
                info.name
            );
            println!("{}", key.expose());
            if let Some(expires) = info
                .expires_at
                .and_then(chrono::DateTime::from_timestamp_millis)
            {
                println!("It expires at {}.", expires.to_rfc3339());
            }
        }
        Some("list") if args.len() == 1 => {
            let time = |ms: Option<i64>| {
                ms.and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or("-".to_string(), |at| {
                        at.format("%Y-%m-%d %H:%M").to_string()
                    })
            };
            println!(
                "{:<24} {:<9} {:<7} {:<17} {:<17} {:<17} state",
                "name", "role", "source", "created", "expires", "last used"
            );
            for key in list_api_keys(&store, declared)
                .await
                .map_err(|err| err.to_string())?
            {
                let state = if key.revoked {
                    "revoked"
                } else if key.expired {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<9} {:<7} {:<17} {:<17} {:<17} {state}",
                    key.name,
                    format!("{:?}", key.role).to_lowercase(),
                    key.source,
                    time(key.created_at),
                    time(key.expires_at),
                    time(key.last_used_at),
                );
            }
        }
        Some("revoke") if args.len() == 2 => {
            revoke_api_key(&store, declared, &args[1], "cli")
                .await
                .map_err(|err| err.to_string())?;
            println!("API key {:?} revoked.", args[1]);
        }
        _ => return Err(format!("usage: {KEYS_USAGE}")),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run() -> Result<ExitCode, String> {
    let data_dir = std::env::var("FILE_ORBIT_DATA_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let (path, required, keys) = parse_args(&data_dir)?;
    let mut config = match std::fs::read_to_string(&path) {
        Ok(text) => ServerConfig::from_toml(&text)
            .map_err(|err| format!("{}: {}", path.display(), err.detail()))?,
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
    let store_url = config
        .store_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("file-orbit.db").display()));
    if let Some(args) = keys {
        return manage_keys(&store_url, &config, &args).await;
    }
    if config.log.dir.is_none() {
        config.log.dir = Some(data_dir.join("logs"));
    }
    config.log.apply_env().map_err(|err| err.to_string())?;
    logs::init("server", &config.log).map_err(|err| err.to_string())?;

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
