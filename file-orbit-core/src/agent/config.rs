//! The `[agent]` section of the worker service's configuration: the control plane's URLs,
//! the CA to trust, where the credential lives, the one-time enrolment token and the
//! long-poll wait. Only checks and holds the settings; it opens no file and no connection.

use crate::engine::ENROLMENT_PREFIX;
use crate::error::{Error, Result};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Overrides `AgentConfig::enrolment_token`.
pub const ENROLMENT_TOKEN_ENV: &str = "FILE_ORBIT_ENROLMENT_TOKEN";

/// The most control-plane URLs an agent may be given.
pub const MAX_CONTROL_PLANE_URLS: usize = 8;

/// How an agent reaches its control plane and proves who it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The control plane's servers (`https://host:port`, no path), tried in this order;
    /// a call fails over to the next on a connect error, a timeout or a 502/503/504.
    pub control_plane: Vec<String>,
    /// A CA certificate (PEM) trusted on top of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The agent's credential: read at start, written (mode 0600) by the enrolment.
    pub credential_file: PathBuf,
    /// The one-time token from `POST /api/v1/agents`, used only when `credential_file`
    /// does not exist yet (also `$FILE_ORBIT_ENROLMENT_TOKEN`).
    #[serde(default)]
    pub enrolment_token: Option<Secret>,
    /// How long one lease call may wait for work, in seconds (1..=60).
    #[serde(default = "default_wait")]
    pub wait_secs: u64,
}

fn default_wait() -> u64 {
    20
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid_field("worker configuration", format!("agent.{field}"), message)
}

/// Whether `text` is `prefix` followed by 43 base64url characters (32 bytes).
pub(crate) fn is_token(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl AgentConfig {
    /// The settings for `control_plane` with the credential at `credential_file` and the
    /// defaults for the rest.
    pub fn new(control_plane: &[&str], credential_file: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            control_plane: control_plane.iter().map(|url| url.to_string()).collect(),
            ca_file: None,
            credential_file: credential_file.into(),
            enrolment_token: None,
            wait_secs: default_wait(),
        }
    }

    /// Takes the enrolment token from `$FILE_ORBIT_ENROLMENT_TOKEN` as `env` returns it,
    /// over the file's.
    pub fn apply_env_from(&mut self, env: impl Fn(&str) -> Option<String>) {
        if let Some(token) = env(ENROLMENT_TOKEN_ENV).filter(|token| !token.is_empty()) {
            self.enrolment_token = Some(Secret::new(token.trim()));
        }
    }

    /// Checks every setting; an error names the field (`agent.control_plane[1]`).
    pub fn validate(&self) -> Result<()> {
        self.urls()?;
        if self.credential_file.as_os_str().is_empty() {
            return Err(invalid("credential_file", "must not be empty"));
        }
        if self
            .ca_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(invalid("ca_file", "must not be empty when given"));
        }
        if let Some(token) = &self.enrolment_token {
            if !is_token(token.expose(), ENROLMENT_PREFIX) {
                return Err(invalid(
                    "enrolment_token",
                    "is not an enrolment token (foe_ and 43 characters, as \
                     POST /api/v1/agents returns it)",
                ));
            }
        }
        if !(1..=60).contains(&self.wait_secs) {
            return Err(invalid(
                "wait_secs",
                format!("{} is not between 1 and 60", self.wait_secs),
            ));
        }
        Ok(())
    }

    /// The control plane's URLs, parsed and checked: 1 to 8, `http` or `https`, a host, no
    /// path, query, fragment or user, no repeats. Each without its trailing `/`.
    pub fn urls(&self) -> Result<Vec<url::Url>> {
        let count = self.control_plane.len();
        if count == 0 || count > MAX_CONTROL_PLANE_URLS {
            return Err(invalid(
                "control_plane",
                format!("needs 1 to {MAX_CONTROL_PLANE_URLS} URLs, got {count}"),
            ));
        }
        let mut urls: Vec<url::Url> = Vec::with_capacity(count);
        for (i, text) in self.control_plane.iter().enumerate() {
            // A URL with a user part is not quoted: it may hold a password.
            let shown = match text.contains('@') {
                true => "the URL".to_string(),
                false => format!("{text:?}"),
            };
            let bad = |why: &str| invalid(&format!("control_plane[{i}]"), format!("{shown} {why}"));
            let url = url::Url::parse(text).map_err(|err| bad(&format!("is not a URL ({err})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("must be http:// or https://"));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("has no host"));
            }
            if url.path() != "/" {
                return Err(bad("must have no path (the API's paths are added to it)"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad("must have no query or fragment"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad("must not carry a user or password"));
            }
            if urls.contains(&url) {
                return Err(bad("is given twice"));
            }
            urls.push(url);
        }
        Ok(urls)
    }
}
