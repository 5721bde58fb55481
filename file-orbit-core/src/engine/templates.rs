//! Transfer templates (the seed's "event rules"): a matcher on file events (source
//! endpoint, path glob, size, age) and what to do with a match — a transfer spec with path
//! templates, a priority, a retry policy and next hops. Stored with audit.

use super::audit;
use super::queue::{JobRequest, RetryPolicy};
use super::store::{Cell, Store, db_error, now_ms, put_named};
use crate::error::{Error, ErrorKind, Result};
use crate::transfer::{Scope, TransferSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeMap;

/// A file that appeared (or was found) on an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvent {
    pub endpoint: String,
    /// Path relative to the endpoint's root.
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub modified: Option<DateTime<Utc>>,
    /// The file's media type (`text/csv`), without parameters, when known. Read from the
    /// endpoint when a template matches on it and the source did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The file's metadata as the endpoint reports it, keys lower case: S3 user metadata
    /// (`x-amz-meta-dept` is `dept`) and system keys (`tier`, `cache-control`, ...).
    /// Read from the endpoint when a template matches on it and the source did not say.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Which file events a template takes.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The endpoint the file must be on.
    pub source: String,
    /// Glob on the path relative to the endpoint (`incoming/**/*.csv`); `*` stays within
    /// a directory, `**` crosses them.
    pub path_glob: String,
    #[serde(default)]
    pub min_size: Option<u64>,
    #[serde(default)]
    pub max_size: Option<u64>,
    /// The file must be at least this old (seconds since modification).
    #[serde(default)]
    pub min_age_seconds: Option<u64>,
    /// Glob on the file's media type without parameters (`text/*`, `application/pdf`;
    /// case-insensitive); a file whose type is unknown does not match.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Metadata the file must carry: each key (case-insensitive) present with a value
    /// matching the glob (`{ dept = "finance", tier = "STANDARD*" }`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A stored schedule as listed: the template it fires, its cron, the next tick due and the
/// last tick fired (UTC).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleState {
    pub template: String,
    pub cron: String,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
}

/// A named rule: matching file events become jobs.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTemplate {
    pub name: String,
    pub matcher: Matcher,
    /// The transfer; its `source_path` is replaced by each event's path and its scope is
    /// `file`.
    pub spec: TransferSpec,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub next_hops: Vec<TransferSpec>,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Also run the transfer as it is on a cron schedule.
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

/// A cron schedule (`sec min hour day month weekday`, seconds optional; UTC).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub cron: String,
    /// What happens to ticks missed while no engine was running.
    #[serde(default)]
    pub missed: MissedTicks,
}

/// The policy for ticks missed while down.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    /// Forget them: the next run is the next tick from now.
    #[default]
    Skip,
    /// Run once for all of them, then continue with the next tick.
    RunOnce,
}

impl Schedule {
    pub(crate) fn parsed(&self) -> Result<croner::Cron> {
        croner::Cron::new(&self.cron)
            .with_seconds_optional()
            .parse()
            .map_err(|err| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "schedule",
                    format!("cron {:?}: {err}", self.cron),
                )
            })
    }

    /// The first tick strictly after `after` (unix ms).
    pub(crate) fn next_after(&self, after: i64) -> Result<i64> {
        let after = DateTime::from_timestamp_millis(after).unwrap_or_else(Utc::now);
        self.parsed()?
            .find_next_occurrence(&after, false)
            .map(|tick| tick.timestamp_millis())
            .map_err(|err| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "schedule",
                    format!("cron {:?}: {err}", self.cron),
                )
            })
    }
}

fn enabled() -> bool {
    true
}

/// A matcher's content type (key None) and metadata conditions, as compiled globs.
type Conditions<'a> = Vec<(Option<&'a str>, globset::GlobMatcher)>;

impl Matcher {
    /// Files of endpoint `source` whose path matches `path_glob`, of any size and age.
    pub fn new(source: &str, path_glob: &str) -> Self {
        Self {
            source: source.into(),
            path_glob: path_glob.into(),
            min_size: None,
            max_size: None,
            min_age_seconds: None,
            content_type: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Whether matching needs the file's content type or metadata from its endpoint.
    pub fn needs_details(&self) -> bool {
        self.content_type.is_some() || !self.metadata.is_empty()
    }

    /// The content type and metadata conditions (globs compiled); errors name the field.
    fn details(&self) -> std::result::Result<Conditions<'_>, (String, String)> {
        let glob = |field: String, pattern: &str| {
            globset::GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map(|glob| glob.compile_matcher())
                .map_err(|err| (field, err.to_string()))
        };
        let mut conditions = Vec::new();
        if let Some(pattern) = &self.content_type {
            conditions.push((None, glob("matcher.content_type".into(), pattern)?));
        }
        for (key, pattern) in &self.metadata {
            if key.trim().is_empty() {
                return Err((
                    format!("matcher.metadata.{key}"),
                    "a key must not be empty".into(),
                ));
            }
            conditions.push((
                Some(key.as_str()),
                glob(format!("matcher.metadata.{key}"), pattern)?,
            ));
        }
        Ok(conditions)
    }
}

impl TransferTemplate {
    /// Template `name`: a file event matching `matcher` becomes a job running `spec`, at
    /// priority 0 with the default retries, no next hops and no schedule; enabled.
    pub fn new(name: &str, matcher: Matcher, spec: TransferSpec) -> Self {
        Self {
            name: name.into(),
            matcher,
            spec,
            priority: 0,
            retry: RetryPolicy::default(),
            next_hops: Vec::new(),
            enabled: true,
            schedule: None,
        }
    }

    fn glob(&self) -> Result<globset::GlobMatcher> {
        globset::GlobBuilder::new(&self.matcher.path_glob)
            .literal_separator(true)
            .build()
            .map(|glob| glob.compile_matcher())
            .map_err(|err| {
                Error::invalid_field(
                    format!("template {:?}", self.name),
                    "matcher.path_glob",
                    err.to_string(),
                )
            })
    }

    /// Checks the template; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let context = format!("template {:?}", self.name);
        let err = |field: &str, why: String| Err(Error::invalid_field(&context, field, why));
        // An error of a part (a spec, a hop), its field under the part's.
        let nested = |at: &str, inner: Error| {
            Err(Error {
                context: context.clone(),
                ..inner.within(at)
            })
        };
        if self.name.trim().is_empty() {
            return err("name", "must not be empty".into());
        }
        self.glob()?;
        if let Err((field, why)) = self.matcher.details() {
            return err(&field, why);
        }
        if self.spec.source != self.matcher.source {
            return err(
                "spec.source",
                format!(
                    "{:?} differs from matcher.source {:?}",
                    self.spec.source, self.matcher.source
                ),
            );
        }
        if let (Some(min), Some(max)) = (self.matcher.min_size, self.matcher.max_size) {
            if min > max {
                return err("matcher.min_size", format!("{min} is above max_size {max}"));
            }
        }
        self.request_for(&FileEvent {
            endpoint: self.matcher.source.clone(),
            path: "example.txt".into(),
            ..FileEvent::default()
        })
        .spec
        .validate()
        .or_else(|e| nested("spec", e))?;
        if let Some(schedule) = &self.schedule {
            if let Err(e) = schedule.parsed() {
                return err("schedule.cron", e.message);
            }
            self.spec.validate().or_else(|e| nested("spec", e))?;
        }
        for (index, hop) in self.next_hops.iter().enumerate() {
            hop.validate()
                .or_else(|e| nested(&format!("next_hops[{index}]"), e))?;
        }
        Ok(())
    }

    /// Whether the template takes `event` at time `now`.
    pub fn matches(&self, event: &FileEvent, now: DateTime<Utc>) -> Result<bool> {
        if !self.enabled || event.endpoint != self.matcher.source {
            return Ok(false);
        }
        if !self.glob()?.is_match(event.path.trim_start_matches('/')) {
            return Ok(false);
        }
        let size_ok = match event.size {
            Some(size) => {
                self.matcher.min_size.is_none_or(|min| size >= min)
                    && self.matcher.max_size.is_none_or(|max| size <= max)
            }
            None => self.matcher.min_size.is_none() && self.matcher.max_size.is_none(),
        };
        let age_ok = match (self.matcher.min_age_seconds, event.modified) {
            (None, _) => true,
            (Some(min), Some(modified)) => (now - modified).num_seconds() >= min as i64,
            (Some(_), None) => false,
        };
        Ok(size_ok && age_ok && self.details_match(event)?)
    }

    /// Whether `event`'s content type and metadata meet the matcher's conditions.
    fn details_match(&self, event: &FileEvent) -> Result<bool> {
        let conditions = self.matcher.details().map_err(|(field, why)| {
            Error::invalid_field(format!("template {:?}", self.name), field, why)
        })?;
        Ok(conditions.iter().all(|(key, glob)| {
            let value = match key {
                None => event.content_type.as_deref(),
                Some(key) => event
                    .metadata
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(key))
                    .map(|(_, value)| value.as_str()),
            };
            value.is_some_and(|value| glob.is_match(value))
        }))
    }

    /// The job request for `event`: the spec with the event's file as its source.
    pub fn request_for(&self, event: &FileEvent) -> JobRequest {
        let mut spec = self.spec.clone();
        spec.source_path = event.path.trim_start_matches('/').to_string();
        spec.scope = Scope::File;
        JobRequest {
            spec,
            priority: self.priority,
            idempotency_key: None,
            retry: self.retry,
            next_hops: self.next_hops.clone(),
            template: Some(self.name.clone()),
        }
    }
}

impl Store {
    /// Refuses a template naming an endpoint that does not exist (it would fail each job);
    /// `example` is its request for a file.
    async fn check_endpoints_exist(
        &self,
        template: &TransferTemplate,
        example: &JobRequest,
    ) -> Result<()> {
        let known: Vec<String> = self
            .endpoints(chrono::Local::now())
            .await?
            .into_iter()
            .map(|endpoint| endpoint.name)
            .collect();
        let unknown = if known.contains(&template.matcher.source) {
            example.unknown_endpoint(&known)
        } else {
            Some(("matcher.source".into(), template.matcher.source.clone()))
        };
        match unknown {
            Some((field, name)) => Err(Error::invalid_field(
                format!("template {:?}", template.name),
                field,
                format!("no endpoint named {name:?}"),
            )),
            None => Ok(()),
        }
    }

    /// Creates or replaces a template: its numbers must be within the store's limits and
    /// the endpoints it names must exist.
    pub async fn put_template(&self, template: &TransferTemplate, actor: &str) -> Result<()> {
        template.validate()?;
        let example = template.request_for(&FileEvent {
            endpoint: template.matcher.source.clone(),
            path: "example.txt".into(),
            ..FileEvent::default()
        });
        self.limits.check_request(&example).map_err(|mut err| {
            err.context = format!("template {:?}", template.name);
            err
        })?;
        self.check_endpoints_exist(template, &example).await?;
        let definition = serde_json::to_string(template).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                "storing a template",
                err.to_string(),
            )
        })?;
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("storing a template"))?;
        let existed = put_named(
            &mut tx,
            "templates",
            &template.name,
            &[("definition", Cell::Text(&definition))],
            "storing a template",
        )
        .await?;
        sqlx::query("DELETE FROM schedules WHERE template = $1")
            .bind(&template.name)
            .execute(&mut *tx)
            .await
            .map_err(db_error("storing a template"))?;
        if let Some(schedule) = template.schedule.as_ref().filter(|_| template.enabled) {
            sqlx::query("INSERT INTO schedules (template, cron, next_fire_at) VALUES ($1, $2, $3)")
                .bind(&template.name)
                .bind(&schedule.cron)
                .bind(schedule.next_after(now)?)
                .execute(&mut *tx)
                .await
                .map_err(db_error("storing a template"))?;
        }
        let action = if existed {
            "template.edited"
        } else {
            "template.created"
        };
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &format!("template/{}", template.name),
            "ok",
            &json!({}),
        )
        .await?;
        tx.commit().await.map_err(db_error("storing a template"))
    }

    /// Deletes a template and its schedule.
    pub async fn delete_template(&self, name: &str, actor: &str) -> Result<()> {
        let context = "deleting a template";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        sqlx::query("DELETE FROM schedules WHERE template = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error(context))?;
        self.delete_named(
            tx,
            "DELETE FROM templates WHERE name = $1",
            "template",
            name,
            actor,
        )
        .await
    }

    /// Every template's schedule: its cron, next due tick and last fired tick.
    pub async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        let rows = sqlx::query(
            "SELECT template, cron, next_fire_at, last_fired_at FROM schedules ORDER BY template",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("reading schedules"))?;
        rows.iter()
            .map(|row| {
                let time = |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis);
                Ok(ScheduleState {
                    template: row
                        .try_get("template")
                        .map_err(db_error("reading schedules"))?,
                    cron: row.try_get("cron").map_err(db_error("reading schedules"))?,
                    next_fire_at: time(row.try_get("next_fire_at").ok()),
                    last_fired_at: time(row.try_get("last_fired_at").ok()),
                })
            })
            .collect()
    }

    /// Every stored template, by name.
    pub async fn templates(&self) -> Result<Vec<TransferTemplate>> {
        let rows = sqlx::query("SELECT definition FROM templates ORDER BY name")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("reading templates"))?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get(0).map_err(db_error("reading templates"))?;
                serde_json::from_str(&text).map_err(|err| {
                    Error::new(ErrorKind::Store, "reading templates", err.to_string())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path_template::PathTemplate;

    fn template() -> TransferTemplate {
        let spec = TransferSpec::file("in", "", "out", PathTemplate::parse("{filename}").unwrap());
        TransferTemplate::new("t", Matcher::new("in", "*.csv"), spec)
    }

    #[test]
    fn errors_of_a_spec_or_hop_are_named_under_it() {
        let mut zero = template();
        zero.spec.parallelism = Some(0);
        let err = zero.validate().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.parallelism"));
        assert_eq!(
            err.to_string(),
            "template \"t\": spec.parallelism: must be at least 1"
        );
        let mut hop = template();
        let mut next = hop.spec.clone();
        next.scope = Scope::Tree;
        next.filters.exclude = vec!["{a,b".into()];
        hop.next_hops = vec![next];
        let err = hop.validate().unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("next_hops[0].filters.exclude[0]")
        );
        assert_eq!(err.context, "template \"t\"");
    }

    #[test]
    fn content_type_and_metadata_conditions_all_hold() {
        let mut t = template();
        t.matcher.content_type = Some("TEXT/*".into());
        t.matcher.metadata = [("Dept".to_string(), "fin*".to_string())].into();
        assert!(t.matcher.needs_details());
        let file = |content_type: Option<&str>, dept: Option<&str>| FileEvent {
            endpoint: "in".into(),
            path: "a.csv".into(),
            content_type: content_type.map(str::to_string),
            metadata: dept
                .map(|d| [("dept".to_string(), d.to_string())].into())
                .unwrap_or_default(),
            ..FileEvent::default()
        };
        let now = Utc::now();
        assert!(
            t.matches(&file(Some("text/csv"), Some("finance")), now)
                .unwrap()
        );
        assert!(
            !t.matches(&file(Some("application/pdf"), Some("finance")), now)
                .unwrap()
        );
        assert!(!t.matches(&file(Some("text/csv"), Some("hr")), now).unwrap());
        assert!(!t.matches(&file(None, Some("finance")), now).unwrap());
        assert!(!t.matches(&file(Some("text/csv"), None), now).unwrap());
        t.matcher.content_type = Some("text/[".into());
        assert_eq!(
            t.validate().unwrap_err().field.as_deref(),
            Some("matcher.content_type")
        );
    }
}
