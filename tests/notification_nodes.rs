//! Two nodes on one store, each with workers and a notifier, on PostgreSQL and on SQLite:
//! every failure becomes exactly one message (the audit cursor's compare-and-set and the
//! outbox leases decide, not memory), and every message is delivered exactly once.

mod common;

use common::receivers::{self, accepted, allow, refused};
use common::{Kind, endpoint, orbit_options, postgres_url, sqlite_url, unique, until};
use file_orbit::engine::{JobRequest, JobState, MessageFilter, Orbit, OrbitOptions, RetryPolicy};
use file_orbit::notify::{
    Notification, NotifierOptions, NotifyEvent, NotifyFilter, RateLimit, Rule,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::collections::BTreeSet;
use std::time::Duration;

const JOBS: usize = 200;
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_send_each_message_once() {
    two_nodes_send_each_message_once(&postgres_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_sqlite_send_each_message_once() {
    let (url, _dir) = sqlite_url();
    two_nodes_send_each_message_once(&url).await;
}

async fn two_nodes_send_each_message_once(url: &str) {
    let options = |node: &str| OrbitOptions {
        notify_allow: allow(),
        actor: node.into(),
        ..orbit_options(url)
    };
    let a = Orbit::open(options("node-a")).await.unwrap();
    let b = Orbit::open(options("node-b")).await.unwrap();
    let name = unique("nodes");
    receivers::fresh(&name);
    a.put_notification(&Notification {
        name: name.clone(),
        channel: receivers::webhook(&name),
        rule: Rule {
            events: vec![NotifyEvent::JobDead],
            filter: NotifyFilter::default(),
            rate_limit: RateLimit {
                messages: 1000,
                per_secs: 3600,
            },
            max_attempts: 8,
        },
        enabled: true,
    })
    .await
    .unwrap();
    a.put_endpoint(&endpoint(Kind::Local, "in"), 16)
        .await
        .unwrap();
    a.put_endpoint(&endpoint(Kind::Local, "out"), 16)
        .await
        .unwrap();
    let quick = NotifierOptions {
        check_every: Duration::from_millis(50),
        ..NotifierOptions::default()
    };
    let nodes = [a.clone(), b.clone()];
    let notifiers: Vec<_> = nodes
        .iter()
        .map(|orbit| orbit.start_notifier(quick.clone()).unwrap())
        .collect();
    let workers: Vec<_> = nodes.iter().map(|orbit| orbit.start_workers(2)).collect();
    let requests: Vec<JobRequest> = (0..JOBS)
        .map(|i| JobRequest {
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..JobRequest::new(TransferSpec::file(
                "in",
                &format!("missing-{i}.txt"),
                "out",
                PathTemplate::parse("{filename}").unwrap(),
            ))
        })
        .collect();
    let ids: Vec<i64> = b
        .submit_many(&requests)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for id in &ids {
        assert_eq!(a.wait(*id, WAIT).await.unwrap().state, JobState::Dead);
    }
    let outbox = until("every message sent", WAIT, async || {
        let outbox = a
            .notification_messages(&MessageFilter {
                notification: Some(name.clone()),
                limit: 1000,
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        (outbox.len() >= JOBS && outbox.iter().all(|m| m.state == "sent")).then_some(outbox)
    })
    .await;
    assert_eq!(outbox.len(), JOBS, "one message per failure");
    let got = accepted(&name);
    assert_eq!(got.len(), JOBS, "each delivered once");
    assert!(refused(&name).is_empty());
    let message_ids: BTreeSet<&str> = got
        .iter()
        .map(|hook| hook["id"].as_str().unwrap())
        .collect();
    assert_eq!(message_ids.len(), JOBS);
    let jobs: BTreeSet<i64> = got
        .iter()
        .map(|hook| hook["json"]["items"][0]["job"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(jobs, ids.iter().copied().collect());
    // Every row records what the receiver answered; the summary counts them.
    assert!(
        outbox
            .iter()
            .all(|m| m.answer.as_deref() == Some("HTTP 200 OK"))
    );
    let summary = b.notifications().await.unwrap().pop().unwrap();
    assert_eq!(
        (summary.sent, summary.pending, summary.dead),
        (JOBS as i64, 0, 0)
    );
    assert!(summary.last_sent_at.is_some());
    let totals = b.store().notification_totals().await.unwrap();
    assert_eq!(totals, vec![("webhook".into(), "sent".into(), JOBS as i64)]);
    for notifier in notifiers {
        notifier.shutdown().await;
    }
    for workers in workers {
        workers.shutdown().await;
    }
}
