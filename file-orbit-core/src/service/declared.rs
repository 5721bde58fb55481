//! What both services' TOML declares beside their own settings: secrets given by
//! reference (`{ env = "NAME" }`, `{ file = "/path" }`), the node's identity (`[node]`),
//! sources declared as code (`[[sources]]`) and how the source runner leases them
//! (`[source_runner]`), notifications declared as code (`[[notifications]]`) and how the
//! notifier sends them (`[notifier]`, with the allow-list of hosts channels may reach).

use crate::engine::Orbit;
use crate::error::Result;
use crate::events::runner::SourceRunnerOptions;
use crate::events::source::Source;
use crate::notify::{Notification, NotifierOptions};
use crate::secret::same_with_secrets;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A source of the configuration file: as `PUT /api/v1/sources/{name}` takes it plus its
/// `name` (`kind`, `spec`, `enabled`, `placement`); a secret field of the spec (e.g.
/// `secret_access_key`) may be `{ env = "NAME" }` or `{ file = "/path" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct DeclaredSource(pub Source);

impl TryFrom<toml::Table> for DeclaredSource {
    type Error = String;

    fn try_from(table: toml::Table) -> std::result::Result<Self, String> {
        parse_declared(table, "source", Source::parse).map(DeclaredSource)
    }
}

/// A declared `what` (source, notification) read by `parse` (its one reading, as the API's)
/// after its secret references are resolved; an error names it and never holds a secret.
fn parse_declared<T>(
    mut table: toml::Table,
    what: &str,
    parse: impl FnOnce(Option<&str>, serde_json::Value) -> Result<T>,
) -> std::result::Result<T, String> {
    let name = resolve_declared(&mut table, what)?;
    let json = serde_json::to_value(&table).map_err(|err| format!("{what} {name:?}: {err}"))?;
    parse(None, json).map_err(|err| format!("{what} {name:?}: {}", err.detail()))
}

/// The `name` of a declared `what` (endpoint, source), after replacing the secret
/// references in its table by the secrets (an error names it and never holds a secret).
pub(crate) fn resolve_declared(
    table: &mut toml::Table,
    what: &str,
) -> std::result::Result<String, String> {
    let name = table
        .get("name")
        .and_then(|name| name.as_str())
        .unwrap_or("?")
        .to_string();
    resolve_secret_references(table, "").map_err(|err| format!("{what} {name:?}: {err}"))?;
    Ok(name)
}

/// A notification of the configuration file: as `PUT /api/v1/notifications/{name}`
/// takes it plus its `name`; a secret field of the channel (`password`, `signing_key`,
/// `webhook_url`) may be `{ env = "NAME" }` or `{ file = "/path" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct DeclaredNotification(pub Notification);

impl TryFrom<toml::Table> for DeclaredNotification {
    type Error = String;

    fn try_from(table: toml::Table) -> std::result::Result<Self, String> {
        parse_declared(table, "notification", Notification::parse).map(DeclaredNotification)
    }
}

/// Stores the declared notifications that are new or differ from the stored ones.
pub async fn apply_declared_notifications(
    orbit: &Orbit,
    declared: &[DeclaredNotification],
) -> Result<()> {
    for DeclaredNotification(notification) in declared {
        let unchanged = match orbit.notification(&notification.name).await {
            Ok(stored) => same_with_secrets(&stored, notification),
            Err(_) => false,
        };
        if !unchanged {
            orbit.put_notification(notification).await?;
        }
    }
    Ok(())
}

/// `[notifier]`: whether this process sends notifications, the hosts their channels may
/// reach, and how it tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Send notifications from this process (default true; any node may, each message
    /// is sent by one).
    pub enabled: bool,
    /// The hosts, addresses and networks channels may reach: `hooks.slack.com`,
    /// `*.webhook.office.com`, `smtp.example.com`, `10.1.2.3`, `10.0.0.0/8`. Private,
    /// loopback and link-local addresses (also those a name resolves to) only when listed.
    pub allow: Vec<String>,
    /// Where job links in messages point (`<link_base>/api/v1/jobs/<id>`); the server's
    /// default is its own address.
    pub link_base: Option<String>,
    /// How often the audit log and the outbox are read (50..=10000).
    pub check_ms: u64,
    /// The wait after a first failed try, doubled after each (100..=3600000).
    pub first_retry_ms: u64,
    /// The longest wait between tries (first_retry..=86400 s).
    pub max_retry_secs: u64,
    /// How long one send may take (1..=120).
    pub timeout_secs: u64,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        let options = NotifierOptions::default();
        NotifierConfig {
            enabled: true,
            allow: Vec::new(),
            link_base: None,
            check_ms: options.check_every.as_millis() as u64,
            first_retry_ms: options.first_retry.as_millis() as u64,
            max_retry_secs: options.max_retry.as_secs(),
            timeout_secs: options.timeout.as_secs(),
        }
    }
}

impl NotifierConfig {
    /// The notifier's options; `default_link_base` when `link_base` is unset.
    pub fn options(&self, default_link_base: &str) -> NotifierOptions {
        NotifierOptions {
            link_base: self
                .link_base
                .clone()
                .unwrap_or_else(|| default_link_base.to_string()),
            check_every: Duration::from_millis(self.check_ms),
            first_retry: Duration::from_millis(self.first_retry_ms),
            max_retry: Duration::from_secs(self.max_retry_secs),
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }

    /// Checks the bounds and the allow-list; the error names `notifier.<field>`.
    pub fn validate(&self) -> Result<()> {
        crate::notify::guard::AllowList::parse(&self.allow)
            .map_err(|err| err.within("notifier"))?;
        self.options("http://127.0.0.1").validate().map_err(|err| {
            let field = match err.field.as_deref() {
                Some("check_every") => "check_ms",
                Some("first_retry") => "first_retry_ms",
                Some("max_retry") => "max_retry_secs",
                Some("timeout") => "timeout_secs",
                _ => "link_base",
            };
            err.with_field(field).within("notifier")
        })
    }
}

/// `[source_runner]`: whether this process runs stored sources, and how it leases them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceRunnerConfig {
    /// Run the sources this node's placement admits (default true).
    pub enabled: bool,
    /// A dead node's sources move to another node after at most this (2..=3600).
    pub lease_secs: u64,
    /// How often the sources are read: pause and delete take effect within it (50..=10000).
    pub check_ms: u64,
}

impl Default for SourceRunnerConfig {
    fn default() -> Self {
        let options = SourceRunnerOptions::default();
        SourceRunnerConfig {
            enabled: true,
            lease_secs: options.lease.as_secs(),
            check_ms: options.check_every.as_millis() as u64,
        }
    }
}

impl SourceRunnerConfig {
    pub fn options(&self) -> SourceRunnerOptions {
        SourceRunnerOptions {
            lease: Duration::from_secs(self.lease_secs),
            check_every: Duration::from_millis(self.check_ms),
        }
    }

    /// Checks the bounds; the error names `source_runner.<field>`.
    pub fn validate(&self) -> Result<()> {
        self.options().validate().map_err(|err| {
            let field = match err.field.as_deref() {
                Some("lease") => "lease_secs",
                _ => "check_ms",
            };
            err.with_field(field).within("source_runner")
        })
    }
}

/// Stores the declared sources that are new or differ from the stored ones (so a restart
/// with the same file changes nothing, not even the audit log). A declaration wins: a
/// source paused through the API is enabled again at start if the file says so.
pub async fn apply_declared_sources(orbit: &Orbit, declared: &[DeclaredSource]) -> Result<()> {
    for DeclaredSource(source) in declared {
        let unchanged = match orbit.source(&source.name).await {
            Ok((stored, _)) => same_with_secrets(&stored, source),
            Err(_) => false,
        };
        if !unchanged {
            orbit.put_source(source).await?;
        }
    }
    Ok(())
}

/// The secret fields of endpoint configurations and notification channels.
pub(crate) const SECRET_FIELDS: [&str; 7] = [
    "password",
    "secret_access_key",
    "session_token",
    "passphrase",
    "pem",
    "signing_key",
    "webhook_url",
];

/// Replaces each secret field of `table` (and its sub-tables) written as a reference,
/// `{ env = "NAME" }` or `{ file = "/path" }`, by the value it names, so the file itself
/// need not hold the secret. `path` names the table in errors.
pub(crate) fn resolve_secret_references(
    table: &mut toml::Table,
    path: &str,
) -> std::result::Result<(), String> {
    for (key, value) in table.iter_mut() {
        let field = format!("{path}{key}");
        if let toml::Value::Table(inner) = value {
            if SECRET_FIELDS.contains(&key.as_str()) {
                let secret =
                    secret_from_reference(inner).map_err(|err| format!("{field}: {err}"))?;
                *value = toml::Value::String(secret);
            } else {
                resolve_secret_references(inner, &format!("{field}."))?;
            }
        }
    }
    Ok(())
}

/// The secret a `{ env = "NAME" }` or `{ file = "/path" }` reference names (a file's
/// trailing newline dropped). Errors never hold the secret.
pub(crate) fn secret_from_reference(
    reference: &toml::Table,
) -> std::result::Result<String, String> {
    let expected = "write the secret as a string, { env = \"NAME\" } or { file = \"/path\" }";
    let mut entries = reference.iter();
    let (Some((kind, toml::Value::String(target))), None) = (entries.next(), entries.next()) else {
        return Err(expected.into());
    };
    let secret = match kind.as_str() {
        "env" => std::env::var(target)
            .map_err(|_| format!("environment variable {target} is not set (or not UTF-8)"))?,
        "file" => std::fs::read_to_string(target)
            .map_err(|err| format!("reading {target}: {err}"))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        _ => return Err(expected.into()),
    };
    if secret.is_empty() {
        return Err(format!("the {kind} {target} is empty"));
    }
    Ok(secret)
}
