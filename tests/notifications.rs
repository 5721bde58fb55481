//! Notifications end to end, through the real receivers on loopback: a dead job's mail
//! through an SMTP server with STARTTLS and AUTH; webhook (signature verified by the
//! receiver), Slack and Teams payloads the receivers accept; a receiver that is down gets
//! the message once when it returns; a burst of failures becomes at most the rule's limit
//! of messages, with counts; filters choose which rules hear of a job.

mod common;

use common::receivers::{self, accepted, allow, control, mails, refused};
use common::{Kind, endpoint, orbit_options, sqlite_url, unique, until};
use file_orbit::engine::{
    JobRequest, JobState, Matcher, MessageFilter, Orbit, RetryPolicy, TransferTemplate,
};
use file_orbit::events::{IncomingEvent, Ingested};
use file_orbit::notify::{
    Channel, Notification, NotifierOptions, NotifyEvent, NotifyFilter, RateLimit, Rule,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn open() -> (Orbit, tempfile::TempDir) {
    let (url, dir) = sqlite_url();
    let orbit = Orbit::open(file_orbit::engine::OrbitOptions {
        notify_allow: allow(),
        ..orbit_options(&url)
    })
    .await
    .unwrap();
    (orbit, dir)
}

fn quick() -> NotifierOptions {
    NotifierOptions {
        link_base: "https://orbit.example".into(),
        check_every: Duration::from_millis(50),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
    }
}

fn notification(name: &str, channel: Channel, events: &[NotifyEvent]) -> Notification {
    Notification {
        name: name.into(),
        channel,
        rule: Rule {
            events: events.to_vec(),
            filter: NotifyFilter::default(),
            rate_limit: RateLimit::default(),
            max_attempts: 8,
        },
        enabled: true,
    }
}

/// Local endpoints `in` and `out` with `a.txt` in `in`.
async fn endpoints(orbit: &Orbit) {
    let source = endpoint(Kind::Local, "in");
    std::fs::write(common::local_root(&source).join("a.txt"), b"hello").unwrap();
    orbit.put_endpoint(&source, 8).await.unwrap();
    orbit
        .put_endpoint(&endpoint(Kind::Local, "out"), 8)
        .await
        .unwrap();
}

/// Submits a copy of `path` from `in` to `out`, tried once; its id.
async fn copy(orbit: &Orbit, path: &str) -> i64 {
    let spec = TransferSpec::file(
        "in",
        path,
        "out",
        PathTemplate::parse("{filename}").unwrap(),
    );
    let request = JobRequest {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..JobRequest::new(spec)
    };
    orbit.submit(&request).await.unwrap()
}

async fn outbox(orbit: &Orbit, notification: &str) -> Vec<file_orbit::engine::OutboxMessage> {
    orbit
        .notification_messages(&MessageFilter {
            notification: Some(notification.into()),
            limit: 1000,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_is_mailed_through_starttls_with_auth() {
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let to = format!("{}@orbit.test", unique("ops"));
    orbit
        .put_notification(&notification(
            "mail",
            receivers::email(&to),
            &[NotifyEvent::JobDead],
        ))
        .await
        .unwrap();
    let workers = orbit.start_workers(1);
    let notifier = orbit.start_notifier(quick()).unwrap();
    let id = copy(&orbit, "missing.txt").await;
    assert_eq!(orbit.wait(id, WAIT).await.unwrap().state, JobState::Dead);

    let mail = until("the mail", WAIT, async || mails(&to).pop()).await;
    let sent = until("the outbox to say sent", WAIT, async || {
        outbox(&orbit, "mail")
            .await
            .into_iter()
            .find(|message| message.state == "sent")
    })
    .await;
    assert_eq!(mail["tls"], true, "{mail}");
    assert_eq!(mail["auth_user"], common::env("SMTP_USER"), "{mail}");
    assert_eq!(
        mail["message_id"],
        format!("<{}@file-orbit>", sent.message_id),
        "{mail}"
    );
    let subject = mail["subject"].as_str().unwrap();
    assert!(subject.contains("Job dead"), "{subject}");
    let text = mail["text"].as_str().unwrap_or_default();
    for needle in [
        format!("job {id}"),
        "in".into(),
        "missing.txt".into(),
        "out".into(),
        format!("https://orbit.example/api/v1/jobs/{id}"),
        "NotFound".into(),
    ] {
        assert!(
            text.contains(&needle),
            "{needle:?} not in the mail:\n{text}"
        );
    }
    assert!(
        sent.answer
            .as_deref()
            .unwrap_or_default()
            .starts_with("SMTP 250"),
        "{sent:?}"
    );
    notifier.shutdown().await;
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_slack_and_teams_receivers_accept_the_messages() {
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let names = [unique("hook"), unique("slack"), unique("teams")];
    let channels = [
        receivers::webhook(&names[0]),
        receivers::slack(&names[1]),
        receivers::teams(&names[2]),
    ];
    for (name, channel) in names.iter().zip(channels) {
        receivers::fresh(name);
        orbit
            .put_notification(&notification(
                name,
                channel,
                &[NotifyEvent::JobSucceeded, NotifyEvent::JobDead],
            ))
            .await
            .unwrap();
    }
    let workers = orbit.start_workers(2);
    let notifier = orbit.start_notifier(quick()).unwrap();
    let good = copy(&orbit, "a.txt").await;
    let bad = copy(&orbit, "missing.txt").await;
    assert_eq!(
        orbit.wait(good, WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(orbit.wait(bad, WAIT).await.unwrap().state, JobState::Dead);
    for name in &names {
        let got = until("two messages", WAIT, async || {
            let got = accepted(name);
            (got.len() >= 2).then_some(got)
        })
        .await;
        assert_eq!(got.len(), 2, "{name}: {got:?}");
        assert!(refused(name).is_empty(), "{name}: {:?}", refused(name));
    }
    // The webhook body: the documented schema, one item each, the job's facts.
    let hooks = accepted(&names[0]);
    let bodies: Vec<&Value> = hooks.iter().map(|hook| &hook["json"]).collect();
    let dead = bodies
        .iter()
        .find(|body| body["event"] == "job_dead")
        .expect("the job_dead message");
    assert_eq!(dead["schema"], "file-orbit.notification/v1");
    assert_eq!(dead["count"], 1);
    let item = &dead["items"][0];
    assert_eq!(item["job"]["id"], bad, "{item}");
    assert_eq!(
        item["job"]["source"],
        json!({"endpoint": "in", "path": "missing.txt"})
    );
    assert_eq!(item["error"]["kind"], "NotFound", "{item}");
    assert_eq!(
        hooks[0]["headers"]["x-file-orbit-id"], hooks[0]["json"]["id"],
        "{:?}",
        hooks[0]
    );
    assert!(bodies.iter().any(|body| body["event"] == "job_succeeded"));
    notifier.shutdown().await;
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_message_once_it_is_back() {
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let name = unique("down");
    control(&name, json!({"mode": "down"}));
    orbit
        .put_notification(&notification(
            &name,
            receivers::webhook(&name),
            &[NotifyEvent::JobDead],
        ))
        .await
        .unwrap();
    let workers = orbit.start_workers(1);
    let notifier = orbit.start_notifier(quick()).unwrap();
    let id = copy(&orbit, "missing.txt").await;
    assert_eq!(orbit.wait(id, WAIT).await.unwrap().state, JobState::Dead);

    let tries = until("three refused tries", WAIT, async || {
        let tries = refused(&name);
        (tries.len() >= 3).then_some(tries)
    })
    .await;
    // Backoff: each wait at least as long as the one before (200 ms, 400 ms, ...).
    let at: Vec<f64> = tries.iter().map(|t| t["at"].as_f64().unwrap()).collect();
    let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 0.15, "{gaps:?}");
    assert!(gaps[1] >= gaps[0] * 1.5, "the wait grows: {gaps:?}");
    let waiting = outbox(&orbit, &name).await;
    assert_eq!(waiting.len(), 1);
    assert!(
        waiting[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{waiting:?}"
    );

    control(&name, json!({"mode": "up"}));
    let sent = until("the message sent", WAIT, async || {
        outbox(&orbit, &name)
            .await
            .into_iter()
            .find(|message| message.state == "sent")
    })
    .await;
    let got = accepted(&name);
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert_eq!(got[0]["id"], sent.message_id);
    // Every try carried the same id, so a receiver can drop a repeat.
    assert!(refused(&name).iter().all(|t| t["id"] == sent.message_id));
    assert_eq!(sent.attempts as usize, refused(&name).len() + 1, "{sent:?}");
    notifier.shutdown().await;
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failures_is_at_most_the_limit_of_messages_with_counts() {
    const JOBS: usize = 1000;
    const LIMIT: u32 = 5;
    const WINDOW_SECS: u64 = 20;
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let name = unique("burst");
    receivers::fresh(&name);
    let mut rule = notification(&name, receivers::webhook(&name), &[NotifyEvent::JobDead]);
    rule.rule.rate_limit = RateLimit {
        messages: LIMIT,
        per_secs: WINDOW_SECS,
    };
    orbit.put_notification(&rule).await.unwrap();
    let requests: Vec<JobRequest> = (0..JOBS)
        .map(|i| {
            let spec = TransferSpec::file(
                "in",
                &format!("missing-{i}.txt"),
                "out",
                PathTemplate::parse("{filename}").unwrap(),
            );
            JobRequest {
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..RetryPolicy::default()
                },
                ..JobRequest::new(spec)
            }
        })
        .collect();
    let ids: Vec<i64> = orbit
        .submit_many(&requests)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let workers = orbit.start_workers(4);
    let notifier = orbit.start_notifier(quick()).unwrap();
    for id in &ids {
        assert_eq!(orbit.wait(*id, WAIT).await.unwrap().state, JobState::Dead);
    }
    // Every failure is counted once in what was sent (the digests go at their window's end).
    let got = until("every failure reported", WAIT * 2, async || {
        let got = accepted(&name);
        let counted: u64 = got
            .iter()
            .map(|hook| hook["json"]["count"].as_u64().unwrap())
            .sum();
        (counted >= JOBS as u64).then_some(got)
    })
    .await;
    let counted: u64 = got
        .iter()
        .map(|hook| hook["json"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, JOBS as u64);
    // At most LIMIT messages per window: the windows the failures spanned bound the total.
    let audit = orbit.audit_log(10_000).await.unwrap();
    let deaths: Vec<i64> = audit
        .iter()
        .filter(|record| record.action == "job.dead")
        .map(|record| record.at)
        .collect();
    let span_ms = deaths.iter().max().unwrap() - deaths.iter().min().unwrap();
    let windows = span_ms as u64 / (WINDOW_SECS * 1000) + 1;
    println!(
        "{JOBS} failures over {span_ms} ms ({windows} window(s)) made {} messages",
        got.len()
    );
    assert!(
        got.len() as u64 <= LIMIT as u64 * windows,
        "{} messages for {windows} window(s)",
        got.len()
    );
    let digest = got
        .iter()
        .map(|hook| &hook["json"])
        .find(|body| body["event"] == "digest")
        .expect("a digest");
    let count = digest["count"].as_u64().unwrap();
    assert_eq!(digest["counts"]["job_dead"], count);
    assert_eq!(
        digest["items"].as_array().unwrap().len(),
        50.min(count as usize)
    );
    assert_eq!(
        digest["omitted"].as_u64().unwrap(),
        count.saturating_sub(50)
    );
    assert!(refused(&name).is_empty());
    notifier.shutdown().await;
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_choose_which_notifications_hear_of_a_job() {
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let (hears, deaf) = (unique("hears"), unique("deaf"));
    receivers::fresh(&hears);
    receivers::fresh(&deaf);
    let mut matching = notification(
        &hears,
        receivers::webhook(&hears),
        &[NotifyEvent::JobSucceeded],
    );
    matching.rule.filter.endpoints = vec!["out".into()];
    let mut other = notification(
        &deaf,
        receivers::webhook(&deaf),
        &[NotifyEvent::JobSucceeded],
    );
    other.rule.filter.endpoints = vec!["elsewhere".into()];
    orbit.put_notification(&matching).await.unwrap();
    orbit.put_notification(&other).await.unwrap();
    let workers = orbit.start_workers(1);
    let notifier = orbit.start_notifier(quick()).unwrap();
    let id = copy(&orbit, "a.txt").await;
    assert_eq!(
        orbit.wait(id, WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    until("the matching rule's message", WAIT, async || {
        (accepted(&hears).len() == 1).then_some(())
    })
    .await;
    // Both rules saw the same audit records in the same step: the other made nothing.
    assert!(outbox(&orbit, &deaf).await.is_empty());
    assert!(accepted(&deaf).is_empty());
    notifier.shutdown().await;
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_filtered_by_source_hears_only_of_that_sources_jobs() {
    let (orbit, _dir) = open().await;
    endpoints(&orbit).await;
    let name = unique("by-source");
    receivers::fresh(&name);
    let mut rule = notification(
        &name,
        receivers::webhook(&name),
        &[NotifyEvent::JobSucceeded],
    );
    rule.rule.filter.sources = vec!["uploads".into()];
    orbit.put_notification(&rule).await.unwrap();
    let copy_a = TransferTemplate::new(
        "copy-a",
        Matcher::new("in", "*.txt"),
        TransferSpec::file(
            "in",
            "a.txt",
            "out",
            PathTemplate::parse("{filename}").unwrap(),
        ),
    );
    orbit.put_template(&copy_a).await.unwrap();
    let workers = orbit.start_workers(1);
    let notifier = orbit.start_notifier(quick()).unwrap();
    // A job submitted directly, then one made from an event of the stored source `uploads`.
    let direct = copy(&orbit, "a.txt").await;
    assert_eq!(
        orbit.wait(direct, WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    let event = IncomingEvent {
        source: "local_watch".into(),
        dedup_key: Some(unique("event")),
        file: None,
        template: Some("copy-a".into()),
        payload: json!({}),
    };
    let Ingested::New(record) = orbit.for_source("uploads").ingest(&event).await.unwrap() else {
        panic!("a new event")
    };
    let from_source = record.job_ids[0];
    assert_eq!(
        orbit.wait(from_source, WAIT).await.unwrap().state,
        JobState::Succeeded
    );
    let got = until("the source's job message", WAIT, async || {
        let got = accepted(&name);
        (!got.is_empty()).then_some(got)
    })
    .await;
    let item = &got[0]["json"]["items"][0];
    assert_eq!(item["job"]["id"], from_source, "{item}");
    assert_eq!(item["source"], "uploads", "{item}");
    // The direct job's success came first in the audit log and was passed over.
    let messages = outbox(&orbit, &name).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        orbit.job(from_source).await.unwrap().source_name.as_deref(),
        Some("uploads")
    );
    // A replay's jobs come from the event's source too.
    let replayed = orbit.replay_event(record.id).await.unwrap();
    let again = orbit.job(replayed[0]).await.unwrap();
    assert_eq!(again.source_name.as_deref(), Some("uploads"));
    notifier.shutdown().await;
    workers.shutdown().await;
}
