//! What both services' TOML declares beside their own settings: secrets given by
//! reference (`{ env = "NAME" }`, `{ file = "/path" }`), the node's identity (`[node]`),
//! sources declared as code (`[[sources]]`) and how the source runner leases them
//! (`[source_runner]`).

use crate::engine::Orbit;
use crate::error::Result;
use crate::events::runner::SourceRunnerOptions;
use crate::events::source::Source;
use crate::secret::with_secrets_revealed;
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

    fn try_from(mut table: toml::Table) -> std::result::Result<Self, String> {
        let name = resolve_declared(&mut table, "source")?;
        let json = serde_json::to_value(&table).map_err(|err| format!("source {name:?}: {err}"))?;
        Source::parse(None, json)
            .map(DeclaredSource)
            .map_err(|err| format!("source {name:?}: {}", err.detail()))
    }
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
    let revealed = |source: &Source| with_secrets_revealed(|| serde_json::to_value(source).ok());
    for DeclaredSource(source) in declared {
        let unchanged = match orbit.source(&source.name).await {
            Ok((stored, _)) => revealed(&stored) == revealed(source),
            Err(_) => false,
        };
        if !unchanged {
            orbit.put_source(source).await?;
        }
    }
    Ok(())
}

/// The secret fields of endpoint configurations.
pub(crate) const SECRET_FIELDS: [&str; 5] = [
    "password",
    "secret_access_key",
    "session_token",
    "passphrase",
    "pem",
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
