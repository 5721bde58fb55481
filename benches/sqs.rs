//! S3 → SQS → file at the destination, on the real moto server: an object uploaded to a
//! bucket whose notifications go to an SQS queue → `Orbit::start_sqs_source` receives the
//! record (long polling) → event stored → template → job leased by an in-process worker →
//! rclone copies the object to a local endpoint. SQLite store in a temp dir; the consumer
//! and the workers run in this process (the server does not run sources yet: issue #13).
//!
//! 1. Latency, one object at a time (1 KiB): from the upload returning (the object is in
//!    the bucket) to the file present with its full size at the destination (polled every
//!    millisecond); p50/p90/p99/max.
//! 2. Burst: N objects uploaded 16 at a time; time from the first upload to the last file
//!    at the destination, and the counts: files arrived, jobs, events (nothing lost,
//!    nothing doubled).
//!
//!   source target/test-servers/env && cargo bench --bench sqs
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_SQS_OBJECTS=200   latency: objects
//!   FILE_ORBIT_BENCH_SQS_BURST=2000    burst: objects (0 skips it)
//!   FILE_ORBIT_BENCH_SQS_WORKERS=4     in-process workers
//!   FILE_ORBIT_BENCH_TIMEOUT_S=900     per phase
//!
//! Goal (issue #13): p50 ≤ 500 ms on moto, nothing lost, nothing doubled.

// The test servers' settings and endpoints, as the integration tests read them.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/jobs.rs"]
#[allow(dead_code)] // the job-store benches' helpers
mod jobs;
#[path = "support/uploads.rs"]
mod uploads;

use common::moto::{moto_sqs_source, notified_queue};
use common::{moto_s3, unique};
use file_orbit::Secret;
use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{JobState, Matcher, Orbit, OrbitOptions, TransferTemplate};
use file_orbit::events::sqs::{SqsSource, SqsStats};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uploads::{RunSize, Uploader, burst_of, one_at_a_time, print_latencies};

struct Bench {
    orbit: Orbit,
    uploader: Uploader,
    dst: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// An orbit with the S3 endpoint `s3in` (a fresh bucket notifying a fresh queue), the
    /// local endpoint `dst` and a template copying every object there; the SQS source.
    async fn new() -> (Bench, SqsSource) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let orbit = Orbit::open(OrbitOptions {
            store_url: format!("sqlite://{}", dir.path().join("orbit.db").display()),
            master_key: Some(Secret::new(
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string(),
            )),
            poll_interval: Duration::from_millis(20),
            ..OrbitOptions::default()
        })
        .await
        .unwrap();
        let bucket = unique("fo-bench-sqs");
        let s3 = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "s3in".into(),
            config: EndpointConfig::S3(moto_s3(&bucket, "")),
        };
        let rclone = orbit.rclone();
        rclone
            .rpc(
                "operations/mkdir",
                &json!({"fs": s3.to_rclone(rclone, "").unwrap(), "remote": ""}),
            )
            .unwrap();
        orbit.put_endpoint(&s3, 64).await.unwrap();
        let dst = dir.path().join("dst");
        std::fs::create_dir_all(&dst).unwrap();
        let local = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "dst".into(),
            config: EndpointConfig::Local(LocalConfig { root: dst.clone() }),
        };
        orbit.put_endpoint(&local, 64).await.unwrap();
        let spec = TransferSpec {
            verify: false,
            ..TransferSpec::file(
                "s3in",
                "",
                "dst",
                PathTemplate::parse("{filename}").unwrap(),
            )
        };
        orbit
            .put_template(&TransferTemplate::new(
                "all",
                Matcher::new("s3in", "**"),
                spec,
            ))
            .await
            .unwrap();

        let mut source = moto_sqs_source("s3in");
        source.wait_time_seconds = 20;
        let sqs = source.client().await;
        source.queue_url = notified_queue(&sqs, &bucket, &bucket, &[]).await;
        let bench = Bench {
            orbit,
            uploader: Uploader::new(rclone, &s3, dir.path().join("staging")),
            dst,
            _dir: dir,
        };
        (bench, source)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let RunSize {
        objects,
        burst,
        workers,
        timeout,
    } = RunSize::from_env();

    // 1. Latency, one object at a time.
    let (bench, source) = Bench::new().await;
    let consumer = bench.orbit.start_sqs_source(source).await.unwrap();
    let pool = bench.orbit.start_workers(workers);
    let (latencies, uploads) = one_at_a_time(&bench.uploader, &bench.dst, objects, timeout).await;
    let stats: SqsStats = consumer.stats();
    consumer.shutdown().await;
    pool.shutdown().await;

    print_latencies(
        &format!("S3 upload → SQS → file at the destination (moto, {workers} workers)"),
        objects,
        &uploads,
        &latencies,
    );
    println!("\nconsumer: {stats:?}");
    println!("goal: p50 ≤ 500 ms");

    // 2. Burst.
    if burst == 0 {
        return;
    }
    let (bench, source) = Bench::new().await;
    let consumer = bench.orbit.start_sqs_source(source).await.unwrap();
    let pool = bench.orbit.start_workers(workers);
    let start = Instant::now();
    let (uploaded, all_arrived) =
        burst_of(&bench.uploader, &bench.dst, burst, start, timeout).await;
    let stats = consumer.stats();
    consumer.shutdown().await;
    pool.shutdown().await;
    let counts = bench.orbit.store().job_counts().await.unwrap();
    let (jobs, succeeded) = (counts.total() as usize, counts.get(JobState::Succeeded));
    let files = std::fs::read_dir(&bench.dst).unwrap().count();
    println!("\n## Burst: {burst} objects uploaded 16 at a time\n");
    println!(
        "| objects | uploads done (s) | last file at destination (s) | files/s | files | jobs | succeeded |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {burst} | {:.1} | {:.1} | {:.0} | {files} | {} | {succeeded} |",
        uploaded.as_secs_f64(),
        all_arrived.as_secs_f64(),
        burst as f64 / all_arrived.as_secs_f64(),
        jobs,
    );
    println!("\nconsumer: {stats:?}");
    assert_eq!((files, jobs), (burst, burst), "lost or doubled");
}
