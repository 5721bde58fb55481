//! The source runner, two nodes in one process on one SQLite store: each source runs on
//! exactly one node its placement admits; a pause stops it within a second and a resume
//! starts it again; an edit restarts it with the new spec; a delete removes it; a graceful
//! shutdown hands its sources to the other node at once; a source that cannot start is
//! `failing` with the reason, and runs once its folder exists; `limits.max_sources` bounds
//! how many there are.

mod common;

use common::{Kind, endpoint, local_root, orbit_options, sqlite_url};
use file_orbit::engine::{NodeIdentity, Orbit, SourceState, SourceStatus};
use file_orbit::events::runner::{SourceRunner, SourceRunnerOptions};
use file_orbit::events::source::Source;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn options() -> SourceRunnerOptions {
    SourceRunnerOptions {
        lease: Duration::from_secs(2),
        check_every: Duration::from_millis(100),
    }
}

async fn node(url: &str, name: &str, site: &str) -> (Orbit, SourceRunner) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let orbit = Orbit::open(file_orbit::engine::OrbitOptions {
        node: NodeIdentity {
            name: name.into(),
            labels: BTreeMap::from([("site".into(), site.into())]),
        },
        ..orbit_options(url)
    })
    .await
    .unwrap();
    let runner = orbit.start_source_runner(options()).unwrap();
    (orbit, runner)
}

/// Waits until `check` holds for source `name`'s status (at most `DEADLINE`); returns it
/// and how long it took.
async fn status_until(
    orbit: &Orbit,
    name: &str,
    check: impl Fn(&SourceStatus) -> bool,
) -> (SourceStatus, Duration) {
    let start = Instant::now();
    loop {
        let status = orbit.source_status(name).await.unwrap();
        if check(&status) {
            return (status, start.elapsed());
        }
        assert!(start.elapsed() < DEADLINE, "source {name}: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events_of(orbit: &Orbit, source: &str) -> Vec<String> {
    let mut paths: Vec<String> = orbit
        .store()
        .events(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.source_name.as_deref() == Some(source))
        .map(|event| event.payload["file"]["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

async fn events_until(orbit: &Orbit, source: &str, want: &[&str]) {
    let start = Instant::now();
    while events_of(orbit, source).await != want {
        assert!(
            start.elapsed() < DEADLINE,
            "{source}: {:?}\nevents: {:?}\nsources: {:?}",
            events_of(orbit, source).await,
            orbit.store().events(100).await.unwrap(),
            orbit.sources().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn watch(name: &str, endpoint: &str, placement: serde_json::Value) -> Source {
    Source::parse(
        Some(name),
        json!({"kind": "local_watch", "spec": {"endpoint": endpoint, "stable_for_ms": 0,
               "rescan_interval_ms": 200}, "placement": placement}),
    )
    .unwrap()
}

fn drop_file(root: &Path, name: &str) {
    std::fs::write(root.join(name), name.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_run_once_where_placed_and_follow_pause_edit_delete_and_shutdown() {
    let (url, _dir) = sqlite_url();
    let (a, runner_a) = node(&url, "node-a", "paris").await;
    let (_b, runner_b) = node(&url, "node-b", "lyon").await;
    let inbox = endpoint(Kind::Local, "inbox");
    a.put_endpoint(&inbox, 4).await.unwrap();
    let root = local_root(&inbox);

    // Placed by label on node b only: b runs it, a never does.
    a.put_source(&watch(
        "lyon-only",
        "inbox",
        json!({"labels": {"site": "lyon"}}),
    ))
    .await
    .unwrap();
    let (status, _) = status_until(&a, "lyon-only", |s| s.state == SourceState::Running).await;
    assert_eq!(status.owner_node.as_deref(), Some("node-b"));
    assert_eq!(status.owner.as_deref(), Some(runner_b.owner()));

    // Unplaced (on another folder): exactly one of the two runs it.
    let spare = endpoint(Kind::Local, "spare");
    a.put_endpoint(&spare, 4).await.unwrap();
    a.put_source(&watch("anywhere", "spare", json!({})))
        .await
        .unwrap();
    let (anywhere, _) = status_until(&a, "anywhere", |s| s.state == SourceState::Running).await;
    assert!(anywhere.owner_node.is_some());
    drop_file(&root, "one.txt");
    events_until(&a, "lyon-only", &["one.txt"]).await;

    // Pause: stopped within a second wherever it ran; nothing while paused; resume.
    // Paused through node a; it runs on node b.
    a.pause_source("lyon-only").await.unwrap();
    let (paused, took) = status_until(&a, "lyon-only", |s| {
        s.state == SourceState::Paused && s.owner.is_none()
    })
    .await;
    assert!(took < Duration::from_secs(1), "pause took {took:?}");
    assert_eq!(paused.counters.received, 1, "{paused:?}");
    a.pause_source("anywhere").await.unwrap();
    status_until(&a, "anywhere", |s| s.owner.is_none()).await;
    drop_file(&root, "two.txt");
    // A third source proves time passed with the watches paused: it sees two.txt.
    a.put_source(&watch("witness", "inbox", json!({"node": "node-a"})))
        .await
        .unwrap();
    events_until(&a, "witness", &["two.txt"]).await;
    assert_eq!(events_of(&a, "lyon-only").await, ["one.txt"]);
    // Paused first, so it is seen to stop before it goes (a delete stops it unseen).
    a.pause_source("witness").await.unwrap();
    status_until(&a, "witness", |s| s.owner.is_none()).await;
    a.delete_source("witness").await.unwrap();
    a.resume_source("lyon-only").await.unwrap();
    status_until(&a, "lyon-only", |s| s.state == SourceState::Running).await;

    // Edit: the owner restarts it with the new spec (a sub-folder), revision bumped.
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let mut edited = watch("lyon-only", "inbox", json!({"labels": {"site": "lyon"}}));
    if let file_orbit::events::source::SourceSpec::LocalWatch(spec) = &mut edited.spec {
        spec.sub_path = Some("sub".into());
    }
    a.put_source(&edited).await.unwrap();
    let (status, _) = status_until(&a, "lyon-only", |s| {
        s.revision == paused.revision + 1 && s.state == SourceState::Running
    })
    .await;
    assert_eq!(status.counters.received, 1, "counters survive a restart");
    drop_file(&root.join("sub"), "three.txt");
    events_until(&a, "lyon-only", &["one.txt", "sub/three.txt"]).await;

    // Delete: gone from the store (its runner stops it at its next check, as for a pause).
    a.delete_source("lyon-only").await.unwrap();
    assert!(a.source_status("lyon-only").await.is_err());

    // Shutdown hands over at once: "anywhere" moves to the other node.
    a.resume_source("anywhere").await.unwrap();
    let (running, _) = status_until(&a, "anywhere", |s| s.state == SourceState::Running).await;
    let (first, second) = if running.owner_node.as_deref() == Some("node-a") {
        (runner_a, runner_b)
    } else {
        (runner_b, runner_a)
    };
    let gone = running.owner_node.clone();
    first.shutdown().await;
    let (moved, took) = status_until(&a, "anywhere", |s| {
        s.state == SourceState::Running && s.owner_node != gone
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "handover took {took:?}: {moved:?}"
    );
    assert_eq!(moved.counters.ingested, anywhere.counters.ingested);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_start_is_failing_with_the_reason_until_it_can() {
    let (url, _dir) = sqlite_url();
    let (orbit, runner) = node(&url, "node-a", "paris").await;
    let inbox = endpoint(Kind::Local, "inbox");
    orbit.put_endpoint(&inbox, 4).await.unwrap();
    let root = local_root(&inbox);
    // Placed on another node, the missing folder is not checked here at put...
    let mut source = watch("late", "inbox", json!({"node": "node-b"}));
    if let file_orbit::events::source::SourceSpec::LocalWatch(spec) = &mut source.spec {
        spec.sub_path = Some("later".into());
    }
    orbit.put_source(&source).await.unwrap();
    // ... and then placed here, where it is missing: failing, with the path in the reason.
    source.placement.node = Some("node-a".into());
    let err = orbit.put_source(&source).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("spec.sub_path"), "{err}");
    // Once the folder exists it is accepted and runs here.
    std::fs::create_dir_all(root.join("later")).unwrap();
    orbit.put_source(&source).await.unwrap();
    status_until(&orbit, "late", |s| s.state == SourceState::Running).await;
    drop_file(&root.join("later"), "a.txt");
    events_until(&orbit, "late", &["later/a.txt"]).await;
    runner.shutdown().await;
    std::fs::remove_dir_all(root.join("later")).unwrap();
    let runner = orbit.start_source_runner(options()).unwrap();
    let (failing, _) = status_until(&orbit, "late", |s| s.state == SourceState::Failing).await;
    let reason = failing.last_error.clone().unwrap_or_default();
    assert!(reason.contains("later"), "{failing:?}");
    std::fs::create_dir_all(root.join("later")).unwrap();
    status_until(&orbit, "late", |s| s.state == SourceState::Running).await;
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_sources_is_bounded_by_the_limits() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(file_orbit::engine::OrbitOptions {
        limits: file_orbit::engine::Limits {
            max_sources: 2,
            ..Default::default()
        },
        ..orbit_options(&url)
    })
    .await
    .unwrap();
    let inbox = endpoint(Kind::Local, "inbox");
    orbit.put_endpoint(&inbox, 4).await.unwrap();
    for name in ["one", "two"] {
        orbit
            .put_source(&watch(name, "inbox", json!({})))
            .await
            .unwrap();
    }
    let err = orbit
        .put_source(&watch("three", "inbox", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("name"), "{err}");
    assert!(err.message.contains("limits.max_sources"), "{err}");
    // Replacing one at the limit is fine.
    orbit
        .put_source(&watch("two", "inbox", json!({"node": "elsewhere"})))
        .await
        .unwrap();
    assert_eq!(orbit.sources().await.unwrap().len(), 2);
}
