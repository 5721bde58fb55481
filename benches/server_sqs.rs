//! S3 → SQS → file at the destination through the server: the example server process
//! (started as a user starts it, SQLite store in its data directory, 4 workers) with an
//! SQS source and a template declared in its TOML (`[[sources]]`, `[[templates]]`); an
//! object uploaded to a moto bucket whose notifications go to the source's queue → the
//! server's source runner receives the record (long polling, 20 s) → event → job → one of
//! its workers copies the object to a local endpoint. The same pipeline as
//! `benches/sqs.rs`, which runs it in-process through the library.
//!
//! 1. Latency, one object at a time (1 KiB): from the upload returning (the object is in
//!    the bucket) to the file present with its full size at the destination (polled every
//!    millisecond); p50/p90/p99/max.
//! 2. Burst: N objects uploaded 16 at a time (a fresh server, bucket and queue); time from
//!    the first upload to the last file at the destination, and the counts through the
//!    API: files arrived, jobs (all succeeded), the source's counters (nothing lost,
//!    nothing doubled).
//!
//!   source target/test-servers/env
//!   cargo build --release --features server --example server   # the server it starts
//!   cargo bench --features server --bench server_sqs
//!
//! Settings (env, the names `benches/sqs.rs` reads):
//!   FILE_ORBIT_BENCH_SQS_OBJECTS=200   latency: objects
//!   FILE_ORBIT_BENCH_SQS_BURST=2000    burst: objects (0 skips it)
//!   FILE_ORBIT_BENCH_SQS_WORKERS=4     the server's workers
//!   FILE_ORBIT_BENCH_TIMEOUT_S=900     per phase
//!
//! Goal (issue #13): p50 ≤ 500 ms on moto, nothing lost, nothing doubled.

// The test servers' settings, endpoints and the server process, as the tests use them.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/jobs.rs"]
#[allow(dead_code)] // the job-store benches' helpers
mod jobs;
#[path = "support/uploads.rs"]
mod uploads;

use common::moto::{moto_s3_endpoint_toml, moto_sqs_source_toml, notified_bucket};
use common::process::ServerProcess;
use common::{env, rclone};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uploads::{RunSize, Uploader, burst_of, one_at_a_time, print_latencies};

/// The source's name in the TOML.
const SOURCE: &str = "uploads";
/// The environment variable the TOML names for moto's secret key.
const SECRET_ENV: &str = "FO_BENCH_MOTO_SECRET";

/// A server process running an SQS source of a fresh bucket's notifications and a
/// template copying every object to `dst`.
struct Bench {
    server: ServerProcess,
    uploader: Uploader,
    dst: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(workers: usize, timeout: Duration) -> Bench {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (s3, bucket, queue_url) = notified_bucket("fo-bench-server-sqs", "s3in").await;
        let (data, dst) = (dir.path().join("data"), dir.path().join("dst"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        let config = format!(
            r#"workers = {workers}

[node]
name = "bench"

{s3}
[[endpoints]]
name = "dst"
type = "local"
root = "{dst}"
max_concurrent = 64

[[templates]]
name = "all"
matcher = {{ source = "s3in", path_glob = "**" }}
spec = {{ source = "s3in", source_path = "", destination = "dst", destination_path = "{{filename}}", scope = "file", verify = false }}

{source}"#,
            dst = dst.display(),
            s3 = moto_s3_endpoint_toml("s3in", &bucket, SECRET_ENV, 64),
            source = moto_sqs_source_toml(
                SOURCE,
                &queue_url,
                "s3in",
                SECRET_ENV,
                "wait_time_seconds = 20"
            ),
        );
        let secret = env("MOTO_SECRET_ACCESS_KEY");
        let server = ServerProcess::start(&data, &config, &[(SECRET_ENV, secret.as_str())]);
        // The source is running before the first upload.
        let started = Instant::now();
        while source_status(&server).await["state"] != "running" {
            assert!(started.elapsed() < timeout, "the source did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Bench {
            server,
            uploader: Uploader::new(rclone(), &s3, dir.path().join("staging")),
            dst,
            _dir: dir,
        }
    }

    /// Every job through `GET /api/v1/jobs` (pages of 1,000): (jobs, succeeded).
    async fn job_counts(&self) -> (usize, usize) {
        let (mut jobs, mut succeeded) = (0, 0);
        let mut path = "/api/v1/jobs?limit=1000".to_string();
        loop {
            let reply = self.server.api.get(&path, &self.server.admin).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = reply.json();
            let page = page.as_array().unwrap();
            jobs += page.len();
            succeeded += page
                .iter()
                .filter(|job| job["state"] == "succeeded")
                .count();
            match page.last() {
                Some(last) if page.len() == 1000 => {
                    path = format!("/api/v1/jobs?limit=1000&before_id={}", last["id"]);
                }
                _ => return (jobs, succeeded),
            }
        }
    }
}

/// The source as `GET /api/v1/sources/{name}` shows it.
async fn source_status(server: &ServerProcess) -> Value {
    let reply = server
        .api
        .get(&format!("/api/v1/sources/{SOURCE}"), &server.admin)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The source's counters once it reports `objects` ingested (its node writes them each
/// second), or as they are after 5 s.
async fn reported_counters(server: &ServerProcess, objects: usize) -> Value {
    let asked = Instant::now();
    loop {
        let counters = source_status(server).await["counters"].clone();
        if counters["ingested"].as_u64() >= Some(objects as u64)
            || asked.elapsed() > Duration::from_secs(5)
        {
            return counters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
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
    let bench = Bench::start(workers, timeout).await;
    let (latencies, uploads) = one_at_a_time(&bench.uploader, &bench.dst, objects, timeout).await;
    let (jobs, succeeded) = bench.job_counts().await;
    let counters = reported_counters(&bench.server, objects).await;
    drop(bench);

    print_latencies(
        &format!(
            "S3 upload → SQS → file at the destination through the server process (moto, {workers} workers)"
        ),
        objects,
        &uploads,
        &latencies,
    );
    println!("\njobs: {jobs} ({succeeded} succeeded); source counters: {counters}");
    println!("goal: p50 ≤ 500 ms");
    assert_eq!(jobs, objects, "lost or doubled");
    assert_eq!(counters["ingested"], objects, "events ingested");

    // 2. Burst.
    if burst == 0 {
        return;
    }
    let bench = Bench::start(workers, timeout).await;
    let start = Instant::now();
    let (uploaded, all_arrived) =
        burst_of(&bench.uploader, &bench.dst, burst, start, timeout).await;
    // A job's row says succeeded a moment after its file is in place.
    let (mut jobs, mut succeeded) = bench.job_counts().await;
    while succeeded < jobs {
        assert!(
            start.elapsed() < timeout,
            "{succeeded} of {jobs} jobs succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        (jobs, succeeded) = bench.job_counts().await;
    }
    let counters = reported_counters(&bench.server, burst).await;
    let files = files_in(&bench.dst);
    println!("\n## Burst through the server process: {burst} objects uploaded 16 at a time\n");
    println!(
        "| objects | uploads done (s) | last file at destination (s) | files/s | files | jobs | succeeded |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {burst} | {:.1} | {:.1} | {:.0} | {files} | {jobs} | {succeeded} |",
        uploaded.as_secs_f64(),
        all_arrived.as_secs_f64(),
        burst as f64 / all_arrived.as_secs_f64(),
    );
    println!("\nsource counters: {counters}");
    assert_eq!((files, jobs), (burst, burst), "lost or doubled");
    assert_eq!(counters["ingested"], burst, "events ingested");
}
