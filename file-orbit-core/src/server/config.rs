//! The server's TOML configuration: where to listen (and TLS), the store, workers, API keys
//! (hashed), the JWT secret, rate limits, logs, the node, the notifier, and endpoints,
//! templates, sources and notifications declared as code. Unknown keys are refused by name.

use super::agents_config::AgentsConfig;
use super::error::without_values;
use super::tls::TlsConfig;
use crate::endpoint::{Bandwidth, Endpoint};
use crate::engine::{DEFAULT_MAX_CONCURRENT, Limits, NodeIdentity, Orbit, TransferTemplate};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::{Secret, same_with_secrets};
use crate::serde_errors::from_json_value;
use crate::service::declared::{
    DeclaredNotification, DeclaredSource, NotifierConfig, SourceRunnerConfig,
    apply_declared_notifications, apply_declared_sources, resolve_declared, secret_from_reference,
};
use crate::service::logs::LogConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a caller may do. Each role can do everything the roles before it can.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything (never secrets).
    Viewer,
    /// Also submit, cancel and retry jobs, replay events, test endpoints.
    Operator,
    /// Also create and edit endpoints and templates.
    Admin,
}

impl Role {
    /// The role's name, as written in configurations and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// One API key: its name (who it is in logs and rate limits), role and SHA-256 (hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub name: String,
    pub role: Role,
    pub sha256: String,
}

/// A token bucket per caller.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 100,
        }
    }
}

/// The server's configuration file; a key left out takes its value from `Default`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free one.
    pub listen: String,
    /// `sqlite://...` or `postgres://...`; unset: `sqlite://file-orbit.db` in the data dir.
    pub store_url: Option<String>,
    /// In-process workers.
    pub workers: usize,
    /// How long a job's lease lasts without a heartbeat (in-process workers and agents):
    /// a lost worker's or agent's job runs again after it (1 to 3600 s; default 30).
    pub lease_secs: u64,
    /// How long running transfers may take to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long one live-progress stream may last.
    pub max_stream_secs: u64,
    /// An API request not answered within this gets 503 `timeout` (the store silent, a
    /// remote hanging); a live-progress stream only needs to start within it.
    pub request_timeout_secs: u64,
    pub rate_limit: RateLimit,
    /// A token bucket per client address for requests that fail authentication: once
    /// empty they get 429 with Retry-After (authenticated callers are not affected).
    pub failed_auth_limit: RateLimit,
    /// The most jobs one `POST /api/v1/jobs` may submit (`{"jobs": [...]}`).
    pub max_batch_jobs: usize,
    /// HS256 secret for JWT bearer tokens (claim `role`; `sub` and `exp` optional): a
    /// string, `{ env = "NAME" }` or `{ file = "/path" }`.
    #[serde(deserialize_with = "secret_or_reference")]
    pub jwt_secret: Option<Secret>,
    pub api_keys: Vec<ApiKeyEntry>,
    /// `/health` reports unhealthy when the log directory or a local endpoint's disk has
    /// less free space than this.
    pub min_free_disk_mb: u64,
    /// `[log]`: the log directory (read by `GET /api/v1/logs`), format, rotation.
    pub log: LogConfig,
    /// `[limits]`: bounds on the numbers of jobs and templates (parallelism, priority,
    /// retries, next hops, lost attempts); see `engine::Limits`.
    pub limits: Limits,
    /// `[[endpoints]]` declared as code: stored at start when new or changed.
    pub endpoints: Vec<DeclaredEndpoint>,
    /// `[[templates]]` declared as code: stored at start when new or changed.
    pub templates: Vec<TransferTemplate>,
    /// `[node]`: this node's name (default the host name) and labels, which decide the
    /// sources it may run. Applied when the store is opened (`Startup::orbit_options`).
    pub node: NodeIdentity,
    /// `[[sources]]` declared as code: stored at start when new or changed.
    pub sources: Vec<DeclaredSource>,
    /// `[source_runner]`: whether this server runs stored sources, and their lease.
    pub source_runner: SourceRunnerConfig,
    /// The most this server's transfers to and from remote endpoints may move together,
    /// on top of each endpoint's own limit: a rate, `up:down` or a weekly timetable, as an
    /// endpoint's `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// `[[notifications]]` declared as code: stored at start when new or changed.
    pub notifications: Vec<DeclaredNotification>,
    /// `[notifier]`: whether this server sends notifications, the hosts their channels
    /// may reach (`allow`), job links, tries. Applied when the store is opened.
    pub notifier: NotifierConfig,
    /// `[console]`: the web console's sign-in sessions.
    pub console: ConsoleConfig,
    /// `[agents]`: enrolment tokens' lifetime and the agents' long-poll.
    pub agents: AgentsConfig,
    /// `[tls]`: HTTPS with this PEM certificate chain and key (both or neither).
    pub tls: TlsConfig,
}

/// The web console (`/ui/`): on or off, how long a sign-in lasts, its cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console's pages (the API answers either way).
    pub enabled: bool,
    /// How long a sign-in lasts, in seconds (60 to 604,800; default 8 hours); a JWT's
    /// session ends with the token at the latest.
    pub session_secs: u64,
    /// Mark the session cookie `Secure` (set it when clients reach the server over HTTPS
    /// through a proxy; a request with `X-Forwarded-Proto: https` gets it anyway).
    pub secure_cookies: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_secs: 8 * 3600,
            secure_cookies: false,
        }
    }
}

/// The longest console session: a week.
pub const MAX_SESSION_SECS: u64 = 7 * 24 * 3600;

/// An endpoint of the configuration file: the endpoint's own fields (`name`, `type`, ...)
/// plus `max_concurrent` (default 4). A secret field (`password`, `secret_access_key`,
/// `session_token`, `passphrase`, `pem`) may name where the secret is instead of holding
/// it: `{ env = "NAME" }` or `{ file = "/path" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct DeclaredEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub max_concurrent: u32,
}

impl TryFrom<toml::Table> for DeclaredEndpoint {
    type Error = String;

    fn try_from(mut table: toml::Table) -> std::result::Result<Self, String> {
        let max_concurrent = match table.remove("max_concurrent") {
            None => DEFAULT_MAX_CONCURRENT,
            Some(toml::Value::Integer(n)) if (1..=i64::from(u32::MAX)).contains(&n) => n as u32,
            Some(_) => return Err("max_concurrent: must be a positive integer".into()),
        };
        let name = resolve_declared(&mut table, "endpoint")?;
        // Read as the API reads a body: the error names the field (also one whose own
        // parser refused it, like `bandwidth`) and never quotes a value.
        let fields = serde_json::to_value(toml::Value::Table(table)).map_err(|e| e.to_string())?;
        let endpoint: Endpoint = from_json_value(&format!("endpoint {name:?}"), fields)
            .map_err(|err| err.to_string())?;
        Ok(DeclaredEndpoint {
            endpoint,
            max_concurrent,
        })
    }
}

/// `jwt_secret`: a string or a reference (see `secret_from_reference`).
fn secret_or_reference<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Secret>, D::Error> {
    match Option::<toml::Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(toml::Value::String(secret)) => Ok(Some(Secret::new(secret))),
        Some(toml::Value::Table(reference)) => secret_from_reference(&reference)
            .map(|secret| Some(Secret::new(secret)))
            .map_err(serde::de::Error::custom),
        Some(_) => Err(serde::de::Error::custom(
            "write the secret as a string, { env = \"NAME\" } or { file = \"/path\" }",
        )),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            store_url: None,
            workers: 2,
            lease_secs: 30,
            shutdown_grace_secs: 30,
            max_body_bytes: 1024 * 1024,
            max_stream_secs: 3600,
            request_timeout_secs: 60,
            rate_limit: RateLimit::default(),
            failed_auth_limit: RateLimit {
                per_second: 1.0,
                burst: 20,
            },
            max_batch_jobs: 1000,
            jwt_secret: None,
            api_keys: Vec::new(),
            min_free_disk_mb: 256,
            log: LogConfig::default(),
            limits: Limits::default(),
            endpoints: Vec::new(),
            templates: Vec::new(),
            node: NodeIdentity::default(),
            sources: Vec::new(),
            source_runner: SourceRunnerConfig::default(),
            bandwidth: None,
            notifications: Vec::new(),
            notifier: NotifierConfig::default(),
            console: ConsoleConfig::default(),
            agents: AgentsConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses a TOML configuration; an unknown key is an error naming it.
    pub fn from_toml(text: &str) -> Result<ServerConfig> {
        let config: ServerConfig = toml::from_str(text).map_err(|err| {
            // The position, the key and serde's message without the values it quotes:
            // never the offending line's value, which may be a secret.
            let at = err
                .span()
                .map(|span| {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - line_start + 1;
                    let key = text[line_start..]
                        .lines()
                        .next()
                        .and_then(|line| line.split_once('='))
                        .map(|(key, _)| key.trim())
                        .filter(|key| {
                            !key.is_empty()
                                && key
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                        })
                        .map(|key| format!(" ({key})"))
                        .unwrap_or_default();
                    format!("line {line}, column {column}{key}: ")
                })
                .unwrap_or_default();
            Error::new(
                ErrorKind::InvalidInput,
                "reading the server configuration",
                format!("{at}{}", without_values(err.message())),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        const CONTEXT: &str = "server configuration";
        let invalid =
            |field: &str, message: &str| Err(Error::invalid_field(CONTEXT, field, message));
        for (index, key) in self.api_keys.iter().enumerate() {
            if key.sha256.len() != 64 || !key.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return invalid(
                    &format!("api_keys[{index}].sha256"),
                    "must be 64 hex digits (the SHA-256 of the key)",
                );
            }
            if key.name.is_empty() {
                return invalid(&format!("api_keys[{index}].name"), "must not be empty");
            }
        }
        for (name, limit) in [
            ("rate_limit", self.rate_limit),
            ("failed_auth_limit", self.failed_auth_limit),
        ] {
            if !limit.per_second.is_finite() || limit.per_second <= 0.0 || limit.burst == 0 {
                return invalid(name, "per_second and burst must be positive");
            }
        }
        if self.max_batch_jobs == 0 {
            return invalid("max_batch_jobs", "must be positive");
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be positive");
        }
        if self.request_timeout_secs == 0 {
            return invalid("request_timeout_secs", "must be positive");
        }
        if !(60..=30 * 24 * 3600).contains(&self.agents.enrolment_ttl_secs) {
            return invalid(
                "agents.enrolment_ttl_secs",
                "must be from 60 to 2592000 (30 days)",
            );
        }
        if !(1..=3600).contains(&self.lease_secs) {
            return invalid("lease_secs", "must be from 1 to 3600");
        }
        if !(1..=60).contains(&self.agents.lease_wait_max_secs) {
            return invalid("agents.lease_wait_max_secs", "must be from 1 to 60");
        }
        if !(60..=MAX_SESSION_SECS).contains(&self.console.session_secs) {
            return invalid("console.session_secs", "must be from 60 to 604800 (a week)");
        }
        self.limits.validate()?;
        self.tls.validate()?;
        for (index, declared) in self.endpoints.iter().enumerate() {
            declared.endpoint.validate().map_err(|err| Error {
                context: CONTEXT.into(),
                ..err.within(&format!("endpoints[{index}]"))
            })?;
        }
        self.node.validate().map_err(|err| Error {
            context: CONTEXT.into(),
            ..err.within("node")
        })?;
        self.source_runner.validate()?;
        self.notifier.validate()?;
        self.log.validate()
    }

    /// Stores the declared endpoints, templates and sources that are new or differ from the stored
    /// ones (so a restart with the same file changes nothing, not even the audit log).
    pub async fn apply_declarations(&self, orbit: &Orbit) -> Result<()> {
        let stored_limits: std::collections::HashMap<String, i64> = orbit
            .endpoints()
            .await?
            .into_iter()
            .map(|summary| (summary.name, summary.max_concurrent))
            .collect();
        for declared in &self.endpoints {
            let name = &declared.endpoint.name;
            let unchanged = match stored_limits.get(name) {
                Some(limit) if *limit == i64::from(declared.max_concurrent) => {
                    let stored = orbit.endpoint(name).await?;
                    same_with_secrets(&stored, &declared.endpoint)
                }
                _ => false,
            };
            if !unchanged {
                orbit
                    .put_endpoint(&declared.endpoint, declared.max_concurrent)
                    .await?;
            }
        }
        let stored: Vec<serde_json::Value> = orbit
            .templates()
            .await?
            .iter()
            .filter_map(|template| serde_json::to_value(template).ok())
            .collect();
        for template in &self.templates {
            let value = serde_json::to_value(template).ok();
            if !value.as_ref().is_some_and(|value| stored.contains(value)) {
                orbit.put_template(template).await?;
            }
        }
        apply_declared_sources(orbit, &self.sources).await?;
        apply_declared_notifications(orbit, &self.notifications).await
    }

    /// When no API key is configured, makes an admin key named `bootstrap-admin`, adds
    /// its hash and returns the key (to show once).
    pub fn ensure_admin_key(&mut self) -> Option<Secret> {
        if !self.api_keys.is_empty() {
            return None;
        }
        let (key, entry) = generate_api_key("bootstrap-admin", Role::Admin);
        self.api_keys.push(entry);
        Some(key)
    }
}

/// A new key `fo_<64 hex digits>` (256 random bits) and its config entry.
pub fn generate_api_key(name: &str, role: Role) -> (Secret, ApiKeyEntry) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("fo_{}", hex::encode(bytes));
    let entry = ApiKeyEntry {
        name: name.to_string(),
        role,
        sha256: hash_api_key(&key),
    };
    (Secret::new(key), entry)
}

/// The SHA-256 (hex) under which a key is stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::with_secrets_revealed;

    #[test]
    fn unknown_keys_are_named() {
        let err = ServerConfig::from_toml("listen = \"127.0.0.1:1\"\nworkerz = 3\n").unwrap_err();
        assert!(err.message.contains("workerz"), "{err}");
        let bad_hash = "[[api_keys]]\nname = \"ci\"\nrole = \"operator\"\nsha256 = \"abc\"\n";
        let err = ServerConfig::from_toml(bad_hash).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("api_keys[0].sha256"), "{err}");
        let relative = "[[endpoints]]\nname = \"in\"\ntype = \"local\"\nroot = \"in\"\n";
        let err = ServerConfig::from_toml(relative).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("endpoints[0].root"), "{err}");
        assert!(
            err.to_string()
                .starts_with("server configuration: endpoints[0].root: \"in\" must be"),
            "{err}"
        );
    }

    #[test]
    fn secrets_can_be_named_instead_of_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sftp-password");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let text = format!(
            "jwt_secret = {{ file = {file:?} }}\n\
             [[endpoints]]\nname = \"in\"\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nuser = \"u\"\n\
             host_key = {{ check = \"insecure_skip\" }}\n\
             auth = {{ method = \"password\", password = {{ file = {file:?} }} }}\n"
        );
        let config = ServerConfig::from_toml(&text).unwrap();
        assert_eq!(config.jwt_secret.unwrap().expose(), "from-a-file");
        let stored =
            with_secrets_revealed(|| serde_json::to_string(&config.endpoints[0].endpoint)).unwrap();
        assert!(stored.contains("\"password\":\"from-a-file\""), "{stored}");

        let unset = "FILE_ORBIT_TEST_NEVER_SET_7243";
        let missing = text.replace(
            &format!("password = {{ file = {file:?} }}"),
            &format!("password = {{ env = {unset:?} }}"),
        );
        let err = ServerConfig::from_toml(&missing).unwrap_err();
        assert!(
            err.message
                .contains("endpoint \"in\": auth.password: environment variable")
                && err.message.contains(unset),
            "{err}"
        );
        let odd = text.replace(
            &format!("jwt_secret = {{ file = {file:?} }}"),
            "jwt_secret = { vault = \"x\" }",
        );
        let err = ServerConfig::from_toml(&odd).unwrap_err();
        assert!(
            err.message.contains("jwt_secret") && err.message.contains("env"),
            "{err}"
        );
    }

    #[test]
    fn secrets_in_the_wrong_shape_are_not_echoed() {
        let endpoint = |auth: &str| {
            format!(
                "[[endpoints]]\nname = \"in\"\ntype = \"sftp\"\nhost = \"127.0.0.1\"\n\
                 user = \"u\"\nhost_key = {{ check = \"insecure_skip\" }}\nauth = {auth}\n"
            )
        };
        for text in [
            endpoint("\"canary-toml-5Rk\""),
            endpoint("{ method = \"password\", password = 72439871234 }"),
            endpoint("{ method = \"password\", password = [\"canary-toml-5Rk\"] }"),
            endpoint("{ method = \"password\", password = \"canary-toml-5Rk\", x = 1 }"),
            endpoint("\"canary-toml-5Rk"),
            "[[endpoints]]\nname = \"s3\"\ntype = \"s3\"\nbucket = \"b\"\n\
             access_key_id = \"AK\"\nsecret_access_key = 72439871234\n"
                .to_string(),
        ] {
            let err = ServerConfig::from_toml(&text).unwrap_err();
            assert!(
                !err.message.contains("canary-toml-5Rk") && !err.message.contains("72439871234"),
                "{err}"
            );
            assert!(err.message.starts_with("line "), "{err}");
        }
    }

    #[test]
    fn notifications_are_declared_with_secrets_by_reference_and_refused_by_field() {
        // SAFETY: the variable is this test's own; no other test reads or writes it.
        unsafe {
            std::env::set_var(
                "FO_CONFIG_TEST_SLACK_URL",
                "https://hooks.slack.com/services/T/B/x",
            )
        };
        let text = "[notifier]\nallow = [\"hooks.slack.com\"]\n\n[[notifications]]\nname = \"ops\"\n\
                    events = [\"job_dead\", \"source_failing\"]\nrate_limit = { messages = 3, per_secs = 60 }\n\
                    channel = { type = \"slack\", webhook_url = { env = \"FO_CONFIG_TEST_SLACK_URL\" } }\n";
        let config = ServerConfig::from_toml(text).unwrap();
        let notification = &config.notifications[0].0;
        assert_eq!(notification.rule.rate_limit.messages, 3);
        assert_eq!(
            notification.channel.url(),
            Some("https://hooks.slack.com/services/T/B/x")
        );
        for (text, field) in [
            (
                "[[notifications]]\nname = \"x\"\nevents = [\"job_exploded\"]\n\
                 channel = { type = \"teams\", webhook_url = \"https://x.example/y\" }\n",
                "events[0]",
            ),
            (
                "[[notifications]]\nname = \"x\"\nevents = [\"job_dead\"]\n\
                 channel = { type = \"email\", host = \"smtp.example\", from = \"a@b.c\", to = [\"nope\"] }\n",
                "channel.to[0]",
            ),
            ("[notifier]\nallow = [\"*\"]\n", "notifier.allow[0]"),
            ("[notifier]\ncheck_ms = 1\n", "notifier.check_ms"),
        ] {
            let err = ServerConfig::from_toml(text)
                .and_then(|config| config.validate().map(|_| config))
                .unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn tls_takes_both_paths_or_neither() {
        let both = "[tls]\ncert_path = \"/c.pem\"\nkey_path = \"/k.pem\"\n";
        let tls = ServerConfig::from_toml(both).unwrap().tls;
        assert_eq!(tls.key_path, Some("/k.pem".into()));
        assert!(tls.enabled() && tls.scheme() == "https");
        assert!(!ServerConfig::from_toml("").unwrap().tls.enabled());
        for (text, field) in [
            ("[tls]\ncert_path = \"/c.pem\"\n", "tls.key_path"),
            ("[tls]\nkey_path = \"/k.pem\"\n", "tls.cert_path"),
            (&both.replace("/c.pem", ""), "tls.cert_path"),
        ] {
            let err = ServerConfig::from_toml(text).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{text}: {err}");
        }
        let err = ServerConfig::from_toml("[tls]\ncert = \"/c.pem\"\n").unwrap_err();
        assert!(err.message.contains("line 2, column 1 (cert)"), "{err}");
    }

    #[test]
    fn bootstrap_key_is_stored_hashed() {
        let mut config = ServerConfig::default();
        let key = config.ensure_admin_key().unwrap();
        assert!(key.expose().starts_with("fo_"));
        assert_eq!(config.api_keys[0].sha256, hash_api_key(key.expose()));
        assert!(config.ensure_admin_key().is_none());
        let text = toml::to_string(&config.api_keys[0]).unwrap();
        assert!(!text.contains(key.expose()));
    }

    #[test]
    fn the_readme_recipe_is_a_valid_configuration() {
        let readme = include_str!("../../../README.md");
        let recipe = readme
            .split("**Recipe:")
            .nth(1)
            .and_then(|rest| rest.split("```toml\n").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("the README's recipe");
        // Its secrets by reference, here given in place.
        let text = recipe
            .replace("{ env = \"UPLOADS_SECRET\" }", "\"s3-secret\"")
            .replace("{ env = \"PARTNER_PASSWORD\" }", "\"sftp-password\"");
        let config = ServerConfig::from_toml(&text).unwrap();
        assert_eq!(config.sources.len(), 1);
        assert_eq!(config.sources[0].0.spec.kind(), "sqs");
        assert_eq!(config.templates[0].matcher.source, "uploads");
    }
}
