//! Events on the real stores: manual events matched to templates, deduplicated and
//! replayed; dead events kept with their body; cron schedules firing once per tick with
//! two engines on one PostgreSQL, and the missed-ticks policies.

mod common;

use common::{
    Kind, endpoint, ensure_bucket, local_root, moto_s3, orbit_options, postgres_url, rclone,
    sqlite_url, unique,
};
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::engine::{
    FileEvent, JobState, Matcher, MissedTicks, Orbit, Schedule, TransferTemplate,
};
use file_orbit::events::{EventState, IncomingEvent, Ingested};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::json;
use std::time::Duration;

/// An orbit with local endpoints `src` (holding `a.txt`) and `dst`, and a template
/// copying `*.txt` from `src`, optionally on a schedule.
async fn orbit_with_template(url: &str, schedule: Option<Schedule>) -> Orbit {
    let orbit = Orbit::open(orbit_options(url)).await.unwrap();
    let src = endpoint(Kind::Local, "src");
    let EndpointConfig::Local(local) = &src.config else {
        unreachable!()
    };
    std::fs::write(local.root.join("a.txt"), "a").unwrap();
    orbit.put_endpoint(&src, 4).await.unwrap();
    orbit
        .put_endpoint(&endpoint(Kind::Local, "dst"), 4)
        .await
        .unwrap();
    let template = TransferTemplate {
        schedule,
        ..TransferTemplate::new(
            "txt",
            Matcher::new("src", "*.txt"),
            TransferSpec::file(
                "src",
                "a.txt",
                "dst",
                PathTemplate::parse("{timestamp}-{filename}").unwrap(),
            ),
        )
    };
    orbit.put_template(&template).await.unwrap();
    orbit
}

fn manual(path: &str, key: Option<&str>) -> IncomingEvent {
    IncomingEvent {
        source: "manual".into(),
        dedup_key: key.map(str::to_string),
        file: Some(FileEvent {
            endpoint: "src".into(),
            path: path.into(),
            size: Some(1),
            modified: None,
            ..FileEvent::default()
        }),
        template: None,
        payload: json!({"by": "test"}),
    }
}

async fn manual_events_are_matched_deduplicated_and_replayed(url: &str) {
    let orbit = orbit_with_template(url, None).await;
    let Ingested::New(first) = orbit.ingest(&manual("a.txt", Some("k1"))).await.unwrap() else {
        panic!("a new event was taken for a duplicate");
    };
    assert_eq!(first.state, EventState::Processed);
    assert_eq!(first.matched_templates, ["txt"]);
    assert_eq!(first.job_ids.len(), 1);

    let again = orbit.ingest(&manual("a.txt", Some("k1"))).await.unwrap();
    assert!(
        matches!(again, Ingested::Duplicate(ref e) if e.id == first.id),
        "{again:?}"
    );
    let unmatched = orbit.ingest(&manual("a.csv", None)).await.unwrap();
    assert!(unmatched.record().job_ids.is_empty());

    let replayed = orbit.replay_event(first.id).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_ne!(replayed, first.job_ids, "a replay creates the jobs again");
    let record = orbit.event(first.id).await.unwrap();
    assert_eq!(record.job_ids.len(), 2);

    // One worker: both jobs write the same destination name.
    let workers = orbit.start_workers(1);
    for id in record.job_ids {
        let job = orbit.wait(id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    workers.shutdown().await;

    let dead = orbit
        .ingest_dead("sqs", Some("m-1"), "{not json", "body is not JSON")
        .await
        .unwrap();
    assert_eq!(
        (dead.state, dead.error.as_deref()),
        (EventState::Dead, Some("body is not JSON"))
    );
    assert_eq!(dead.payload["body"], "{not json");
    let err = orbit.replay_event(dead.id).await.unwrap_err();
    assert!(err.message.contains("names no file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_events_on_sqlite() {
    let (url, _dir) = sqlite_url();
    manual_events_are_matched_deduplicated_and_replayed(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_events_on_postgres() {
    manual_events_are_matched_deduplicated_and_replayed(&postgres_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_across_two_engines() {
    let url = postgres_url().await;
    let every_second = Schedule {
        cron: "* * * * * *".into(),
        missed: MissedTicks::Skip,
    };
    let first = orbit_with_template(&url, Some(every_second)).await;
    let second = Orbit::open(orbit_options(&url)).await.unwrap();
    let schedulers = [
        first.start_scheduler(Duration::from_millis(20)),
        second.start_scheduler(Duration::from_millis(20)),
    ];
    // Bounded wait for at least four ticks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events: Vec<_> = first
            .events(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.source == "schedule")
            .collect();
        if events.len() >= 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} ticks fired",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for scheduler in schedulers {
        scheduler.shutdown().await;
    }
    // Stopped schedulers have finished their ingests: read every event again.
    let events: Vec<_> = first
        .events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.source == "schedule")
        .collect();
    let mut ticks: Vec<i64> = events
        .iter()
        .map(|e| e.payload["payload"]["tick"].as_i64().unwrap())
        .collect();
    let fired = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), fired, "a tick fired twice: {events:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 1000),
        "ticks are one second apart: {ticks:?}"
    );
    assert!(events.iter().all(|e| e.job_ids.len() == 1), "{events:?}");
}

async fn missed_ticks(policy: MissedTicks) -> Vec<Ingested> {
    let (url, _dir) = sqlite_url();
    let schedule = Schedule {
        cron: "* * * * * *".into(),
        missed: policy,
    };
    let orbit = orbit_with_template(&url, Some(schedule)).await;
    // Nothing fires for over two ticks: the engine was "down".
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fired = orbit.fire_due_schedules().await.unwrap();
    // The schedule has moved past the gap: firing again now gives nothing more.
    assert!(orbit.fire_due_schedules().await.unwrap().len() <= 1);
    fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_or_run_once() {
    assert!(missed_ticks(MissedTicks::Skip).await.is_empty());
    let fired = missed_ticks(MissedTicks::RunOnce).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].record().payload["payload"]["missed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_an_sftp_endpoint_hands_over_new_and_changed_files_once() {
    use file_orbit::events::poll::{PollState, RemotePoll};
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let sftp = endpoint(Kind::Sftp, "partner");
    orbit.put_endpoint(&sftp, 2).await.unwrap();
    let upload = |name: &'static str, body: &'static str| {
        let sftp = sftp.clone();
        async move {
            let local = tempfile::tempdir().unwrap();
            std::fs::write(local.path().join("f"), body).unwrap();
            let rclone = common::rclone();
            let input = json!({"srcFs": local.path(), "srcRemote": "f",
                               "dstFs": sftp.to_rclone(rclone, "outbox").unwrap(), "dstRemote": name});
            rclone
                .rpc_async("operations/copyfile", input)
                .await
                .unwrap();
        }
    };
    upload("a.csv", "first").await;
    upload("skip.partial", "in progress").await;
    let poll = RemotePoll::new("partner", "outbox", Duration::from_secs(1));
    let mut state = PollState::default();
    let paths = |ingested: Vec<Ingested>| -> Vec<String> {
        ingested
            .iter()
            .map(|i| {
                i.record().payload["file"]["path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert!(
        orbit.poll_once(&poll, &mut state).await.unwrap().is_empty(),
        "first sight waits"
    );
    assert_eq!(
        paths(orbit.poll_once(&poll, &mut state).await.unwrap()),
        ["outbox/a.csv"]
    );
    assert!(
        orbit.poll_once(&poll, &mut state).await.unwrap().is_empty(),
        "unchanged"
    );

    upload("a.csv", "second version").await;
    assert!(
        orbit.poll_once(&poll, &mut state).await.unwrap().is_empty(),
        "changing: wait"
    );
    assert_eq!(
        paths(orbit.poll_once(&poll, &mut state).await.unwrap()),
        ["outbox/a.csv"]
    );

    // A restarted poller (empty state) finds nothing new: the store remembers.
    let mut fresh = PollState::default();
    orbit.poll_once(&poll, &mut fresh).await.unwrap();
    let again = orbit.poll_once(&poll, &mut fresh).await.unwrap();
    assert!(
        again.iter().all(|i| matches!(i, Ingested::Duplicate(_))),
        "{again:?}"
    );
}

/// A template matching on content type and metadata takes only the files that carry them;
/// the engine reads them from the endpoint (one stat) when the event does not say: S3 user
/// metadata and Content-Type on the real moto server, a local file's type by extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_match_on_content_type_and_metadata() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let s3 = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "s3in".into(),
        config: EndpointConfig::S3(moto_s3(&unique("fo-meta"), "in")),
    };
    ensure_bucket(&s3);
    orbit.put_endpoint(&s3, 4).await.unwrap();
    let src = endpoint(Kind::Local, "src");
    std::fs::write(local_root(&src).join("x.json"), "{}").unwrap();
    std::fs::write(local_root(&src).join("y.pdf"), "%PDF").unwrap();
    orbit.put_endpoint(&src, 4).await.unwrap();
    orbit
        .put_endpoint(&endpoint(Kind::Local, "dst"), 4)
        .await
        .unwrap();
    // Uploads through rclone setting the object's metadata (x-amz-meta-dept) and type.
    let staging = tempfile::tempdir().unwrap();
    for (name, dept) in [("a.csv", "finance"), ("b.csv", "hr")] {
        std::fs::write(staging.path().join(name), "id\n1\n").unwrap();
        rclone()
            .rpc(
                "operations/copyfile",
                &json!({
                    "srcFs": staging.path().display().to_string(), "srcRemote": name,
                    "dstFs": s3.to_rclone(rclone(), "").unwrap(), "dstRemote": name,
                    "_config": {"Metadata": true,
                                "MetadataSet": {"dept": dept, "content-type": "text/csv"}},
                }),
            )
            .unwrap();
    }
    let template = |name: &str, source: &str, matcher: Matcher| {
        TransferTemplate::new(
            name,
            matcher,
            TransferSpec::file(
                source,
                "x",
                "dst",
                PathTemplate::parse("{filename}").unwrap(),
            ),
        )
    };
    for t in [
        template(
            "finance",
            "s3in",
            Matcher {
                metadata: [("DEPT".to_string(), "fin*".to_string())].into(),
                ..Matcher::new("s3in", "*.csv")
            },
        ),
        template(
            "csv",
            "s3in",
            Matcher {
                content_type: Some("text/*".into()),
                ..Matcher::new("s3in", "**")
            },
        ),
        template(
            "json",
            "src",
            Matcher {
                content_type: Some("application/json".into()),
                ..Matcher::new("src", "**")
            },
        ),
    ] {
        orbit.put_template(&t).await.unwrap();
    }
    let matched = |endpoint: &str, path: &str| {
        let orbit = orbit.clone();
        let event = IncomingEvent {
            source: "manual".into(),
            dedup_key: None,
            file: Some(FileEvent {
                endpoint: endpoint.into(),
                path: path.into(),
                ..FileEvent::default()
            }),
            template: None,
            payload: json!({}),
        };
        async move {
            let mut names = orbit
                .ingest(&event)
                .await
                .unwrap()
                .record()
                .matched_templates
                .clone();
            names.sort();
            names
        }
    };
    assert_eq!(matched("s3in", "a.csv").await, ["csv", "finance"]);
    assert_eq!(matched("s3in", "b.csv").await, ["csv"]);
    // Gone before it was read: no details, so nothing that asks for them matches.
    assert!(matched("s3in", "gone.csv").await.is_empty());
    assert_eq!(matched("src", "x.json").await, ["json"]);
    assert!(matched("src", "y.pdf").await.is_empty());

    // What the source says is used as it is (no read): a file that says its type.
    let said = IncomingEvent {
        source: "manual".into(),
        dedup_key: None,
        file: Some(FileEvent {
            endpoint: "src".into(),
            path: "y.pdf".into(),
            content_type: Some("application/json".into()),
            ..FileEvent::default()
        }),
        template: None,
        payload: json!({}),
    };
    assert_eq!(
        orbit
            .ingest(&said)
            .await
            .unwrap()
            .record()
            .matched_templates,
        ["json"]
    );

    // A bad glob is refused naming the field.
    let bad = template(
        "bad",
        "s3in",
        Matcher {
            metadata: [("dept".to_string(), "[".to_string())].into(),
            ..Matcher::new("s3in", "**")
        },
    );
    let err = orbit.put_template(&bad).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("matcher.metadata.dept"), "{err}");
}
