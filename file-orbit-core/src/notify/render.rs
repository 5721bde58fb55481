//! What each channel sends for a [`Message`]: the webhook's JSON document (the stable,
//! versioned contract) and its signature header, Slack's blocks, Teams' Adaptive Card and
//! the mail. Pure functions of the message: no network, no secrets other than the signing
//! key handed to [`signature_header`].

use super::message::SCHEMA;
use super::{EmailChannel, Item, Message};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The most items Slack's and Teams' messages show one by one (the rest are counted).
pub const SHOWN_ITEMS: usize = 20;
/// Slack's limits: a header's text, a section's text.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;
/// The longest value of a Teams fact; the size the card stops adding items at (Teams
/// refuses a message over about 28 KB).
const TEAMS_FACT_CHARS: usize = 500;
const TEAMS_BUDGET_BYTES: usize = 20_000;
/// The longest mail subject.
const SUBJECT_CHARS: usize = 200;

/// The webhook's body, `Content-Type: application/json`:
///
/// ```json
/// {
///   "schema": "file-orbit.notification/v1",
///   "id": "…",                      // stable across retries (also X-File-Orbit-Id): drop repeats
///   "notification": "ops",          // the notification (rule and channel) that sent it
///   "event": "job_dead",            // the event's name, or "digest"
///   "created_at": "2026-12-07T18:00:00Z",
///   "summary": "Job dead: job 12 in:/a.txt -> out:/b/ (Connection: refused)",
///   "count": 1,                     // events reported: items plus omitted
///   "counts": {"job_dead": 1},      // by event name
///   "items": [{
///     "event": "job_dead", "at": "…", "audit_id": 7, "subject": "job/12",
///     "job": {"id": 12, "url": "https://mft/api/v1/jobs/12", "state": "dead",
///             "template": "nightly", "source": {"endpoint": "in", "path": "/a.txt"},
///             "destination": {"endpoint": "out", "path": "/b/"},
///             "attempt": 3, "max_attempts": 3, "chain": 12},
///     "source": "uploads", "endpoint": "…", "worker": "…",   // each only when known
///     "error": {"kind": "Connection", "message": "…"}          // redacted
///   }],
///   "omitted": 0,                   // events counted but not listed (a digest lists 50)
///   "test": false                   // true for POST /api/v1/notifications/{name}/test
/// }
/// ```
///
/// Fields are only ever added within `v1`; a receiver ignores those it does not know.
/// The body is signed: see [`signature_header`].
pub fn webhook_body(message: &Message) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        schema: &'static str,
        id: &'a str,
        notification: &'a str,
        event: &'a str,
        created_at: DateTime<Utc>,
        summary: String,
        count: u64,
        counts: &'a BTreeMap<String, u64>,
        items: &'a [Item],
        omitted: u64,
        test: bool,
    }
    let body = Body {
        schema: SCHEMA,
        id: &message.id,
        notification: &message.notification,
        event: &message.event,
        created_at: message.created_at,
        summary: message.summary(),
        count: message.count,
        counts: &message.counts,
        items: &message.items,
        omitted: message.omitted,
        test: message.test,
    };
    serde_json::to_vec(&body).expect("a message serialises to JSON (string keys only)")
}

/// `X-File-Orbit-Signature`: `t=<unix seconds>,v1=<lowercase hex of HMAC-SHA256(key,
/// "<t>." + body)>`. A receiver recomputes it over the raw body, compares in constant
/// time, and refuses a `t` too far from its clock (a replay).
pub fn signature_header(key: &Secret, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The title of a message: `File Orbit: Job dead`, `File Orbit: 60 events (ops)`.
fn title(message: &Message) -> String {
    if message.test {
        return "File Orbit: test message".into();
    }
    match message.items.as_slice() {
        [item] if message.event != "digest" => format!("File Orbit: {}", item.event.title()),
        _ => format!(
            "File Orbit: {} events ({})",
            message.count, message.notification
        ),
    }
}

/// An item's facts for a person, control characters made spaces: Job, From, To (or
/// Subject, Source, Endpoint, Worker), Error, When.
fn facts(item: &Item) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    match &item.job {
        Some(job) => {
            let template = job
                .template
                .as_deref()
                .map(|t| format!(", template {t}"))
                .unwrap_or_default();
            facts.push((
                "Job",
                format!(
                    "{} ({}, attempt {} of {}{template})",
                    job.id, job.state, job.attempt, job.max_attempts
                ),
            ));
            facts.push((
                "From",
                format!("{}:{}", job.source.endpoint, job.source.path),
            ));
            facts.push((
                "To",
                format!("{}:{}", job.destination.endpoint, job.destination.path),
            ));
        }
        None => facts.push(("Subject", item.subject.clone())),
    }
    for (name, value) in [
        ("Source", &item.source),
        ("Endpoint", &item.endpoint),
        ("Worker", &item.worker),
    ] {
        if let Some(value) = value {
            facts.push((name, value.clone()));
        }
    }
    if let Some(error) = &item.error {
        facts.push(("Error", format!("{}: {}", error.kind, error.message)));
    }
    facts.push(("When", when(item.at)));
    facts
        .into_iter()
        .map(|(name, value)| (name, printable(&value)))
        .collect()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Control characters (newlines too) made spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, the last an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `&`, `<` and `>` as Slack's mrkdwn wants them in user text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// [`clip`] for escaped mrkdwn: never ends inside an `&amp;`-like entity.
fn slack_clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
}

fn events_counted(message: &Message) -> String {
    let counts: Vec<String> = message
        .counts
        .iter()
        .map(|(event, n)| format!("{n} {}", event.replace('_', " ")))
        .collect();
    format!("{} events: {}", message.count, counts.join(", "))
}

/// How many events a message has beyond the items shown.
fn beyond(message: &Message, shown: usize) -> u64 {
    (message.items.len() - shown) as u64 + message.omitted
}

/// A Slack incoming-webhook message: `text` (the summary, for notifications) and blocks:
/// a header, one section per item (at most [`SHOWN_ITEMS`], a job's as a link to it),
/// `…and N more`, and a context with the counts and the message id. Never more than 24
/// blocks (Slack takes 50), no text beyond Slack's limits.
pub fn slack_body(message: &Message) -> Vec<u8> {
    let section = |text: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_clip(&text, SLACK_SECTION_CHARS)}});
    let summary = slack_escape(&printable(&message.summary()));
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&title(message), SLACK_HEADER_CHARS)},
    })];
    if message.test || message.items.len() != 1 {
        blocks.push(section(summary.clone()));
    }
    let shown = message.items.len().min(SHOWN_ITEMS);
    for item in &message.items[..shown] {
        let mut text = format!("*{}*", item.event.title());
        if let Some(job) = &item.job {
            text.push_str(&format!(
                " · <{}|job {}>",
                slack_escape(&printable(&job.url)),
                job.id
            ));
        }
        for (name, value) in facts(item) {
            text.push_str(&format!("\n*{name}:* {}", slack_escape(&value)));
        }
        blocks.push(section(text));
    }
    let more = beyond(message, shown);
    if more > 0 {
        blocks.push(section(format!("…and {more} more")));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_clip(&format!(
            "{} · notification {} · message {}",
            events_counted(message),
            slack_escape(&printable(&message.notification)),
            slack_escape(&printable(&message.id)),
        ), SLACK_SECTION_CHARS)}],
    }));
    let body = json!({"text": slack_clip(&summary, SLACK_SECTION_CHARS), "blocks": blocks});
    body.to_string().into_bytes()
}

/// A Teams Workflows message with an Adaptive Card 1.4: the title, the summary, a FactSet
/// per item (Event, Job, From, To, Error, When; at most [`SHOWN_ITEMS`] and about 20 KB),
/// `and N more`, and an `Action.OpenUrl` to the first job shown.
pub fn teams_body(message: &Message) -> Vec<u8> {
    let text = |text: String, bold: bool| {
        let mut block = json!({"type": "TextBlock", "text": text, "wrap": true});
        if bold {
            block["weight"] = json!("bolder");
            block["size"] = json!("medium");
        }
        block
    };
    let mut body = vec![
        text(printable(&title(message)), true),
        text(printable(&message.summary()), false),
    ];
    let mut size = Value::Array(body.clone()).to_string().len();
    let mut shown = 0;
    let mut first_job = None;
    for item in message.items.iter().take(SHOWN_ITEMS) {
        let mut facts = facts(item);
        facts.insert(0, ("Event", item.event.title().to_string()));
        let facts: Vec<Value> = facts
            .into_iter()
            .map(|(name, value)| json!({"title": name, "value": clip(&value, TEAMS_FACT_CHARS)}))
            .collect();
        let set = json!({"type": "FactSet", "separator": true, "facts": facts});
        size += set.to_string().len();
        if shown > 0 && size > TEAMS_BUDGET_BYTES {
            break;
        }
        body.push(set);
        shown += 1;
        if first_job.is_none() {
            first_job = item.job.as_ref();
        }
    }
    let more = beyond(message, shown);
    if more > 0 {
        body.push(text(format!("and {more} more"), false));
    }
    let actions: Vec<Value> = first_job
        .map(|job| json!({"type": "Action.OpenUrl", "title": format!("Open job {}", job.id), "url": job.url}))
        .into_iter()
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
    .to_string()
    .into_bytes()
}

/// The mail of a message: From and To from the channel, `Subject: [File Orbit] <summary>`,
/// `Message-ID: <id@file-orbit>` (stable across retries, so a receiver drops a repeat),
/// and a text/plain body listing every item (job, endpoints and paths, error kind and
/// message, the job's link) with a footer of counts and the message id.
pub fn email(channel: &EmailChannel, message: &Message) -> Result<lettre::Message> {
    let context = "notification email";
    let mailbox = |field: &str, text: &str| {
        text.parse::<Mailbox>().map_err(|_| {
            Error::invalid_field(
                "channel",
                field,
                format!(
                    "{:?} is not a mail address",
                    text.chars().take(100).collect::<String>()
                ),
            )
        })
    };
    let mut builder = lettre::Message::builder()
        .from(mailbox("from", &channel.from)?)
        .subject(clip(
            &format!("[File Orbit] {}", printable(&message.summary())),
            SUBJECT_CHARS,
        ))
        .message_id(Some(format!(
            "<{}@file-orbit>",
            message_id_part(&message.id)
        )))
        .header(ContentType::TEXT_PLAIN);
    for (i, to) in channel.to.iter().enumerate() {
        builder = builder.to(mailbox(&format!("to[{i}]"), to)?);
    }
    builder.body(email_text(message)).map_err(|err| {
        Error::new(
            ErrorKind::InvalidInput,
            context,
            format!("the mail could not be built: {err}"),
        )
        .with_retryable(false)
    })
}

/// The message id as the left part of a Message-ID (characters a header takes unquoted).
fn message_id_part(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '+' | '='))
        .take(200)
        .collect()
}

fn email_text(message: &Message) -> String {
    let mut text = format!("{}\n", printable(&message.summary()));
    for (i, item) in message.items.iter().enumerate() {
        text.push_str(&format!("\n{}. {}\n", i + 1, item.event.title()));
        for (name, value) in facts(item) {
            text.push_str(&format!("   {:<9} {value}\n", format!("{name}:")));
        }
        if let Some(job) = &item.job {
            text.push_str(&format!("   {:<9} {}\n", "Link:", printable(&job.url)));
        }
    }
    if message.omitted > 0 {
        text.push_str(&format!("\n…and {} more, not listed.\n", message.omitted));
    }
    text.push_str(&format!(
        "\n-- \nFile Orbit notification {:?}: {}\nMessage id: {}\n",
        printable(&message.notification),
        events_counted(message),
        printable(&message.id)
    ));
    text
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
