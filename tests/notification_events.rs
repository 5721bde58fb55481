//! Every kind of notification event, each caused for real and each reaching a webhook rule
//! that asks for all of them (through the real receiver): a job that succeeds, an attempt
//! that fails and is retried, a dead job, a chain's last hop, an unusable event, a source
//! that turns failing, an endpoint test that fails against the real SFTP server, and a
//! worker lost while it held a job.

mod common;

use common::receivers::{self, accepted, allow};
use common::{Kind, endpoint, local_root, orbit_options, sqlite_url, unique, until};
use file_orbit::Secret;
use file_orbit::endpoint::{EndpointConfig, SftpAuth, TestOptions};
use file_orbit::engine::{JobRequest, JobState, Orbit, RetryPolicy};
use file_orbit::events::local::LocalWatch;
use file_orbit::events::runner::SourceRunnerOptions;
use file_orbit::events::source::{Source, SourceSpec};
use file_orbit::notify::{
    NOTIFY_EVENTS, Notification, NotifierOptions, NotifyFilter, RateLimit, Rule,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn file(source: &str, path: &str, destination: &str) -> TransferSpec {
    TransferSpec::file(
        source,
        path,
        destination,
        PathTemplate::parse("{filename}").unwrap(),
    )
}

fn tries(max_attempts: u32, spec: TransferSpec) -> JobRequest {
    JobRequest {
        retry: RetryPolicy {
            max_attempts,
            base_delay_ms: 10,
            max_delay_ms: 10,
        },
        ..JobRequest::new(spec)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_event_reaches_a_rule_that_asks_for_it() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(file_orbit::engine::OrbitOptions {
        notify_allow: allow(),
        lease: Duration::from_secs(1),
        ..orbit_options(&url)
    })
    .await
    .unwrap();
    let name = unique("all");
    receivers::fresh(&name);
    orbit
        .put_notification(&Notification {
            name: name.clone(),
            channel: receivers::webhook(&name),
            rule: Rule {
                events: NOTIFY_EVENTS.to_vec(),
                filter: NotifyFilter::default(),
                rate_limit: RateLimit {
                    messages: 1000,
                    per_secs: 60,
                },
                max_attempts: 8,
            },
            enabled: true,
        })
        .await
        .unwrap();
    let inbox = endpoint(Kind::Local, "in");
    let root = local_root(&inbox);
    std::fs::write(root.join("a.txt"), b"hello").unwrap();
    std::fs::create_dir_all(root.join("watched")).unwrap();
    orbit.put_endpoint(&inbox, 8).await.unwrap();
    for name in ["mid", "out"] {
        orbit
            .put_endpoint(&endpoint(Kind::Local, name), 8)
            .await
            .unwrap();
    }
    let mut sftp = endpoint(Kind::Sftp, "sftp-wrong");
    if let EndpointConfig::Sftp(config) = &mut sftp.config {
        config.auth = SftpAuth::Password {
            password: Secret::new("not-the-password"),
        };
    }
    orbit.put_endpoint(&sftp, 2).await.unwrap();
    // Nothing listens there: a connection refused, which is worth another try.
    let mut closed = endpoint(Kind::Sftp, "sftp-closed");
    if let EndpointConfig::Sftp(config) = &mut closed.config {
        config.port = 9;
    }
    orbit.put_endpoint(&closed, 2).await.unwrap();

    // A worker that takes a job and is never heard of again: its lease runs out.
    let lost = orbit
        .submit(&tries(3, file("in", "a.txt", "out")))
        .await
        .unwrap();
    let ghost = orbit
        .store()
        .lease(
            "ghost-worker",
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .expect("the job to lose");
    assert_eq!(ghost.id, lost);
    let notifier = orbit
        .start_notifier(NotifierOptions {
            check_every: Duration::from_millis(50),
            ..NotifierOptions::default()
        })
        .unwrap();
    let workers = orbit.start_workers(2);
    let chain = JobRequest {
        next_hops: vec![file("mid", "a.txt", "out")],
        ..tries(1, file("in", "a.txt", "mid"))
    };
    let chained = orbit.submit(&chain).await.unwrap();
    let retried = orbit
        .submit(&tries(2, file("sftp-closed", "a.txt", "out")))
        .await
        .unwrap();
    for id in [lost, chained, retried] {
        orbit.wait(id, WAIT).await.unwrap();
    }
    assert_eq!(orbit.job(retried).await.unwrap().state, JobState::Dead);
    orbit
        .ingest_dead(
            "sqs",
            Some(&unique("bad")),
            "not json",
            "the message is not JSON",
        )
        .await
        .unwrap();
    let diagnosis = orbit
        .test_endpoint("sftp-wrong", TestOptions { write_probe: false })
        .await
        .unwrap();
    assert!(!diagnosis.is_ok());
    // A watch whose folder is gone: the runner finds it failing.
    let watch = Source {
        name: "watch".into(),
        spec: SourceSpec::LocalWatch(LocalWatch {
            sub_path: Some("watched".into()),
            ..LocalWatch::new("in")
        }),
        enabled: true,
        placement: Default::default(),
    };
    orbit.put_source(&watch).await.unwrap();
    std::fs::remove_dir_all(root.join("watched")).unwrap();
    let runner = orbit
        .start_source_runner(SourceRunnerOptions::default())
        .unwrap();

    let seen = until("every kind of event", WAIT, async || {
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        for hook in accepted(&name) {
            for item in hook["json"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                seen.insert(item["event"].as_str().unwrap().to_string(), item);
            }
        }
        (seen.len() == NOTIFY_EVENTS.len()).then_some(seen)
    })
    .await;
    assert_eq!(seen["worker_lost"]["job"]["id"], lost);
    assert_eq!(seen["worker_lost"]["worker"], "ghost-worker");
    assert_eq!(seen["attempt_failed"]["job"]["id"], retried);
    assert_eq!(seen["attempt_failed"]["error"]["kind"], "Connection");
    assert_eq!(seen["job_dead"]["job"]["id"], retried);
    assert_eq!(seen["chain_completed"]["job"]["chain"], chained);
    assert_eq!(seen["chain_completed"]["job"]["source"]["endpoint"], "mid");
    assert_eq!(
        seen["event_rejected"]["error"]["message"],
        "the message is not JSON"
    );
    assert_eq!(seen["endpoint_test_failed"]["endpoint"], "sftp-wrong");
    assert_eq!(
        seen["endpoint_test_failed"]["error"]["kind"],
        "authentication"
    );
    assert_eq!(seen["source_failing"]["source"], "watch");
    assert!(seen["job_succeeded"]["job"]["id"].is_i64());
    runner.shutdown().await;
    notifier.shutdown().await;
    workers.shutdown().await;
}
