//! `Endpoint::test`: a connectivity check that ends in a diagnosis a person can act on
//! (DNS, refused, timeout, TLS, authentication, host key, permission, not found), naming
//! the endpoint and never a secret.

use super::{Endpoint, EndpointConfig};
use crate::error::{Error, ErrorKind};
use crate::rclone::Rclone;
use serde::Serialize;
use serde_json::json;
use std::fmt;
use std::time::Duration;
use tokio::net::{TcpStream, lookup_host};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What is wrong with an endpoint.
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
}

impl Diagnosis {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint {:?}: {}", self.endpoint, self.message)
    }
}

impl Endpoint {
    /// Checks the endpoint end to end: config, name resolution, TCP connection, then a
    /// listing of its root through rclone (login, host key, bucket/share/path, rights).
    pub async fn test(&self, rclone: &'static Rclone) -> Diagnosis {
        let diagnosis = |problem: Option<Problem>, message: String| Diagnosis {
            endpoint: self.name.clone(),
            problem,
            message,
        };
        if let Err(err) = self.validate() {
            return diagnosis(Some(Problem::InvalidConfig), err.message);
        }
        if let Some((host, port)) = self.network_address() {
            if let Err((problem, message)) = probe(&host, port).await {
                return diagnosis(Some(problem), message);
            }
        }
        let listed = match self.to_rclone(rclone, "") {
            Ok(fs) => {
                let input = json!({
                    "fs": fs, "remote": "", "opt": {"noModTime": true},
                    "_config": {"LowLevelRetries": 1, "ConnectTimeout": "5s", "Timeout": "15s"},
                });
                rclone.rpc_async("operations/list", input).await
            }
            Err(err) => Err(err),
        };
        match listed {
            Ok(reply) => {
                let entries = reply["list"].as_array().map_or(0, Vec::len);
                diagnosis(None, format!("reachable; {entries} entries at its root"))
            }
            Err(err) => {
                let (problem, advice) = self.explain(&err);
                diagnosis(Some(problem), format!("{advice} ({})", err.message))
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
