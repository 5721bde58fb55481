//! Event sources in the store: a row per named source with its spec (public, secrets as
//! `***`, and sealed), `enabled`, its placement, a revision bumped by every edit, and the
//! lease of the node running it with the status that node reports. Created, edited,
//! paused, resumed and deleted with their audit records; leased with compare-and-set
//! updates that read the same on SQLite and PostgreSQL. Sealing is the keyring's job
//! (`Orbit`); what a source is and how it runs is `events::source`'s and `events::runner`'s.

use super::audit;
use super::store::{Store, db_error, now_ms};
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// Who a node is to sources: its name and labels (from the server's or worker's `[node]`).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeIdentity {
    /// Default: the host name.
    #[serde(default = "host_name")]
    pub name: String,
    /// e.g. `{ site = "paris", disk = "nas1" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Default for NodeIdentity {
    fn default() -> Self {
        NodeIdentity {
            name: host_name(),
            labels: BTreeMap::new(),
        }
    }
}

impl NodeIdentity {
    /// Checks the name and labels; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: String, why: &str| Err(Error::invalid_field("node", field, why));
        if !is_label_text(&self.name) {
            return invalid("name".into(), LABEL_TEXT);
        }
        if self.labels.len() > MAX_LABELS {
            return invalid("labels".into(), TOO_MANY_LABELS);
        }
        for (key, value) in &self.labels {
            if !is_label_text(key) || !is_label_text(value) {
                return invalid(format!("labels.{key}"), LABEL_TEXT);
            }
        }
        Ok(())
    }
}

/// The most labels a node or a placement has.
const MAX_LABELS: usize = 32;
const TOO_MANY_LABELS: &str = "at most 32 labels";
const LABEL_TEXT: &str = "must be 1 to 253 characters of letters, digits and ._-:/";

fn is_label_text(text: &str) -> bool {
    (1..=253).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
}

/// This host's name (`/proc/sys/kernel/hostname`), `localhost` when unreadable.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| is_label_text(name))
        .unwrap_or_else(|| "localhost".into())
}

/// Where a source may run: on the node of that name, and/or on nodes carrying all these
/// labels. Empty: on any node running the engine.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Placement {
    /// Whether `node` may run a source placed here.
    pub fn admits(&self, node: &NodeIdentity) -> bool {
        self.node.as_ref().is_none_or(|name| *name == node.name)
            && self
                .labels
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
    }

    /// Checks the node name and labels; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: String| Err(Error::invalid_field("placement", field, LABEL_TEXT));
        if self.labels.len() > MAX_LABELS {
            return Err(Error::invalid_field("placement", "labels", TOO_MANY_LABELS));
        }
        if self.node.as_ref().is_some_and(|name| !is_label_text(name)) {
            return invalid("node".into());
        }
        for (key, value) in &self.labels {
            if !is_label_text(key) || !is_label_text(value) {
                return invalid(format!("labels.{key}"));
            }
        }
        Ok(())
    }
}

/// What a source has done, summed over every node that ran it.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceCounters {
    /// Notifications or files seen (SQS messages, redeliveries included; hand-overs of
    /// a watch; stable files of a poll).
    pub received: u64,
    /// Events stored as new.
    pub ingested: u64,
    /// Events the store already had (redeliveries, rescans, other nodes).
    pub duplicates: u64,
    /// Unusable messages stored as dead events.
    pub dead: u64,
    /// Failures: receives, hand-overs or polls that failed (retried).
    pub errors: u64,
}

impl std::ops::Add for SourceCounters {
    type Output = SourceCounters;

    fn add(self, other: SourceCounters) -> SourceCounters {
        SourceCounters {
            received: self.received + other.received,
            ingested: self.ingested + other.ingested,
            duplicates: self.duplicates + other.duplicates,
            dead: self.dead + other.dead,
            errors: self.errors + other.errors,
        }
    }
}

/// What a source is doing.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Enabled, waiting for a node to take it or being started.
    Starting,
    Running,
    /// Enabled but not working: it could not start, or its last checks failed (see
    /// `last_error`); retried.
    Failing,
    /// Disabled: runs nowhere.
    Paused,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Running => "running",
            SourceState::Failing => "failing",
            SourceState::Paused => "paused",
        }
    }

    fn parse(text: &str) -> SourceState {
        match text {
            "running" => SourceState::Running,
            "failing" => SourceState::Failing,
            "paused" => SourceState::Paused,
            _ => SourceState::Starting,
        }
    }
}

/// A source as listed: its definition (secrets as `***`) and its status.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    /// `sqs`, `local_watch` or `remote_poll`.
    pub kind: String,
    /// The kind's fields, secrets as `***`.
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub spec: Value,
    pub enabled: bool,
    pub placement: Placement,
    /// Bumped by every edit; the node running the source restarts it on a change.
    pub revision: i64,
    pub state: SourceState,
    /// The node running it (its name), while its lease lasts.
    pub owner_node: Option<String>,
    /// The process holding the lease (`node/pid/n`).
    pub owner: Option<String>,
    /// Unix milliseconds.
    pub lease_until: Option<i64>,
    pub counters: SourceCounters,
    /// When the source last saw something (unix milliseconds).
    pub last_event_at: Option<i64>,
    /// The last failure (never a secret).
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A source as it is stored: what `Store::put_source` writes.
pub(crate) struct StoredSource<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    /// The spec with its secrets as `***`.
    pub public: &'a Value,
    /// The whole spec, sealed under `key_id`.
    pub sealed: &'a str,
    pub key_id: &'a str,
    pub enabled: bool,
    pub placement: &'a Placement,
}

/// What the node running a source reports at each renewal.
pub(crate) struct SourceReport<'a> {
    pub state: SourceState,
    pub counters: SourceCounters,
    pub last_event_at: Option<i64>,
    pub last_error: Option<&'a str>,
}

const SOURCE_COLUMNS: &str = "name, kind, public_spec, enabled, placement, revision, owner, \
     owner_node, lease_until, state, counters, last_event_at, last_error, created_at, updated_at";

fn source_from_row(row: &AnyRow, now: i64) -> Result<SourceStatus> {
    let read = || -> Result<SourceStatus, sqlx::Error> {
        let json = |name: &str| -> Result<Value, sqlx::Error> {
            Ok(serde_json::from_str(&row.try_get::<String, _>(name)?).unwrap_or(Value::Null))
        };
        let enabled = row.try_get::<i64, _>("enabled")? != 0;
        let lease_until: Option<i64> = row.try_get("lease_until")?;
        let leased = lease_until.is_some_and(|until| until >= now);
        let stored = SourceState::parse(&row.try_get::<String, _>("state")?);
        let state = match (enabled, leased) {
            (false, _) => SourceState::Paused,
            (true, true) => stored,
            (true, false) => SourceState::Starting,
        };
        let (owner, owner_node) = if leased {
            (row.try_get("owner")?, row.try_get("owner_node")?)
        } else {
            (None, None)
        };
        Ok(SourceStatus {
            name: row.try_get("name")?,
            kind: row.try_get("kind")?,
            spec: json("public_spec")?,
            enabled,
            placement: serde_json::from_value(json("placement")?).unwrap_or_default(),
            revision: row.try_get("revision")?,
            state,
            owner,
            owner_node,
            lease_until: lease_until.filter(|_| leased),
            counters: serde_json::from_value(json("counters")?).unwrap_or_default(),
            last_event_at: row.try_get("last_event_at")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    };
    read().map_err(db_error("reading a source"))
}

fn no_source(context: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        context,
        format!("no source named {name:?}"),
    )
}

impl Store {
    /// Creates or replaces a source's definition (bumping its revision, keeping its
    /// lease, counters and status) and audits `source.created` / `.edited`.
    pub(crate) async fn put_source(&self, source: &StoredSource<'_>, actor: &str) -> Result<()> {
        let context = "storing a source";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let placement = serde_json::to_string(source.placement).unwrap_or_default();
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sources WHERE name <> $1")
            .bind(source.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(context))?;
        let most = i64::from(self.limits.max_sources);
        if others >= most {
            return Err(Error::invalid_field(
                context,
                "name",
                format!(
                    "there are {others} sources already, the most allowed (limits.max_sources = {most})"
                ),
            ));
        }
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO sources (name, kind, public_spec, sealed_spec, key_id, enabled, \
                 placement, revision, state, counters, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'starting', '{}', $8, $8) \
             ON CONFLICT (name) DO UPDATE SET kind = $2, public_spec = $3, sealed_spec = $4, \
                 key_id = $5, enabled = $6, placement = $7, revision = sources.revision + 1, \
                 updated_at = $8 \
             RETURNING revision",
        )
        .bind(source.name)
        .bind(source.kind)
        .bind(source.public.to_string())
        .bind(source.sealed)
        .bind(source.key_id)
        .bind(i64::from(source.enabled))
        .bind(placement)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error(context))?;
        let action = if revision > 1 {
            "source.edited"
        } else {
            "source.created"
        };
        let detail = json!({"kind": source.kind, "enabled": source.enabled,
                            "placement": source.placement, "revision": revision});
        let subject = format!("source/{}", source.name);
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &subject,
            "ok",
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// Pauses (`enabled = false`) or resumes a source, audited as `source.paused` /
    /// `source.resumed`. The node running a paused source stops it at its next check.
    pub(crate) async fn set_source_enabled(
        &self,
        name: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<()> {
        let (context, action) = if enabled {
            ("resuming a source", "source.resumed")
        } else {
            ("pausing a source", "source.paused")
        };
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let changed =
            sqlx::query("UPDATE sources SET enabled = $1, updated_at = $2 WHERE name = $3")
                .bind(i64::from(enabled))
                .bind(now_ms())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_error(context))?
                .rows_affected();
        if changed == 0 {
            return Err(no_source(context, name));
        }
        let subject = format!("source/{name}");
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &subject,
            "ok",
            &json!({}),
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// Deletes a source (audited); the node running it stops it at its next check.
    pub(crate) async fn delete_source(&self, name: &str, actor: &str) -> Result<()> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("deleting a source"))?;
        let delete = "DELETE FROM sources WHERE name = $1";
        self.delete_named(tx, delete, "source", name, actor).await
    }

    /// Every source with its status, by name.
    pub async fn sources(&self) -> Result<Vec<SourceStatus>> {
        let rows = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM sources ORDER BY name"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("listing sources"))?;
        let now = now_ms();
        rows.iter().map(|row| source_from_row(row, now)).collect()
    }

    /// One source with its status.
    pub async fn source(&self, name: &str) -> Result<SourceStatus> {
        let context = "reading a source";
        let row = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error(context))?
        .ok_or_else(|| no_source(context, name))?;
        source_from_row(&row, now_ms())
    }

    /// The sealed spec of source `name`, the id of the key that sealed it, and its
    /// revision.
    pub(crate) async fn sealed_source(&self, name: &str) -> Result<(String, String, i64)> {
        let context = "reading a source";
        let row = sqlx::query("SELECT sealed_spec, key_id, revision FROM sources WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_error(context))?
            .ok_or_else(|| no_source(context, name))?;
        let read = || -> Result<_, sqlx::Error> {
            Ok((
                row.try_get("sealed_spec")?,
                row.try_get("key_id")?,
                row.try_get("revision")?,
            ))
        };
        read().map_err(db_error(context))
    }

    /// The sources whose spec was sealed by a key other than `current`.
    pub(crate) async fn sources_sealed_by_other_keys(&self, current: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM sources WHERE key_id <> $1 ORDER BY name")
            .bind(current)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("listing sources to re-seal"))
    }

    /// Leases enabled source `name` to `owner` (running on node `node`) until
    /// `lease_until`, if nobody holds it or its lease ran out by `now`; true for the one
    /// caller that did.
    pub(crate) async fn claim_source(
        &self,
        name: &str,
        owner: &str,
        node: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE sources SET owner = $1, owner_node = $2, lease_until = $3, \
                 state = 'starting', last_error = NULL \
             WHERE name = $4 AND enabled = 1 \
                 AND (owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < $5)",
        )
        .bind(owner)
        .bind(node)
        .bind(lease_until)
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error("leasing a source"))?
        .rows_affected();
        Ok(claimed == 1)
    }

    /// Renews `owner`'s lease of source `name` and records its status; false when the
    /// lease is no longer `owner`'s (taken over, or the source deleted).
    pub(crate) async fn report_source(
        &self,
        name: &str,
        owner: &str,
        lease_until: i64,
        report: &SourceReport<'_>,
    ) -> Result<bool> {
        let context = "renewing a source's lease";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT state FROM sources WHERE name = $1 AND owner = $2")
                .bind(name)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error(context))?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE sources SET lease_until = $1, state = $2, counters = $3, \
                 last_event_at = $4, last_error = $5 WHERE name = $6 AND owner = $7",
        )
        .bind(lease_until)
        .bind(report.state.as_str())
        .bind(serde_json::to_string(&report.counters).unwrap_or_default())
        .bind(report.last_event_at)
        .bind(report.last_error)
        .bind(name)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db_error(context))?;
        if report.state == SourceState::Failing
            && SourceState::parse(&before) != SourceState::Failing
        {
            // The change to failing is announced (notifications read the audit log).
            audit::append(
                &mut tx,
                self.backend,
                owner,
                "source.failing",
                &format!("source/{name}"),
                "failed",
                &json!({"error": report.last_error}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(true)
    }

    /// Gives up `owner`'s lease of source `name` (stopped, paused, or the node shutting
    /// down), so another node may take it at once.
    pub(crate) async fn release_source(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE sources SET owner = NULL, owner_node = NULL, lease_until = NULL \
             WHERE name = $1 AND owner = $2",
        )
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_error("releasing a source"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_admit_the_named_node_with_every_label() {
        let node = NodeIdentity {
            name: "b".into(),
            labels: BTreeMap::from([
                ("site".into(), "paris".into()),
                ("disk".into(), "nas".into()),
            ]),
        };
        assert!(Placement::default().admits(&node));
        let named = |name: &str| Placement {
            node: Some(name.into()),
            ..Placement::default()
        };
        assert!(named("b").admits(&node));
        assert!(!named("c").admits(&node));
        let labelled = |key: &str, value: &str| Placement {
            node: None,
            labels: BTreeMap::from([(key.into(), value.into())]),
        };
        assert!(labelled("site", "paris").admits(&node));
        assert!(!labelled("site", "lyon").admits(&node));
        assert!(!labelled("zone", "paris").admits(&node));
        assert_eq!(
            named("a b").validate().unwrap_err().field.as_deref(),
            Some("node")
        );
        assert_eq!(
            labelled("site", "")
                .validate()
                .unwrap_err()
                .field
                .as_deref(),
            Some("labels.site")
        );
    }
}
