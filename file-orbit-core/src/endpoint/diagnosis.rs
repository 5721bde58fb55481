//! `Endpoint::test`: a connectivity and write check that ends in a diagnosis a person can
//! act on (DNS, refused, timeout, TLS, authentication, host key, permission, not found),
//! naming the endpoint and never a secret.

use super::{Endpoint, EndpointConfig};
use crate::error::{Error, ErrorKind};
use crate::rclone::Rclone;
use crate::rclone::methods::Fs;
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpStream, lookup_host};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The probe file's name starts with this (hidden on Unix-like servers).
const PROBE_PREFIX: &str = ".file-orbit-probe-";

/// What is wrong with an endpoint.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    InvalidConfig,
    Dns,
    ConnectionRefused,
    Timeout,
    Tls,
    Authentication,
    HostKeyMismatch,
    PermissionDenied,
    NotFound,
    Other,
}

/// The outcome of `Endpoint::test`: no problem, or the problem and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub endpoint: String,
    pub problem: Option<Problem>,
    /// A sentence for a person: what is wrong, where, and what to check.
    pub message: String,
    /// Something to know about an endpoint that works, e.g. that its root does not exist
    /// yet (the first transfer to it creates it) or that the probe file could not be removed.
    pub warning: Option<String>,
}

/// What `Endpoint::test_with` checks after reaching the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestOptions {
    /// Write a small hidden file (`.file-orbit-probe-…`) at the root and remove it: proves a
    /// destination can be written, and lets a missing root whose parent exists pass with a
    /// warning. Off for an endpoint that is only read from (its root must then exist).
    pub write_probe: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions { write_probe: true }
    }
}

impl Diagnosis {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint {:?}: {}", self.endpoint, self.message)?;
        match &self.warning {
            Some(warning) => write!(f, " (warning: {warning})"),
            None => Ok(()),
        }
    }
}

impl Endpoint {
    /// `test_with` the default options: the write probe included.
    pub async fn test(&self, rclone: &'static Rclone) -> Diagnosis {
        self.test_with(rclone, TestOptions::default()).await
    }

    /// Checks the endpoint end to end: config, name resolution, TCP connection, a listing
    /// of its root through rclone (login, host key, bucket/share/path, rights), then, with
    /// `write_probe`, writing and removing a probe file at the root.
    pub async fn test_with(&self, rclone: &'static Rclone, options: TestOptions) -> Diagnosis {
        let diagnosis =
            |problem: Option<Problem>, message: String, warning: Option<String>| Diagnosis {
                endpoint: self.name.clone(),
                problem,
                message,
                warning,
            };
        if let Err(err) = self.validate() {
            return diagnosis(Some(Problem::InvalidConfig), err.detail().into(), None);
        }
        if let Some((host, port)) = self.network_address() {
            if let Err((problem, message)) = probe(&host, port).await {
                return diagnosis(Some(problem), message, None);
            }
        }
        let root = match self.to_rclone(rclone, "") {
            Ok(fs) => fs,
            Err(err) => return diagnosis(Some(Problem::InvalidConfig), err.detail().into(), None),
        };
        let mut warnings = Vec::new();
        let (mut message, root_missing) = match list(rclone, &root).await {
            Ok(reply) => {
                let entries = reply["list"].as_array().map_or(0, Vec::len);
                (format!("reachable; {entries} entries at its root"), false)
            }
            Err(err)
                if err.kind == ErrorKind::NotFound
                    && options.write_probe
                    && self.parent_exists(rclone).await =>
            {
                warnings.push(format!(
                    "{} does not exist yet; the first transfer to it creates it",
                    self.root_description()
                ));
                ("reachable; its root does not exist yet".to_string(), true)
            }
            Err(err) => {
                let (problem, advice) = self.explain(&err);
                return diagnosis(Some(problem), format!("{advice} ({})", err.message), None);
            }
        };
        if options.write_probe {
            match self.write_probe(rclone, &root, root_missing).await {
                Ok(leftover) => {
                    message.push_str("; a probe file was written and removed");
                    warnings.extend(leftover);
                }
                Err(err) => {
                    let (problem, advice) = self.explain(&err);
                    return diagnosis(
                        Some(problem),
                        format!(
                            "reachable but not writable: {advice} ({}); test an endpoint that is only read from without the write probe",
                            err.message
                        ),
                        None,
                    );
                }
            }
        }
        let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        diagnosis(None, message, warning)
    }

    /// Copies a small probe file to the root and deletes it again. `Ok` carries a warning
    /// when the probe could not be removed (a write-only drop box) or the root created
    /// for it could not be removed again.
    async fn write_probe(
        &self,
        rclone: &'static Rclone,
        root: &Fs,
        root_missing: bool,
    ) -> Result<Option<String>, Error> {
        let name = probe_name();
        let local = ProbeDir::create(&name)?;
        let config = test_config();
        rclone
            .rpc_async(
                "operations/copyfile",
                json!({
                    "srcFs": Fs::local(&local.0), "srcRemote": &name,
                    "dstFs": root, "dstRemote": &name, "_config": config,
                }),
            )
            .await?;
        let removed = rclone
            .rpc_async(
                "operations/deletefile",
                json!({"fs": root, "remote": &name, "_config": config}),
            )
            .await;
        if let Err(err) = removed {
            return Ok(Some(format!(
                "the probe file {name:?} was written but could not be removed ({})",
                err.message
            )));
        }
        // The copy created the missing root (buckets have no directories): leave it as
        // it was, so a test changes nothing.
        if root_missing && !matches!(self.config, EndpointConfig::S3(_)) {
            let rmdir = rclone
                .rpc_async(
                    "operations/rmdir",
                    json!({"fs": root, "remote": "", "_config": config}),
                )
                .await;
            if let Err(err) = rmdir {
                return Ok(Some(format!(
                    "the root created for the probe could not be removed ({})",
                    err.message
                )));
            }
        }
        Ok(None)
    }

    /// Whether the directory (or bucket) that would hold a missing root exists: then the
    /// first transfer creates the root. False when the root is the endpoint's base (the
    /// bucket, share or login directory) itself.
    async fn parent_exists(&self, rclone: &'static Rclone) -> bool {
        let Some(parent) = self.parent() else {
            return false;
        };
        match parent.to_rclone(rclone, "") {
            Ok(fs) => list(rclone, &fs).await.is_ok(),
            Err(_) => false,
        }
    }

    /// This endpoint with its root one level up (for S3: the bucket itself).
    fn parent(&self) -> Option<Endpoint> {
        let mut config = self.config.clone();
        match &mut config {
            EndpointConfig::Local(local) => local.root = local.root.parent()?.to_path_buf(),
            EndpointConfig::S3(s3) => {
                if s3.prefix.trim_matches('/').is_empty() {
                    return None;
                }
                s3.prefix = String::new();
            }
            EndpointConfig::Sftp(sftp) => sftp.root = parent_dir(&sftp.root)?,
            EndpointConfig::Smb(smb) => smb.root = parent_dir(&smb.root)?,
        }
        Some(Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: self.name.clone(),
            config,
        })
    }

    /// The endpoint's root as a person names it.
    fn root_description(&self) -> String {
        match &self.config {
            EndpointConfig::Local(local) => format!("directory {}", local.root.display()),
            EndpointConfig::S3(s3) => format!("prefix {:?} in bucket {:?}", s3.prefix, s3.bucket),
            EndpointConfig::Sftp(sftp) => format!("directory {:?} on {}", sftp.root, sftp.host),
            EndpointConfig::Smb(smb) => {
                format!(
                    "directory {:?} in share {:?} on {}",
                    smb.root, smb.share, smb.host
                )
            }
        }
    }

    /// Host and port the endpoint connects to, when it is a network endpoint we can probe.
    fn network_address(&self) -> Option<(String, u16)> {
        match &self.config {
            EndpointConfig::Local(_) => None,
            EndpointConfig::Sftp(sftp) => Some((sftp.host.clone(), sftp.port)),
            EndpointConfig::Smb(smb) => Some((smb.host.clone(), smb.port)),
            EndpointConfig::S3(s3) => {
                let url = url::Url::parse(s3.endpoint_url.as_deref()?).ok()?;
                Some((url.host_str()?.to_string(), url.port_or_known_default()?))
            }
        }
    }

    /// The problem behind an rclone error on this endpoint, and a sentence of advice.
    fn explain(&self, err: &Error) -> (Problem, String) {
        let lower = err.message.to_lowercase();
        let at = match &self.config {
            EndpointConfig::Local(local) => format!("{}", local.root.display()),
            EndpointConfig::S3(s3) => match &s3.endpoint_url {
                Some(url) => format!("bucket {:?} at {url}", s3.bucket),
                None => format!("bucket {:?}", s3.bucket),
            },
            EndpointConfig::Sftp(sftp) => format!("{}@{}:{}", sftp.user, sftp.host, sftp.port),
            EndpointConfig::Smb(smb) => format!("{}@{}:{}", smb.user, smb.host, smb.port),
        };
        if lower.contains("knownhosts") || lower.contains("host key") {
            return (
                Problem::HostKeyMismatch,
                format!(
                    "the server's host key at {at} does not match the known or pinned keys: verify the server, then update host_key"
                ),
            );
        }
        if lower.contains("x509:") || lower.contains("tls:") {
            return (
                Problem::Tls,
                format!(
                    "TLS failed talking to {at}: check the certificate and the endpoint URL's scheme"
                ),
            );
        }
        match err.kind {
            ErrorKind::Authentication => (
                Problem::Authentication,
                format!(
                    "authentication failed at {at}: check the user name and the password or key"
                ),
            ),
            ErrorKind::InvalidInput => (
                Problem::InvalidConfig,
                format!("{at} cannot be used with this endpoint's settings"),
            ),
            ErrorKind::PermissionDenied => (
                Problem::PermissionDenied,
                format!("permission denied at {at}: the account lacks rights on this path"),
            ),
            ErrorKind::NotFound => {
                let what = match &self.config {
                    EndpointConfig::Local(local) => format!("directory {}", local.root.display()),
                    EndpointConfig::S3(s3) => format!("bucket {:?}", s3.bucket),
                    EndpointConfig::Sftp(sftp) => format!("directory {:?} on {at}", sftp.root),
                    EndpointConfig::Smb(smb) => {
                        format!("share {:?} (root {:?}) on {at}", smb.share, smb.root)
                    }
                };
                (Problem::NotFound, format!("{what} does not exist"))
            }
            ErrorKind::Connection if lower.contains("timeout") || lower.contains("deadline") => {
                (Problem::Timeout, format!("{at} did not answer in time"))
            }
            ErrorKind::Connection => (
                Problem::ConnectionRefused,
                format!("the connection to {at} failed"),
            ),
            _ => (Problem::Other, format!("{at} failed")),
        }
    }
}

/// Short timeouts and no retries: a test answers within seconds.
pub(super) fn test_config() -> Value {
    json!({"LowLevelRetries": 1, "ConnectTimeout": "5s", "Timeout": "15s"})
}

/// Lists the root `fs` (the test's read check).
async fn list(rclone: &'static Rclone, fs: &Fs) -> Result<Value, Error> {
    let input = json!({
        "fs": fs, "remote": "", "opt": {"noModTime": true}, "_config": test_config(),
    });
    rclone.rpc_async("operations/list", input).await
}

/// The parent of a relative or `/`-absolute directory; None for the base itself.
fn parent_dir(root: &str) -> Option<String> {
    let trimmed = root.trim_end_matches(['/', '\\']);
    if trimmed.is_empty() {
        return None;
    }
    Some(match trimmed.rsplit_once(['/', '\\']) {
        Some(("", _)) if trimmed.starts_with('/') => "/".to_string(),
        Some((parent, _)) => parent.to_string(),
        None => String::new(),
    })
}

/// A name no other probe (in this or another process) uses.
fn probe_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PROBE_PREFIX}{}-{nanos}-{n}", std::process::id())
}

/// A local directory holding the probe file, removed when dropped.
struct ProbeDir(PathBuf);

impl ProbeDir {
    fn create(name: &str) -> Result<ProbeDir, Error> {
        let dir = ProbeDir(std::env::temp_dir().join(name));
        let io = |err: std::io::Error| {
            Error::new(
                ErrorKind::Remote,
                "endpoint test",
                format!(
                    "cannot create the local probe file under {}: {err}",
                    std::env::temp_dir().display()
                ),
            )
        };
        std::fs::create_dir(&dir.0).map_err(io)?;
        std::fs::write(dir.0.join(name), b"File Orbit write probe\n").map_err(io)?;
        Ok(dir)
    }
}

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Resolves `host` and opens a TCP connection to it: the network half of the diagnosis.
async fn probe(host: &str, port: u16) -> Result<(), (Problem, String)> {
    let lookup = tokio::time::timeout(CONNECT_TIMEOUT, lookup_host((host, port))).await;
    let addresses: Vec<_> = match lookup {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(err)) => {
            return Err((
                Problem::Dns,
                format!("host name {host:?} does not resolve ({err}): check the host"),
            ));
        }
        Err(_) => {
            return Err((
                Problem::Dns,
                format!("resolving {host:?} timed out: check DNS"),
            ));
        }
    };
    let Some(address) = addresses.first() else {
        return Err((Problem::Dns, format!("host name {host:?} has no address")));
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => Err((
            Problem::ConnectionRefused,
            format!("{host}:{port} refused the connection: is the server running on that port?"),
        )),
        Ok(Err(err)) => Err((
            Problem::ConnectionRefused,
            format!("cannot connect to {host}:{port}: {err}"),
        )),
        Err(_) => Err((
            Problem::Timeout,
            format!(
                "{host}:{port} did not answer within {CONNECT_TIMEOUT:?}: check the host, port and firewall"
            ),
        )),
    }
}
