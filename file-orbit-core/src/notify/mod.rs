//! Notifications: named rules (which events, filtered by template, endpoint and source,
//! at most so many messages per window, the rest in a digest) each with a channel (webhook,
//! email, Slack, Teams). One reading serves every way of declaring one (TOML
//! `[[notifications]]`, `PUT /api/v1/notifications/{name}`, Python): [`Notification::parse`].
//! Messages are rows of the store's outbox, made from the audit log by `dispatch` and sent
//! by `runner` on any node; `guard` decides which hosts may be reached.

pub mod channel;
pub mod deliver;
mod dispatch;
pub mod guard;
mod manage;
pub mod message;
pub mod render;
pub mod runner;

pub use channel::{Channel, EmailChannel, SlackChannel, SmtpTls, TeamsChannel, WebhookChannel};
pub use message::{ErrorFacts, Item, JobFacts, Message, Side};
pub use runner::{Notifier, NotifierOptions};

use crate::engine::{check_name, name_of};
use crate::error::{Error, Result};
use crate::serde_errors::from_json_value;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a notification can report.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A job finished well.
    JobSucceeded,
    /// An attempt failed and the job will be tried again.
    AttemptFailed,
    /// A job failed for good (dead letter).
    JobDead,
    /// The last job of a chain of two or more finished well.
    ChainCompleted,
    /// An incoming event could not be used (malformed, or naming what does not exist).
    EventRejected,
    /// A stored source stopped working.
    SourceFailing,
    /// An endpoint's connection test failed.
    EndpointTestFailed,
    /// The worker running a job was lost (crashed, killed, cut off from the store).
    WorkerLost,
}

/// Every event, in the order they are documented.
pub const NOTIFY_EVENTS: [NotifyEvent; 8] = [
    NotifyEvent::JobSucceeded,
    NotifyEvent::AttemptFailed,
    NotifyEvent::JobDead,
    NotifyEvent::ChainCompleted,
    NotifyEvent::EventRejected,
    NotifyEvent::SourceFailing,
    NotifyEvent::EndpointTestFailed,
    NotifyEvent::WorkerLost,
];

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::JobSucceeded => "job_succeeded",
            NotifyEvent::AttemptFailed => "attempt_failed",
            NotifyEvent::JobDead => "job_dead",
            NotifyEvent::ChainCompleted => "chain_completed",
            NotifyEvent::EventRejected => "event_rejected",
            NotifyEvent::SourceFailing => "source_failing",
            NotifyEvent::EndpointTestFailed => "endpoint_test_failed",
            NotifyEvent::WorkerLost => "worker_lost",
        }
    }

    /// Words for a person: `Job dead`.
    pub fn title(self) -> &'static str {
        match self {
            NotifyEvent::JobSucceeded => "Job succeeded",
            NotifyEvent::AttemptFailed => "Attempt failed",
            NotifyEvent::JobDead => "Job dead",
            NotifyEvent::ChainCompleted => "Chain completed",
            NotifyEvent::EventRejected => "Event rejected",
            NotifyEvent::SourceFailing => "Source failing",
            NotifyEvent::EndpointTestFailed => "Endpoint test failed",
            NotifyEvent::WorkerLost => "Worker lost",
        }
    }

    /// True for the events that say something went wrong.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            NotifyEvent::JobSucceeded | NotifyEvent::ChainCompleted
        )
    }
}

/// Which events a notification reports, beyond their kind: an empty list admits any.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyFilter {
    /// Jobs made from these templates (or events matched by them).
    pub templates: Vec<String>,
    /// Jobs from or to these endpoints; endpoint tests of these endpoints.
    pub endpoints: Vec<String>,
    /// Events and jobs from these stored sources; failures of these sources.
    pub sources: Vec<String>,
}

/// At most `messages` per `per_secs` for one notification; events beyond go into one
/// digest sent when the window ends (with `messages = 1`, every window is one digest).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// 1 to 1,000 messages (a digest counts as one).
    pub messages: u32,
    /// The window, 1 s to a day.
    pub per_secs: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            messages: 10,
            per_secs: 300,
        }
    }
}

/// The most names one filter list holds.
const MAX_FILTER_NAMES: usize = 100;
/// The default and the largest number of tries of one message.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
const MAX_ATTEMPTS: u32 = 100;

/// What a notification reports and how often: the part of it that is not secret, read by
/// the dispatcher without unsealing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub events: Vec<NotifyEvent>,
    #[serde(default)]
    pub filter: NotifyFilter,
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Tries of one message before it is dead (1 to 100; default 8).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

/// A stored notification: a rule and its channel. As JSON (or TOML):
/// `{"name": "ops", "channel": {"type": "email", ...}, "events": ["job_dead"],
///   "filter": {"templates": ["nightly"]}, "rate_limit": {"messages": 5, "per_secs": 60},
///   "max_attempts": 8, "enabled": true}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub name: String,
    pub channel: Channel,
    #[serde(flatten)]
    pub rule: Rule,
    pub enabled: bool,
}

/// A notification as written, before its channel is read by its type (also the API
/// document's schema of `PUT /api/v1/notifications/{name}`'s body).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema), schema(as = NotificationPut))]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrittenNotification {
    /// Optional where a path or a table names it; must match it.
    name: Option<String>,
    /// `type` (webhook, email, slack, teams) and its fields; secrets are write-only.
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    channel: Value,
    /// At least one.
    events: Vec<NotifyEvent>,
    #[serde(default)]
    filter: NotifyFilter,
    #[serde(default)]
    rate_limit: RateLimit,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    /// Default true; false stores it without sending anything.
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn enabled_by_default() -> bool {
    true
}

impl Notification {
    /// Reads and checks a notification written as JSON; `name` is the name given beside it
    /// (a path's), which a `name` inside must match. Errors name the field
    /// (`channel.url`, `events[2]`, `rate_limit.messages`) and never hold a secret.
    pub fn parse(name: Option<&str>, written: Value) -> Result<Notification> {
        let context = "notification";
        let written: WrittenNotification = from_json_value(context, written)?;
        let name = name_of(context, name, written.name)?;
        let channel = Channel::parse(written.channel).map_err(|err| Error {
            context: context.into(),
            ..err.within("channel")
        })?;
        let notification = Notification {
            name,
            channel,
            rule: Rule {
                events: written.events,
                filter: written.filter,
                rate_limit: written.rate_limit,
                max_attempts: written.max_attempts,
            },
            enabled: written.enabled,
        };
        notification.validate()?;
        Ok(notification)
    }

    /// Checks every field (no store, no network); errors name the field.
    pub fn validate(&self) -> Result<()> {
        let context = "notification";
        check_name(context, &self.name)?;
        self.channel.validate().map_err(|err| Error {
            context: context.into(),
            ..err.within("channel")
        })?;
        self.rule.validate()
    }
}

impl Rule {
    /// Checks the events, filter, rate limit and tries; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let context = "notification";
        let invalid = |field: &str, why: String| Err(Error::invalid_field(context, field, why));
        if self.events.is_empty() {
            return invalid(
                "events",
                format!(
                    "must name at least one of {}",
                    NOTIFY_EVENTS.map(NotifyEvent::as_str).join(", ")
                ),
            );
        }
        for (field, names) in [
            ("templates", &self.filter.templates),
            ("endpoints", &self.filter.endpoints),
            ("sources", &self.filter.sources),
        ] {
            if names.len() > MAX_FILTER_NAMES {
                return invalid(
                    &format!("filter.{field}"),
                    format!("must list at most {MAX_FILTER_NAMES} names"),
                );
            }
            if let Some(i) = names
                .iter()
                .position(|name| name.is_empty() || name.len() > 200)
            {
                return invalid(
                    &format!("filter.{field}[{i}]"),
                    "must be 1 to 200 characters".into(),
                );
            }
        }
        if !(1..=1000).contains(&self.rate_limit.messages) {
            return invalid("rate_limit.messages", "must be 1 to 1000".into());
        }
        if !(1..=86_400).contains(&self.rate_limit.per_secs) {
            return invalid("rate_limit.per_secs", "must be 1 to 86400 (a day)".into());
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return invalid("max_attempts", format!("must be 1 to {MAX_ATTEMPTS}"));
        }
        Ok(())
    }

    /// Whether an event of `kind` about `facts` (its template, endpoints, source) is one
    /// the rule reports.
    pub fn admits(&self, kind: NotifyEvent, facts: &Facts<'_>) -> bool {
        let any_of = |wanted: &[String], have: &[&str]| {
            wanted.is_empty() || have.iter().any(|name| wanted.iter().any(|w| w == name))
        };
        self.events.contains(&kind)
            && any_of(&self.filter.templates, &facts.templates)
            && any_of(&self.filter.endpoints, &facts.endpoints)
            && any_of(&self.filter.sources, &facts.sources)
    }
}

/// What an event is about, for filters: the names it involves.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    pub templates: Vec<&'a str>,
    pub endpoints: Vec<&'a str>,
    pub sources: Vec<&'a str>,
}
