//! From the audit log to the outbox: each step reads the records after the store's cursor,
//! turns those that are notification events into items, hands each item to every enabled
//! rule that admits it (within its rate limit, or into its window's digest), and moves the
//! cursor in the same transaction as the messages it adds. A job's item names the stored
//! source whose event made it (`Job::source_name`), so rules can filter jobs by source. The audit record commits with
//! the state change it describes, so nothing between a job's death and its message can be
//! lost, and the cursor's compare-and-set makes every record count once across nodes.

use super::message::{ErrorFacts, Item, JobFacts, Message, Side};
use super::{Facts, NotifyEvent, Rule};
use crate::engine::{AuditRecord, Job, NewMessage, Orbit, RuleRow, now_ms};
use crate::error::Result;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// A rule with its rate window as the step changes it.
struct Window {
    row: RuleRow,
    rule: Rule,
    start: Option<i64>,
    sent: i64,
    /// The digest collecting in this window: its row and what it says so far.
    digest: Option<(i64, Message)>,
    changed: bool,
}

/// Turns up to `batch` audit records into messages; how many records it read (0: none
/// are waiting). `link_base` starts the job links (`<link_base>/api/v1/jobs/<id>`).
pub(crate) async fn dispatch_step(orbit: &Orbit, link_base: &str, batch: i64) -> Result<usize> {
    let store = orbit.store();
    let mut dispatch = store.begin_dispatch().await?;
    let records = dispatch.audit_after(batch).await?;
    let Some(last) = records.last().map(|record| record.id) else {
        return Ok(0);
    };
    let mut windows = Vec::new();
    for row in dispatch.rules().await? {
        let Ok(rule) = serde_json::from_value::<Rule>(row.rule.clone()) else {
            tracing::warn!(notification = %row.name, "skipping a notification whose stored rule does not read");
            continue;
        };
        let digest = match row.digest_id {
            Some(id) => dispatch
                .collecting_digest(id)
                .await?
                .and_then(|body| serde_json::from_value::<Message>(body).ok())
                .map(|message| (id, message)),
            None => None,
        };
        windows.push(Window {
            start: row.window_start,
            sent: row.window_sent,
            digest,
            changed: false,
            rule,
            row,
        });
    }
    if !windows.is_empty() {
        let job_ids: Vec<i64> = records.iter().filter_map(job_id).collect();
        let jobs: HashMap<i64, Job> = store
            .jobs_with_ids(&job_ids)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        let now = now_ms();
        for record in &records {
            for item in items_of(record, &jobs, link_base) {
                let facts = facts_of(&item, &jobs);
                for window in windows.iter_mut() {
                    if window.rule.admits(item.event, &facts) {
                        route(&mut dispatch, window, &item, now).await?;
                    }
                }
            }
        }
        for window in windows.iter().filter(|window| window.changed) {
            if let Some((id, digest)) = &window.digest {
                let body = serde_json::to_value(digest).unwrap_or(Value::Null);
                dispatch
                    .update_digest(*id, &body, digest.count as i64)
                    .await?;
            }
            dispatch
                .set_window(
                    &window.row.name,
                    window.start,
                    window.sent,
                    window.digest.as_ref().map(|(id, _)| *id),
                )
                .await?;
        }
    }
    if !dispatch.commit(last).await? {
        tracing::debug!("another node moved the notification cursor first");
    }
    Ok(records.len())
}

/// Sends `item` through `window`'s rule: on its own while fewer than `messages - 1` went
/// out in the window, else into the window's digest (one message, sent when it ends).
async fn route(
    dispatch: &mut crate::engine::Dispatch,
    window: &mut Window,
    item: &Item,
    now: i64,
) -> Result<()> {
    let per = window.rule.rate_limit.per_secs as i64 * 1000;
    let limit = window.rule.rate_limit.messages as i64;
    window.changed = true;
    if window.start.is_none_or(|start| now >= start + per) {
        window.start = Some(now);
        window.sent = 0;
        window.digest = None;
    }
    let start = window.start.unwrap_or(now);
    if window.digest.is_none() && window.sent < limit - 1 {
        let mut message = Message::new(&window.row.name, item.event.as_str(), utc(now));
        message.add(item);
        insert(dispatch, window, &message, "queued", now).await?;
        window.sent += 1;
        return Ok(());
    }
    match &mut window.digest {
        Some((_, digest)) => digest.add(item),
        None => {
            let mut digest = Message::new(&window.row.name, "digest", utc(now));
            digest.add(item);
            let id = insert(dispatch, window, &digest, "collecting", start + per).await?;
            window.digest = Some((id, digest));
            window.sent += 1;
        }
    }
    Ok(())
}

async fn insert(
    dispatch: &mut crate::engine::Dispatch,
    window: &Window,
    message: &Message,
    state: &str,
    run_after: i64,
) -> Result<i64> {
    let body = serde_json::to_value(message).unwrap_or(Value::Null);
    dispatch
        .insert_message(&NewMessage {
            notification: &window.row.name,
            channel: &window.row.channel,
            message_id: &message.id,
            event: &message.event,
            body: &body,
            item_count: message.count as i64,
            state,
            max_attempts: window.rule.max_attempts as i64,
            run_after,
        })
        .await
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The job a record is about, for the records that make job items.
fn job_id(record: &AuditRecord) -> Option<i64> {
    match record.action.as_str() {
        "job.succeeded" | "job.retry_scheduled" | "job.dead" | "job.worker_lost" => {
            record.subject.strip_prefix("job/")?.parse().ok()
        }
        _ => None,
    }
}

/// The notification events a record is (none for most records).
fn items_of(record: &AuditRecord, jobs: &HashMap<i64, Job>, link_base: &str) -> Vec<Item> {
    let detail = |key: &str| {
        record
            .detail
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let item = |event: NotifyEvent| Item {
        event,
        at: utc(record.at),
        audit_id: record.id,
        subject: record.subject.clone(),
        job: None,
        source: None,
        endpoint: None,
        worker: None,
        error: None,
    };
    let named = |prefix: &str| record.subject.strip_prefix(prefix).map(str::to_string);
    match record.action.as_str() {
        "job.succeeded" | "job.retry_scheduled" | "job.dead" | "job.worker_lost" => {
            let Some(job) = job_id(record).and_then(|id| jobs.get(&id)) else {
                return Vec::new();
            };
            let mut events = match record.action.as_str() {
                "job.succeeded" => vec![NotifyEvent::JobSucceeded],
                "job.retry_scheduled" => vec![NotifyEvent::AttemptFailed],
                "job.dead" => vec![NotifyEvent::JobDead],
                _ => vec![NotifyEvent::WorkerLost],
            };
            if record.action == "job.succeeded"
                && job.parent_id.is_some()
                && job.next_hops.is_empty()
            {
                events.push(NotifyEvent::ChainCompleted);
            }
            let attempt = record
                .detail
                .get("attempt")
                .and_then(Value::as_i64)
                .unwrap_or(job.attempts);
            let error = match record.action.as_str() {
                "job.retry_scheduled" | "job.dead" => Some(ErrorFacts {
                    kind: detail("error_kind")
                        .or_else(|| job.last_error_kind.clone())
                        .unwrap_or_default(),
                    message: detail("error")
                        .or_else(|| job.last_error.clone())
                        .unwrap_or_default(),
                }),
                _ => None,
            };
            let facts = job_facts(job, attempt, link_base);
            events
                .into_iter()
                .map(|event| Item {
                    job: Some(facts.clone()),
                    source: job.source_name.clone(),
                    worker: detail("worker"),
                    error: error.clone(),
                    ..item(event)
                })
                .collect()
        }
        "event.rejected" => vec![Item {
            source: detail("source_name").or_else(|| detail("source")),
            error: Some(ErrorFacts {
                kind: "InvalidInput".into(),
                message: detail("error").unwrap_or_default(),
            }),
            ..item(NotifyEvent::EventRejected)
        }],
        "source.failing" => vec![Item {
            source: named("source/"),
            error: detail("error").map(|message| ErrorFacts {
                kind: "SourceFailing".into(),
                message,
            }),
            ..item(NotifyEvent::SourceFailing)
        }],
        "endpoint.tested" if record.outcome == "failed" => vec![Item {
            endpoint: named("endpoint/"),
            error: Some(ErrorFacts {
                kind: detail("problem").unwrap_or_default(),
                message: detail("message").unwrap_or_default(),
            }),
            ..item(NotifyEvent::EndpointTestFailed)
        }],
        _ => Vec::new(),
    }
}

fn job_facts(job: &Job, attempt: i64, link_base: &str) -> JobFacts {
    JobFacts {
        id: job.id,
        url: format!("{}/api/v1/jobs/{}", link_base.trim_end_matches('/'), job.id),
        state: job.state.as_str().to_string(),
        template: job.template.clone(),
        source: Side {
            endpoint: job.spec.source.clone(),
            path: job.spec.source_path.clone(),
        },
        destination: Side {
            endpoint: job.spec.destination.clone(),
            path: job.spec.destination_path.as_str().to_string(),
        },
        attempt,
        max_attempts: job.max_attempts,
        chain: job.chain_id,
    }
}

/// The names an item involves, for rules' filters.
fn facts_of<'a>(item: &'a Item, jobs: &'a HashMap<i64, Job>) -> Facts<'a> {
    let mut facts = Facts::default();
    if let Some(job) = item.job.as_ref().and_then(|job| jobs.get(&job.id)) {
        facts.templates.extend(job.template.as_deref());
        facts.endpoints.push(&job.spec.source);
        facts.endpoints.push(&job.spec.destination);
    }
    facts.endpoints.extend(item.endpoint.as_deref());
    facts.sources.extend(item.source.as_deref());
    facts
}
