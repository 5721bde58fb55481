//! A server process started as a user starts it: the example server binary (`cargo test`
//! builds examples beside the test binaries) with a TOML configuration in its own data
//! directory, its address read from the banner it prints, an admin key of our own in the
//! file; killed with SIGKILL on `kill` and on drop.

use super::api::Api;
use file_orbit::Secret;
use file_orbit::server::{Role, generate_api_key};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server process may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The example server binary next to this test binary (`target/<profile>/examples/server`).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join("server");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --all-features` builds it",
        binary.display()
    );
    binary
}

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pub api: Api,
    /// An admin API key of its configuration.
    pub admin: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts the server in `data_dir` with `config` (TOML without `listen` and
    /// `api_keys`, which this adds: a free loopback port, one admin key) and the extra
    /// environment `env`; returns once it listens.
    pub fn start(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> ServerProcess {
        let (admin, entry) = generate_api_key("admin", Role::Admin);
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{config}\n\n[[api_keys]]\nname = \"{}\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            entry.name, entry.sha256
        );
        let config_path = data_dir.join("file-orbit-server.toml");
        std::fs::write(&config_path, text).unwrap();
        let mut command = Command::new(server_binary());
        command
            .arg("--config")
            .arg(&config_path)
            .env("FILE_ORBIT_DATA_DIR", data_dir)
            .env_remove("FILE_ORBIT_CONFIG")
            .env_remove("FILE_ORBIT_LISTEN")
            .env_remove("FILE_ORBIT_STORE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its log lines are in its log files.
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix("File Orbit server on http://") {
                        let _ = found.send(url.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let addr = match address.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the server did not start ({err}; exit {status:?}); see its logs in {}",
                    data_dir.display()
                );
            }
        };
        ServerProcess {
            child,
            api: Api::new(addr.parse().unwrap()),
            admin: admin.expose().to_string(),
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no lease released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every log line it wrote (its log files in `<data dir>/logs`).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(self.data_dir.join("logs")) {
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The master key both server processes of a cluster share, as their environment.
pub fn shared_master_key() -> Secret {
    file_orbit::engine::Keyring::generate_key()
}
