//! The store's network drops while workers run: the engine reaches the real PostgreSQL
//! test server through a TCP relay on loopback, and the test takes that line down for
//! longer than a lease, then restores it — once cut (every connection closed at once, as
//! when the server goes away) and once silent (connections held without a word, as when a
//! network drops packets). The same workers, never restarted, must finish the batch: every
//! job succeeded, every destination equals its source (moved sources gone), nothing left
//! leased or queued, the audit chain intact.

mod common;

use common::relay::{Relay, relayed_postgres};
use common::{Kind, endpoint, local_root, orbit_options, postgres_url};
use file_orbit::engine::{JobFilter, JobRequest, JobState, Orbit, RetryPolicy};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::{TransferMode, TransferSpec};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const JOBS: usize = 1_000;
/// The line goes down once this many jobs succeeded, so the batch is in full flow.
const DOWN_AFTER: i64 = 50;
/// The longest the batch may take once the network is back.
const WAIT: Duration = Duration::from_secs(90);

async fn counts(orbit: &Orbit) -> (i64, i64) {
    let counts = orbit.store().job_counts().await.unwrap();
    (counts.get(JobState::Succeeded), counts.unfinished())
}

fn content(index: usize) -> Vec<u8> {
    format!("outage {index}\n")
        .repeat(index % 40 + 1)
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_finish_the_batch_after_the_store_went_away_for_longer_than_a_lease() {
    batch_survives(Relay::cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_finish_the_batch_after_the_store_went_silent_for_longer_than_a_lease() {
    batch_survives(Relay::silence).await;
}

/// Runs the batch, takes the line down with `down` once it flows, restores it after a
/// lease and a second, and checks the outcome.
async fn batch_survives(down: fn(&Relay)) {
    // The engine's warnings (as RUST_LOG asks) show with a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let direct_url = postgres_url().await;
    let (relay, relayed_url) = relayed_postgres(&direct_url).await;

    // The engine under test goes through the relay; the test watches on its own line.
    let options = orbit_options(&relayed_url);
    let lease = options.lease;
    let orbit = Orbit::open(options).await.unwrap();
    let watcher = Orbit::open(orbit_options(&direct_url)).await.unwrap();
    let source = endpoint(Kind::Local, "src");
    let destination = endpoint(Kind::Local, "dst");
    orbit.put_endpoint(&source, 16).await.unwrap();
    orbit.put_endpoint(&destination, 16).await.unwrap();
    let (source_root, destination_root) = (local_root(&source), local_root(&destination));
    for index in 0..JOBS {
        let name = format!("f{index:04}.txt");
        std::fs::write(source_root.join(&name), content(index)).unwrap();
        // Odd jobs move: a move that ran but whose success was not recorded would run
        // again and fail on its missing source.
        let mut spec = TransferSpec::file(
            "src",
            &name,
            "dst",
            PathTemplate::parse("{filename}").unwrap(),
        );
        if index % 2 == 1 {
            spec.mode = TransferMode::Move;
        }
        let mut request = JobRequest::new(spec);
        request.retry = RetryPolicy {
            max_attempts: 20,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        orbit.submit(&request).await.unwrap();
    }

    let workers = orbit.start_workers(4);
    let deadline = Instant::now() + WAIT;
    while counts(&watcher).await.0 < DOWN_AFTER {
        assert!(Instant::now() < deadline, "the batch did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    down(&relay);
    let (at_down, _) = counts(&watcher).await;
    tokio::time::sleep(lease + Duration::from_secs(1)).await;
    let (during, _) = counts(&watcher).await;
    relay.restore();
    let restored = Instant::now();
    println!(
        "down at {at_down} of {JOBS} succeeded, {during} when restored; {} connections severed",
        relay.severed.load(Ordering::Relaxed)
    );
    assert!(
        relay.severed.load(Ordering::Relaxed) > 0,
        "taking the line down severed no open connection"
    );
    assert!(
        (during as usize) < JOBS,
        "the batch was over before the network came back"
    );

    loop {
        let (succeeded, unfinished) = counts(&watcher).await;
        if unfinished == 0 {
            let dead = JobFilter {
                state: Some(JobState::Dead),
                limit: 10,
                offset: 0,
                before_id: None,
                ..JobFilter::default()
            };
            let dead: Vec<_> = watcher
                .jobs(&dead)
                .await
                .unwrap()
                .into_iter()
                .map(|job| (job.id, job.spec.mode, job.last_error))
                .collect();
            assert!(dead.is_empty(), "dead jobs: {dead:?}");
            assert_eq!(succeeded as usize, JOBS);
            println!("all done {:?} after the restore", restored.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the outage: {succeeded} succeeded, {unfinished} unfinished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.shutdown().await;
    for index in 0..JOBS {
        let name = format!("f{index:04}.txt");
        let copied = std::fs::read(destination_root.join(&name)).unwrap();
        assert_eq!(copied, content(index), "{name}");
        assert_eq!(source_root.join(&name).exists(), index % 2 == 0, "{name}");
    }
    assert_eq!(watcher.verify_audit_log().await.unwrap(), None);
}
