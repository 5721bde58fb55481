//! The server as a process: where its configuration is found (`--config PATH`, else
//! `$FILE_ORBIT_CONFIG`, else `file-orbit-server.toml` in the data directory), the
//! environment's overrides, the bootstrap admin key (printed once, its hash appended to
//! the file) and the start-up banner. `examples/server.rs` only wires these to a process;
//! the `keys` command line lives in `keys_cli`.

use super::config::ServerConfig;
use crate::engine::{BandwidthOptions, OrbitOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use crate::service::logs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The configuration file looked for in the data directory.
pub const DEFAULT_CONFIG_NAME: &str = "file-orbit-server.toml";
/// The data directory (store, master key, configuration, logs); default the current one.
pub const DATA_DIR_ENV: &str = "FILE_ORBIT_DATA_DIR";
/// The configuration file, when `--config` is not given (it must then exist).
pub const CONFIG_ENV: &str = "FILE_ORBIT_CONFIG";
/// Overrides `ServerConfig::listen`.
pub const LISTEN_ENV: &str = "FILE_ORBIT_LISTEN";
/// Overrides `ServerConfig::store_url`.
pub const STORE_URL_ENV: &str = "FILE_ORBIT_STORE_URL";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve the API (no arguments but `--config`).
    Serve,
    /// `keys ...`: manage API keys in the store (the arguments after `keys`).
    Keys(Vec<String>),
}

/// Everything the server process knows before it opens the store.
#[derive(Debug, Clone)]
pub struct Startup {
    pub data_dir: PathBuf,
    /// Where the configuration was read from (or would be: the bootstrap key's hash goes
    /// there).
    pub config_path: PathBuf,
    /// The configuration with the environment's overrides applied.
    pub config: ServerConfig,
    /// `store_url`, or `sqlite://<data dir>/file-orbit.db`.
    pub store_url: String,
    pub command: Command,
}

fn command_line(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, "server command line", message)
}

impl Startup {
    /// From this process's arguments and environment.
    pub fn from_process() -> Result<Startup> {
        Startup::discover(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// From `args` (without the program name) and the variables `env` returns: the data
    /// directory, the configuration file (`--config PATH` or `--config=PATH`, else
    /// `$FILE_ORBIT_CONFIG`, both of which must exist, else `file-orbit-server.toml` in
    /// the data directory if it exists, else the defaults), then `$FILE_ORBIT_LISTEN` and
    /// `$FILE_ORBIT_STORE_URL` over the file's `listen` and `store_url`.
    pub fn discover(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Startup> {
        let data_dir = env(DATA_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let mut args = args.into_iter();
        let mut from_args = None;
        let mut command = Command::Serve;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => {
                    let path = args
                        .next()
                        .ok_or_else(|| command_line("--config needs a path"))?;
                    from_args = Some(PathBuf::from(path));
                }
                "keys" => command = Command::Keys(args.by_ref().collect()),
                other => match other.strip_prefix("--config=") {
                    Some(path) => from_args = Some(PathBuf::from(path)),
                    None => {
                        return Err(command_line(format!(
                            "unknown argument {other:?} (only --config PATH and keys ...)"
                        )));
                    }
                },
            }
        }
        let (config_path, required) = match from_args {
            Some(path) => (path, true),
            None => match env(CONFIG_ENV).filter(|path| !path.is_empty()) {
                Some(path) => (PathBuf::from(path), true),
                None => (data_dir.join(DEFAULT_CONFIG_NAME), false),
            },
        };
        let mut config = read_config(&config_path, required)?;
        if let Some(listen) = env(LISTEN_ENV) {
            config.listen = listen;
        }
        if let Some(url) = env(STORE_URL_ENV) {
            config.store_url = Some(url);
        }
        let store_url = config
            .store_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("file-orbit.db").display()));
        Ok(Startup {
            data_dir,
            config_path,
            config,
            store_url,
            command,
        })
    }

    /// Sets up this process's logs: `[log] dir` defaults to `<data dir>/logs`, then
    /// `$FILE_ORBIT_LOG_DIR` and `$FILE_ORBIT_LOG_FORMAT` apply. Once per process.
    pub fn init_logs(&mut self) -> Result<()> {
        let log = &mut self.config.log;
        if log.dir.is_none() {
            log.dir = Some(self.data_dir.join("logs"));
        }
        log.apply_env()?;
        logs::init("server", log)
    }

    /// With no API key configured: makes the `bootstrap-admin` key, appends its hash to
    /// the configuration file (created if missing) and returns the key, to print this
    /// once. With keys configured: None, and the file is left alone.
    pub fn save_bootstrap_key(&mut self) -> Result<Option<Secret>> {
        let Some(key) = self.config.ensure_admin_key() else {
            return Ok(None);
        };
        let saving = || {
            format!(
                "saving the bootstrap key's hash to {}",
                self.config_path.display()
            )
        };
        let entry = toml::to_string(&self.config.api_keys[0])
            .map_err(|err| Error::new(ErrorKind::InvalidInput, saving(), err.to_string()))?;
        let mut text = std::fs::read_to_string(&self.config_path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Generated at first start; the key itself was printed once.\n[[api_keys]]\n{entry}"
        ));
        std::fs::write(&self.config_path, text)
            .map_err(|err| Error::new(ErrorKind::InvalidInput, saving(), err.to_string()))?;
        Ok(Some(key))
    }

    /// The store, the server's actor, the configured limits, the node, the bandwidth
    /// limit and the notifier's allow-list.
    pub fn orbit_options(&self) -> OrbitOptions {
        OrbitOptions {
            store_url: self.store_url.clone(),
            actor: "server".into(),
            lease: std::time::Duration::from_secs(self.config.lease_secs),
            limits: self.config.limits,
            node: self.config.node.clone(),
            bandwidth: BandwidthOptions {
                service: self.config.bandwidth.clone(),
                ..Default::default()
            },
            notify_allow: self.config.notifier.allow.clone(),
            ..Default::default()
        }
    }

    /// What the server prints once it listens on `addr`: its URLs, store, workers,
    /// configuration file and log files, and the bootstrap key when one was just made.
    pub fn banner(&self, addr: SocketAddr, bootstrap: Option<&Secret>) -> String {
        let path = self.config_path.display();
        let base = format!("{}://{addr}", self.config.tls.scheme());
        let mut text = format!(
            "File Orbit server on {base}\n{}  \
             API:     {base}/api/v1 (Authorization: Bearer <key>)\n  \
             health:  {base}/health   metrics: {base}/metrics\n  \
             store:   {}   workers: {}   config: {path}\n",
            match self.config.console.enabled {
                true => format!("  console: {base}/ui/ (sign in with an API key)\n"),
                false => String::new(),
            },
            self.store_url,
            self.config.workers
        );
        if let Some(dir) = &self.config.log.dir {
            text.push_str(&format!(
                "  logs:    {}/server.*.log (GET /api/v1/logs)\n",
                dir.display()
            ));
        }
        if let Some(key) = bootstrap {
            text.push_str(&format!(
                "\n  Bootstrap admin API key (shown only now; its hash is in {path}):\n    {}\n\n",
                key.expose()
            ));
        }
        text
    }
}

/// The configuration at `path`; when it is missing and not `required`, the defaults.
fn read_config(path: &Path, required: bool) -> Result<ServerConfig> {
    let at =
        |message: String| Error::new(ErrorKind::InvalidInput, path.display().to_string(), message);
    match std::fs::read_to_string(path) {
        Ok(text) => ServerConfig::from_toml(&text).map_err(|err| Error {
            context: path.display().to_string(),
            ..err
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(ServerConfig::default())
        }
        Err(err) => Err(at(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hash_api_key;
    use std::collections::HashMap;

    fn discover(args: &[&str], env: &[(&str, &str)]) -> Result<Startup> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Startup::discover(args.iter().map(|a| a.to_string()), |name| {
            env.get(name).cloned()
        })
    }

    #[test]
    fn the_config_is_found_in_order_args_env_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, workers: usize| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("workers = {workers}\n")).unwrap();
            path.display().to_string()
        };
        let from_args = write("args.toml", 5);
        let from_env = write("env.toml", 6);
        write(DEFAULT_CONFIG_NAME, 7);
        let data_dir = dir.path().display().to_string();
        let env = [
            (DATA_DIR_ENV, data_dir.as_str()),
            (CONFIG_ENV, from_env.as_str()),
        ];

        let startup = discover(&["--config", &from_args], &env).unwrap();
        assert_eq!(
            (
                startup.config.workers,
                startup.config_path.display().to_string()
            ),
            (5, from_args.clone())
        );
        let startup = discover(&[&format!("--config={from_args}")], &env).unwrap();
        assert_eq!(startup.config.workers, 5);
        let startup = discover(&[], &env).unwrap();
        assert_eq!(
            (
                startup.config.workers,
                startup.config_path.display().to_string()
            ),
            (6, from_env.clone())
        );
        let startup = discover(&[], &env[..1]).unwrap();
        assert_eq!(startup.config.workers, 7);
        assert_eq!(startup.config_path, dir.path().join(DEFAULT_CONFIG_NAME));
        assert_eq!(startup.command, Command::Serve);
        // An empty $FILE_ORBIT_CONFIG is unset.
        let startup = discover(&[], &[env[0], (CONFIG_ENV, "")]).unwrap();
        assert_eq!(startup.config.workers, 7);
    }

    #[test]
    fn a_missing_default_file_means_defaults_but_a_named_one_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().display().to_string();
        let startup = discover(&[], &[(DATA_DIR_ENV, &data_dir)]).unwrap();
        assert_eq!(startup.config.listen, ServerConfig::default().listen);
        assert_eq!(
            startup.store_url,
            format!("sqlite://{}", dir.path().join("file-orbit.db").display())
        );
        let missing = dir.path().join("missing.toml").display().to_string();
        let err = discover(&["--config", &missing], &[]).unwrap_err();
        assert_eq!(err.context, missing, "{err}");
        let err = discover(&[], &[(CONFIG_ENV, &missing)]).unwrap_err();
        assert_eq!(err.context, missing, "{err}");
        // A bad file is named, with the key.
        let bad = dir.path().join(DEFAULT_CONFIG_NAME);
        std::fs::write(&bad, "workerz = 1\n").unwrap();
        let err = discover(&[], &[(DATA_DIR_ENV, &data_dir)]).unwrap_err();
        assert_eq!(err.context, bad.display().to_string());
        assert!(err.to_string().contains("workerz"), "{err}");
    }

    #[test]
    fn the_environment_overrides_listen_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nstore_url = \"sqlite://a.db\"\n",
        )
        .unwrap();
        let path = path.display().to_string();
        let startup = discover(&["--config", &path], &[]).unwrap();
        assert_eq!(
            (startup.config.listen.as_str(), startup.store_url.as_str()),
            ("127.0.0.1:1", "sqlite://a.db")
        );
        let startup = discover(
            &["--config", &path],
            &[
                (LISTEN_ENV, "127.0.0.1:2"),
                (STORE_URL_ENV, "sqlite://b.db"),
            ],
        )
        .unwrap();
        assert_eq!(
            (startup.config.listen.as_str(), startup.store_url.as_str()),
            ("127.0.0.1:2", "sqlite://b.db")
        );
        assert_eq!(startup.config.store_url.as_deref(), Some("sqlite://b.db"));
    }

    #[test]
    fn the_command_line_is_checked() {
        let startup = discover(&["keys", "create", "--name", "ci"], &[]).unwrap();
        assert_eq!(
            startup.command,
            Command::Keys(vec!["create".into(), "--name".into(), "ci".into()])
        );
        let err = discover(&["--config"], &[]).unwrap_err();
        assert!(err.to_string().contains("--config needs a path"), "{err}");
        let err = discover(&["--verbose"], &[]).unwrap_err();
        assert!(err.to_string().contains("\"--verbose\""), "{err}");
    }

    #[test]
    fn the_bootstrap_key_is_made_once_and_only_its_hash_is_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "workers = 3").unwrap();
        let config = path.display().to_string();
        let mut startup = discover(&["--config", &config], &[]).unwrap();
        let key = startup.save_bootstrap_key().unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("workers = 3\n"), "{text}");
        assert!(text.contains(&hash_api_key(key.expose())), "{text}");
        assert!(!text.contains(key.expose()), "{text}");
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let banner = startup.banner(addr, Some(&key));
        assert!(banner.contains(key.expose()), "{banner}");
        assert!(banner.contains("http://127.0.0.1:8080/api/v1"), "{banner}");
        assert!(banner.contains("workers: 3"), "{banner}");

        // The next start reads the hash back: no new key, the file unchanged, no key shown.
        let mut again = discover(&["--config", &config], &[]).unwrap();
        assert_eq!(again.config.api_keys[0].name, "bootstrap-admin");
        assert!(again.save_bootstrap_key().unwrap().is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let banner = again.banner(addr, None);
        assert!(!banner.contains("Bootstrap"), "{banner}");
        again.config.tls.cert_path = Some("/c.pem".into());
        again.config.tls.key_path = Some("/k.pem".into());
        let banner = again.banner(addr, None);
        assert!(banner.contains("https://127.0.0.1:8080/api/v1"), "{banner}");
        assert!(!banner.contains("http:"), "{banner}");

        // With no file yet, the default file is created in the data directory.
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        let data = data_dir.display().to_string();
        let mut fresh = discover(&[], &[(DATA_DIR_ENV, &data)]).unwrap();
        let key = fresh.save_bootstrap_key().unwrap().unwrap();
        let saved = std::fs::read_to_string(data_dir.join(DEFAULT_CONFIG_NAME)).unwrap();
        let reread = ServerConfig::from_toml(&saved).unwrap();
        assert_eq!(reread.api_keys[0].sha256, hash_api_key(key.expose()));
    }
}
