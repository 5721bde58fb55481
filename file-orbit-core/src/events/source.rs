//! Stored event sources: a named [`Source`] (an SQS queue of S3 notifications, a local
//! folder watch or a remote poll), whether it is enabled, and where it may run. One
//! validation serves every way of declaring one (the server's and worker's TOML
//! `[[sources]]`, `PUT /api/v1/sources/{name}`, Python's `orbit.put_source`):
//! [`Source::parse`] reads and checks the fields, [`Orbit::put_source`] checks them against
//! the store (the endpoint exists and is of the right type; a watched folder exists when
//! this node may run the watch) and stores the spec sealed. `events::runner` runs them.

use super::local::LocalWatch;
use super::poll::RemotePoll;
use super::sqs::SqsSource;
use crate::endpoint::EndpointConfig;
use crate::engine::{Orbit, Placement, SourceStatus, StoredSource, check_name, name_of};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::with_secrets_revealed;
use crate::serde_errors::from_json_value;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The kinds of source, as named in `kind`.
pub const SOURCE_KINDS: [&str; 3] = ["sqs", "local_watch", "remote_poll"];

/// What a source watches, by kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "spec", rename_all = "snake_case")]
pub enum SourceSpec {
    /// S3 notifications (direct or SNS-wrapped) from an SQS queue.
    Sqs(SqsSource),
    /// A local endpoint's folder, on the node that sees it.
    LocalWatch(LocalWatch),
    /// A remote endpoint's folder, listed every interval.
    RemotePoll(RemotePoll),
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Sqs(_) => "sqs",
            SourceSpec::LocalWatch(_) => "local_watch",
            SourceSpec::RemotePoll(_) => "remote_poll",
        }
    }

    /// The stored endpoint the source is about.
    pub fn endpoint(&self) -> &str {
        match self {
            SourceSpec::Sqs(sqs) => &sqs.endpoint,
            SourceSpec::LocalWatch(watch) => &watch.endpoint,
            SourceSpec::RemotePoll(poll) => &poll.endpoint,
        }
    }

    /// Reads `kind`'s spec from its `fields` and checks them: the one reading of a spec,
    /// for a whole source (`Source::parse`) and for a spec alone (Python's spec classes).
    /// Errors name the field within the spec (`queue_url`) or `kind`, never a secret.
    pub fn parse(kind: &str, fields: Value) -> Result<SourceSpec> {
        let spec = match kind {
            "sqs" => from_json_value("sqs source", fields).map(SourceSpec::Sqs),
            "local_watch" => from_json_value("local watch", fields).map(SourceSpec::LocalWatch),
            "remote_poll" => from_json_value("remote poll", fields).map(SourceSpec::RemotePoll),
            other => Err(unknown_kind(other)),
        }?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the spec's fields (no store, no disk); errors name the field within it.
    pub fn validate(&self) -> Result<()> {
        match self {
            SourceSpec::Sqs(sqs) => sqs.validate(),
            SourceSpec::LocalWatch(watch) => watch.validate(),
            SourceSpec::RemotePoll(poll) => poll.validate(),
        }
    }

    /// The spec's fields as JSON (secrets as `***` unless revealed).
    fn fields(&self) -> Value {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        value.get("spec").cloned().unwrap_or(Value::Null)
    }
}

/// A stored, named event source. As JSON (or TOML):
/// `{"name": "uploads", "kind": "sqs", "spec": {...}, "enabled": true,
///   "placement": {"node": "host-b", "labels": {"site": "paris"}}}`
/// (`name` optional where the path names it; `enabled` default true; `placement` default:
/// any node).
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub name: String,
    #[serde(flatten)]
    pub spec: SourceSpec,
    pub enabled: bool,
    pub placement: Placement,
}

/// A source as written, before its spec is read by its kind (also the API document's
/// schema of `PUT /api/v1/sources/{name}`'s body).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema), schema(as = SourcePut))]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrittenSource {
    /// Optional where a path or a table names the source; must match it.
    name: Option<String>,
    #[cfg_attr(
        feature = "server",
        schema(pattern = "^(sqs|local_watch|remote_poll)$")
    )]
    kind: String,
    /// The kind's fields; secrets are write-only.
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    spec: Value,
    /// Default true; false stores the source paused.
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    /// Where the source may run (default: any node running the engine).
    #[serde(default)]
    placement: Placement,
}

fn enabled_by_default() -> bool {
    true
}

/// The error for a `kind` that is none of [`SOURCE_KINDS`] (naming field `kind`).
fn unknown_kind(kind: &str) -> Error {
    Error::invalid_field(
        "source",
        "kind",
        format!(
            "unknown kind {:?}; one of {}",
            kind.chars().take(40).collect::<String>(),
            SOURCE_KINDS.join(", ")
        ),
    )
}

impl Source {
    /// Reads and checks a source written as JSON; `name` is the name given beside it (a
    /// path's), which a `name` field inside must match. Errors name the field (`kind`,
    /// `spec.queue_url`, `placement.node`, ...) and never hold a secret.
    pub fn parse(name: Option<&str>, written: Value) -> Result<Source> {
        let context = "source";
        let written: WrittenSource = from_json_value(context, written)?;
        let name = name_of(context, name, written.name)?;
        if !SOURCE_KINDS.contains(&written.kind.as_str()) {
            return Err(unknown_kind(&written.kind));
        }
        let spec = SourceSpec::parse(&written.kind, written.spec).map_err(|err| Error {
            context: context.into(),
            ..err.within("spec")
        })?;
        let source = Source {
            name,
            spec,
            enabled: written.enabled,
            placement: written.placement,
        };
        source.validate()?;
        Ok(source)
    }

    /// Checks the name, the spec's fields and the placement (no store, no disk).
    pub fn validate(&self) -> Result<()> {
        let context = "source";
        check_name(context, &self.name)?;
        let checked = self.spec.validate();
        let within = |at: &'static str| {
            move |err: Error| Error {
                context: context.into(),
                ..err.within(at)
            }
        };
        checked.map_err(within("spec"))?;
        self.placement.validate().map_err(within("placement"))
    }
}

impl Orbit {
    /// Creates or replaces a stored source (checked against the store; its spec sealed);
    /// the node running it restarts it with the new spec.
    pub async fn put_source(&self, source: &Source) -> Result<()> {
        source.validate()?;
        let context = "source";
        let endpoint =
            self.endpoint(source.spec.endpoint())
                .await
                .map_err(|err| match err.kind {
                    ErrorKind::NotFound => Error::invalid_field(
                        context,
                        "spec.endpoint",
                        format!("no endpoint named {:?}", source.spec.endpoint()),
                    ),
                    _ => err,
                })?;
        match (&source.spec, &endpoint.config) {
            (SourceSpec::Sqs(_), EndpointConfig::S3(_)) => {}
            (SourceSpec::Sqs(_), _) => {
                return Err(Error::invalid_field(
                    context,
                    "spec.endpoint",
                    format!("{:?} is not an S3 endpoint", source.spec.endpoint()),
                ));
            }
            (SourceSpec::LocalWatch(watch), EndpointConfig::Local(local)) => {
                if source.placement.admits(&self.options().node) {
                    let folder = local.root.join(watch.sub_path.as_deref().unwrap_or(""));
                    if !folder.is_dir() {
                        return Err(Error::invalid_field(
                            context,
                            if watch.sub_path.is_some() {
                                "spec.sub_path"
                            } else {
                                "spec.endpoint"
                            },
                            format!("{} is not a directory on this node", folder.display()),
                        ));
                    }
                }
            }
            (SourceSpec::LocalWatch(_), _) => {
                return Err(Error::invalid_field(
                    context,
                    "spec.endpoint",
                    format!(
                        "{:?} is not a local endpoint (watch remote ones with a remote_poll)",
                        source.spec.endpoint()
                    ),
                ));
            }
            (SourceSpec::RemotePoll(_), _) => {}
        }
        let sealed_json = with_secrets_revealed(|| serde_json::to_vec(&source.spec.fields()))
            .map_err(|err| Error::new(ErrorKind::InvalidInput, context, err.to_string()))?;
        let (key_id, sealed) = self.keyring().seal(&sealed_json)?;
        let public = source.spec.fields();
        let stored = StoredSource {
            name: &source.name,
            kind: source.spec.kind(),
            public: &public,
            sealed: &sealed,
            key_id: &key_id,
            enabled: source.enabled,
            placement: &source.placement,
        };
        self.store().put_source(&stored, self.actor()).await
    }

    /// The stored source `name` with its spec unsealed, and its revision.
    pub async fn source(&self, name: &str) -> Result<(Source, i64)> {
        let status = self.store().source(name).await?;
        let (sealed, key_id, revision) = self.store().sealed_source(name).await?;
        let plain = self.keyring().open(&key_id, &sealed)?;
        let fields: Value = serde_json::from_slice(&plain)
            .map_err(|err| Error::new(ErrorKind::Store, "reading a source", err.to_string()))?;
        let spec = from_json_value(
            "reading a source",
            json!({"kind": status.kind, "spec": fields}),
        )?;
        let source = Source {
            name: status.name,
            spec,
            enabled: status.enabled,
            placement: status.placement,
        };
        Ok((source, revision))
    }

    /// Every stored source with its status (secrets as `***`).
    pub async fn sources(&self) -> Result<Vec<SourceStatus>> {
        self.store().sources().await
    }

    /// One stored source's status (secrets as `***`).
    pub async fn source_status(&self, name: &str) -> Result<SourceStatus> {
        self.store().source(name).await
    }

    /// Stops source `name` wherever it runs (within a second) until resumed.
    pub async fn pause_source(&self, name: &str) -> Result<()> {
        self.store()
            .set_source_enabled(name, false, self.actor())
            .await
    }

    /// Lets a paused source run again (on a node its placement admits).
    pub async fn resume_source(&self, name: &str) -> Result<()> {
        self.store()
            .set_source_enabled(name, true, self.actor())
            .await
    }

    /// Deletes source `name`; the node running it stops it within a second.
    pub async fn delete_source(&self, name: &str) -> Result<()> {
        self.store().delete_source(name, self.actor()).await
    }

    /// Re-seals the sources sealed by another key than `current`; how many.
    pub(crate) async fn reseal_sources(&self, current: &str) -> Result<usize> {
        let stale = self.store().sources_sealed_by_other_keys(current).await?;
        for name in &stale {
            let (source, _) = self.source(name).await?;
            self.put_source(&source).await?;
        }
        Ok(stale.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(written: Value) -> String {
        Source::parse(Some("s"), written)
            .unwrap_err()
            .field
            .unwrap_or_default()
    }

    #[test]
    fn sources_are_read_by_kind_and_errors_name_the_field() {
        let sqs = json!({"kind": "sqs", "spec": {"queue_url": "http://127.0.0.1:5000/1/q",
            "region": "us-east-1", "endpoint": "s3in", "access_key_id": "AKID",
            "secret_access_key": "canary-secret"}});
        let source = Source::parse(Some("uploads"), sqs.clone()).unwrap();
        assert_eq!(source.spec.kind(), "sqs");
        assert!(source.enabled);
        let shown = serde_json::to_string(&source).unwrap();
        assert!(!shown.contains("canary-secret"), "{shown}");
        assert!(shown.contains(r#""kind":"sqs""#), "{shown}");

        let watch = json!({"kind": "local_watch", "spec": {"endpoint": "in",
            "stable_for_ms": 0}, "placement": {"node": "host-b"}, "enabled": false});
        let source = Source::parse(
            None,
            json!({"name": "w", "kind": "local_watch",
            "spec": watch["spec"], "placement": watch["placement"]}),
        )
        .unwrap();
        let SourceSpec::LocalWatch(spec) = &source.spec else {
            panic!("{source:?}")
        };
        assert!(spec.stable_for.is_zero());
        assert_eq!(spec.rescan_interval.as_secs(), 60);

        assert_eq!(field(json!({"kind": "ftp", "spec": {}})), "kind");
        assert_eq!(field(json!({"kind": "sqs"})), "spec");
        assert_eq!(
            field(json!({"kind": "sqs", "spec": {}, "colour": 1})),
            "colour"
        );
        let mut bad_url = sqs.clone();
        bad_url["spec"]["queue_url"] = json!("not a url");
        assert_eq!(field(bad_url), "spec.queue_url");
        let mut unknown = sqs.clone();
        unknown["spec"]["max_mesages"] = json!(5);
        assert_eq!(field(unknown), "spec.max_mesages");
        let mut half_keys = sqs;
        half_keys["spec"]["secret_access_key"] = json!(null);
        assert_eq!(field(half_keys), "spec.secret_access_key");
        let poll = |spec: Value| json!({"kind": "remote_poll", "spec": spec});
        assert_eq!(
            field(poll(json!({"endpoint": "p", "interval_ms": 0}))),
            "spec.interval_ms"
        );
        assert_eq!(
            field(poll(json!({"endpoint": "p", "path": "../x"}))),
            "spec.path"
        );
        assert_eq!(
            field(poll(json!({"endpoint": "p", "ignore": ["a{"]}))),
            "spec.ignore[0]"
        );
        assert_eq!(
            field(json!({"kind": "remote_poll", "spec": {"endpoint": "p"},
                "placement": {"node": ""}})),
            "placement.node"
        );
        let renamed = Source::parse(
            Some("a"),
            json!({"name": "b", "kind": "remote_poll",
            "spec": {"endpoint": "p"}}),
        );
        assert_eq!(renamed.unwrap_err().field.as_deref(), Some("name"));
    }
}
