//! For the S3 → SQS → destination benches: 1 KiB objects written to a staging folder and
//! uploaded to a moto bucket with rclone, whether one has arrived at a local destination,
//! the one-at-a-time latency phase (and its table) and the burst, and the benches' numeric
//! env settings.

use super::jobs::{ms, percentile};
use file_orbit::endpoint::Endpoint;
use file_orbit::rclone::Rclone;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The size of every object.
pub const OBJECT_BYTES: usize = 1024;

/// Uploads objects from `staging` to the root of one S3 endpoint.
pub struct Uploader {
    rclone: &'static Rclone,
    bucket_fs: Value,
    staging: PathBuf,
}

impl Uploader {
    pub fn new(rclone: &'static Rclone, s3: &Endpoint, staging: PathBuf) -> Uploader {
        std::fs::create_dir_all(&staging).unwrap();
        let bucket_fs = json!(s3.to_rclone(rclone, "").unwrap());
        Uploader {
            rclone,
            bucket_fs,
            staging,
        }
    }

    /// Uploads a 1 KiB object `name` (the future returns once it is in the bucket).
    pub fn upload(&self, name: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        std::fs::write(self.staging.join(name), [b'x'; OBJECT_BYTES]).unwrap();
        let input = json!({
            "srcFs": self.staging.display().to_string(), "srcRemote": name,
            "dstFs": self.bucket_fs, "dstRemote": name,
        });
        let rclone = self.rclone;
        async move {
            rclone
                .rpc_async("operations/copyfile", input)
                .await
                .unwrap();
        }
    }
}

/// The object is at `path` with its full size.
pub fn arrived(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.len() == OBJECT_BYTES as u64)
}

/// Uploads `objects` objects (`lat-N.bin`) one at a time, each once the previous one is
/// at `dst`; returns the latencies (upload done → file at `dst`) and the upload times,
/// both sorted. Panics after `timeout`.
pub async fn one_at_a_time(
    uploader: &Uploader,
    dst: &Path,
    objects: usize,
    timeout: Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut latencies = Vec::with_capacity(objects);
    let mut uploads = Vec::with_capacity(objects);
    let phase = Instant::now();
    for index in 0..objects {
        let name = format!("lat-{index}.bin");
        let start = Instant::now();
        uploader.upload(&name).await;
        let uploaded = Instant::now();
        let target = dst.join(&name);
        while !arrived(&target) {
            assert!(
                phase.elapsed() < timeout,
                "latency phase timed out at {index}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        uploads.push(uploaded - start);
        latencies.push(uploaded.elapsed());
    }
    latencies.sort();
    uploads.sort();
    (latencies, uploads)
}

/// Prints the latency phase's table: `uploads` and `latencies` (both sorted) of `objects`
/// objects, under the heading `title`.
pub fn print_latencies(title: &str, objects: usize, uploads: &[Duration], latencies: &[Duration]) {
    println!("\n## {title}\n");
    println!("| phase | objects | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|---|");
    for (what, sorted) in [
        ("upload (rclone → moto)", uploads),
        ("uploaded → file at destination", latencies),
    ] {
        println!(
            "| {what} | {objects} | {} | {} | {} | {} |",
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.9)),
            ms(percentile(sorted, 0.99)),
            ms(*sorted.last().unwrap_or(&Duration::ZERO)),
        );
    }
}

/// Uploads `burst` objects (`burst-N.bin`), 16 at a time, and waits until all are at
/// `dst`; returns when the uploads were done and when the last file arrived, both counted
/// from `start`. Panics after `timeout`.
pub async fn burst_of(
    uploader: &Uploader,
    dst: &Path,
    burst: usize,
    start: Instant,
    timeout: Duration,
) -> (Duration, Duration) {
    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}.bin")).collect();
    for chunk in names.chunks(16) {
        let mut uploads = tokio::task::JoinSet::new();
        for name in chunk {
            uploads.spawn(uploader.upload(name));
        }
        uploads.join_all().await;
    }
    let uploaded = start.elapsed();
    let mut left: Vec<PathBuf> = names.iter().map(|name| dst.join(name)).collect();
    while !left.is_empty() {
        assert!(
            start.elapsed() < timeout,
            "burst timed out with {} files missing",
            left.len()
        );
        left.retain(|path| !arrived(path));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (uploaded, start.elapsed())
}

/// The sizes of an S3 → SQS bench run, from the environment: `FILE_ORBIT_BENCH_SQS_OBJECTS`
/// (200, one at a time), `FILE_ORBIT_BENCH_SQS_BURST` (2,000; 0 skips the burst),
/// `FILE_ORBIT_BENCH_SQS_WORKERS` (4), `FILE_ORBIT_BENCH_TIMEOUT_S` (900, per phase).
pub struct RunSize {
    pub objects: usize,
    pub burst: usize,
    pub workers: usize,
    pub timeout: Duration,
}

impl RunSize {
    pub fn from_env() -> RunSize {
        RunSize {
            objects: number("FILE_ORBIT_BENCH_SQS_OBJECTS", 200),
            burst: number("FILE_ORBIT_BENCH_SQS_BURST", 2000),
            workers: number("FILE_ORBIT_BENCH_SQS_WORKERS", 4),
            timeout: Duration::from_secs(number("FILE_ORBIT_BENCH_TIMEOUT_S", 900) as u64),
        }
    }
}

/// The number in env `name`, else `default`.
fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}"))
        })
        .unwrap_or(default)
}
