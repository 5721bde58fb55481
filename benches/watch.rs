//! The local folder watch end to end: a file closed in a watched local endpoint → event
//! stored → job leased by an in-process worker → rclone copies it to a second local
//! endpoint. A template mirrors every file (`**`, `{relpath}`, verify off); SQLite store in
//! a temp dir on disk (next to the build, never a tmpfs); 4 in-process workers.
//!
//! 1. Latency, one file at a time (4 KiB each), the stability window at its minimum
//!    (`stable_for = 0`: hand-over on close-write): from the writer's `close` returning to the
//!    file present with its full size at the destination (polled every 0.5 ms), p50/p90/p99,
//!    plus the stages from the store's millisecond timestamps (close → event stored → first
//!    attempt started → job finished). Once per worker `poll_interval`: 200 ms is
//!    `OrbitOptions::default()`, 20 ms what the tests use, 1 ms approximates workers woken
//!    on submit.
//! 2. Burst: N small files (1 KiB, 4 writer threads, 16 existing directories) as fast as
//!    they can be written; time from the first write to the Nth stored event and to the Nth
//!    succeeded job (from the store's timestamps), as events/s and jobs/s.
//!
//!   cargo bench --bench watch
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_WATCH_FILES=200          latency: files per poll interval
//!   FILE_ORBIT_BENCH_WATCH_POLL_MS=200,20,1   latency: workers' poll intervals
//!   FILE_ORBIT_BENCH_WATCH_BURST=10000        burst: files (0 skips it)
//!   FILE_ORBIT_BENCH_WATCH_BURST_POLL_MS=200  burst: workers' poll interval
//!   FILE_ORBIT_BENCH_WATCH_WORKERS=4          in-process workers (the burst also runs with 0)
//!   FILE_ORBIT_BENCH_TIMEOUT_S=900            per phase
//!
//! Goals (issue): p50 ≤ 50 ms, p99 ≤ 200 ms.

use file_orbit::Secret;
use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{JobState, Matcher, Orbit, OrbitOptions, TransferTemplate};
use file_orbit::events::local::LocalWatch;
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Bench {
    orbit: Orbit,
    url: String,
    inbox: PathBuf,
    archive: PathBuf,
    _dir: tempfile::TempDir,
}

async fn bench_orbit(poll: Duration) -> Bench {
    let dir = tempfile::Builder::new()
        .prefix("fo-bench-watch-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("orbit.db").display());
    let orbit = Orbit::open(OrbitOptions {
        store_url: url.clone(),
        master_key: Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")),
        poll_interval: poll,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut roots = Vec::new();
    for name in ["inbox", "archive"] {
        let root = dir.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        let endpoint = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: name.into(),
            config: EndpointConfig::Local(LocalConfig { root: root.clone() }),
        };
        orbit.put_endpoint(&endpoint, 16).await.unwrap();
        roots.push(root);
    }
    orbit
        .put_template(&TransferTemplate::new(
            "mirror",
            Matcher::new("inbox", "**"),
            TransferSpec::file(
                "inbox",
                "",
                "archive",
                PathTemplate::parse("{relpath}").unwrap(),
            ),
        ))
        .await
        .unwrap();
    let archive = roots.pop().unwrap();
    let inbox = roots.pop().unwrap();
    Bench {
        orbit,
        url,
        inbox,
        archive,
        _dir: dir,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values
}

/// Waits (polling every 0.5 ms) until `path` exists with `size` bytes.
fn wait_for_file(path: &Path, size: u64, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::fs::metadata(path).is_ok_and(|m| m.len() == size) {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

struct Stages {
    close_to_event: Vec<f64>,
    event_to_start: Vec<f64>,
    start_to_finish: Vec<f64>,
}

/// Per file (by relative path): event created_at, first attempt started_at, finished_at.
async fn stages(url: &str, closes: &[(String, i64)]) -> Stages {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT json_extract(e.payload, '$.file.path'), e.created_at, MIN(a.started_at), \
                j.finished_at \
         FROM events e JOIN jobs j ON j.id = json_extract(e.job_ids, '$[0]') \
         JOIN job_attempts a ON a.job_id = j.id \
         WHERE e.source = 'local-watch' AND j.finished_at IS NOT NULL GROUP BY e.id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let by_path: std::collections::HashMap<String, (i64, i64, i64)> = rows
        .into_iter()
        .map(|(path, event, start, finish)| (path, (event, start, finish)))
        .collect();
    let mut stages = Stages {
        close_to_event: Vec::new(),
        event_to_start: Vec::new(),
        start_to_finish: Vec::new(),
    };
    for (path, closed) in closes {
        if let Some((event, start, finish)) = by_path.get(path) {
            stages.close_to_event.push((event - closed) as f64);
            stages.event_to_start.push((start - event) as f64);
            stages.start_to_finish.push((finish - start) as f64);
        }
    }
    stages
}

struct LatencyRow {
    poll_ms: u64,
    workers: usize,
    files: usize,
    arrived: usize,
    latency: Vec<f64>,
    stages: Stages,
}

async fn latency(poll_ms: u64, files: usize, workers: usize, timeout: Duration) -> LatencyRow {
    let bench = bench_orbit(Duration::from_millis(poll_ms)).await;
    let worker_count = workers;
    let workers = bench.orbit.start_workers(workers);
    let watcher = bench
        .orbit
        .start_local_watch(LocalWatch {
            stable_for: Duration::ZERO,
            ..LocalWatch::new("inbox")
        })
        .await
        .unwrap();
    let body = vec![b'x'; 4096];
    let (inbox, archive) = (bench.inbox.clone(), bench.archive.clone());
    let measured = tokio::task::spawn_blocking(move || {
        let mut latency = Vec::new();
        let mut closes = Vec::new();
        // A warm-up file first (rclone's first copy, the store's first statements).
        for index in 0..=files {
            let rel = format!("lat/f{index:04}.bin");
            if index == 0 {
                std::fs::create_dir_all(inbox.join("lat")).unwrap();
            }
            let mut file = std::fs::File::create(inbox.join(&rel)).unwrap();
            file.write_all(&body).unwrap();
            drop(file);
            let closed = Instant::now();
            let closed_ms = now_ms();
            let Some(arrived) = wait_for_file(&archive.join(&rel), body.len() as u64, timeout)
            else {
                eprintln!("{rel} did not arrive within {timeout:?}");
                break;
            };
            if index > 0 {
                latency.push((arrived - closed).as_secs_f64() * 1000.0);
                closes.push((rel, closed_ms));
            }
        }
        (latency, closes)
    });
    let (latency, closes) = measured.await.unwrap();
    // The last job's finish is recorded just after its file arrives.
    let last_done = async {
        loop {
            let done = bench
                .orbit
                .store()
                .job_counts()
                .await
                .unwrap()
                .get(JobState::Succeeded) as usize
                > closes.len();
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), last_done).await;
    watcher.shutdown().await;
    workers.shutdown().await;
    let stages = stages(&bench.url, &closes).await;
    LatencyRow {
        poll_ms,
        workers: worker_count,
        files,
        arrived: latency.len(),
        latency,
        stages,
    }
}

struct BurstRow {
    files: usize,
    workers: usize,
    poll_ms: u64,
    write_s: f64,
    events: usize,
    events_s: Option<f64>,
    jobs: usize,
    jobs_s: Option<f64>,
    overflows: u64,
    by_scan: usize,
}

async fn burst(files: usize, poll_ms: u64, workers: usize, timeout: Duration) -> BurstRow {
    const THREADS: usize = 4;
    const DIRS: usize = 16;
    let bench = bench_orbit(Duration::from_millis(poll_ms)).await;
    for dir in 0..DIRS {
        std::fs::create_dir_all(bench.inbox.join(format!("b{dir:02}"))).unwrap();
    }
    let worker_count = workers;
    let workers = bench.orbit.start_workers(workers);
    let watcher = bench
        .orbit
        .start_local_watch(LocalWatch {
            stable_for: Duration::ZERO,
            ..LocalWatch::new("inbox")
        })
        .await
        .unwrap();
    let first_write = now_ms();
    let started = Instant::now();
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let inbox = bench.inbox.clone();
            std::thread::spawn(move || {
                let body = vec![b'b'; 1024];
                for index in (thread..files).step_by(THREADS) {
                    let rel = format!("b{:02}/f{index:05}.bin", index % DIRS);
                    std::fs::write(inbox.join(rel), &body).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let write_s = started.elapsed().as_secs_f64();

    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&bench.url).await.unwrap();
    let deadline = Instant::now() + timeout;
    let (mut events, mut events_at, mut jobs, mut jobs_at) = (0usize, None, 0usize, None);
    while Instant::now() < deadline {
        let (count, last): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MAX(created_at) FROM events WHERE source = 'local-watch'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        events = count as usize;
        if events >= files && events_at.is_none() {
            events_at = last;
        }
        let (count, last): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(finished_at) FROM jobs WHERE state = 'succeeded'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        jobs = count as usize;
        if jobs >= files {
            jobs_at = last;
            break;
        }
        if worker_count == 0 && events_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (by_scan,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE json_extract(payload, '$.payload.trigger') = 'stable'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let stats = watcher.stats();
    watcher.shutdown().await;
    workers.shutdown().await;
    let secs = |at: Option<i64>| at.map(|at| (at - first_write).max(1) as f64 / 1000.0);
    BurstRow {
        files,
        workers: worker_count,
        poll_ms,
        write_s,
        events,
        events_s: secs(events_at),
        jobs,
        jobs_s: secs(jobs_at),
        overflows: stats.overflows,
        by_scan: by_scan as usize,
    }
}

/// The store's ceiling: `Orbit::ingest` called directly, 4 at a time.
async fn ingest_only(events: usize) -> (f64, usize) {
    use file_orbit::engine::FileEvent;
    use file_orbit::events::IncomingEvent;
    const TASKS: usize = 4;
    let bench = bench_orbit(Duration::from_millis(200)).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let orbit = bench.orbit.clone();
            tokio::spawn(async move {
                for index in (task..events).step_by(TASKS) {
                    let path = format!("i/f{index:05}.bin");
                    let event = IncomingEvent {
                        source: "local-watch".into(),
                        dedup_key: Some(format!("local:inbox:{path}:1024:{index}")),
                        file: Some(FileEvent {
                            endpoint: "inbox".into(),
                            path: path.clone(),
                            size: Some(1024),
                            modified: None,
                            ..FileEvent::default()
                        }),
                        template: None,
                        payload: serde_json::json!({"path": path}),
                    };
                    orbit.ingest(&event).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (started.elapsed().as_secs_f64(), TASKS)
}

fn main() {
    let files: usize = env_or("FILE_ORBIT_BENCH_WATCH_FILES", 200);
    let polls = env_list("FILE_ORBIT_BENCH_WATCH_POLL_MS", "200,20,1");
    let burst_files: usize = env_or("FILE_ORBIT_BENCH_WATCH_BURST", 10_000);
    let burst_poll: u64 = env_or("FILE_ORBIT_BENCH_WATCH_BURST_POLL_MS", 200);
    let timeout = Duration::from_secs(env_or("FILE_ORBIT_BENCH_TIMEOUT_S", 900));
    let workers: usize = env_or("FILE_ORBIT_BENCH_WATCH_WORKERS", 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut rows = Vec::new();
    for poll in polls {
        eprintln!("latency: poll_interval {poll} ms, {files} files");
        rows.push(runtime.block_on(latency(poll, files, workers, timeout)));
    }
    let fmt = |values: &[f64]| {
        let sorted = sorted(values.to_vec());
        format!(
            "{:.1} / {:.1} / {:.1}",
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0)
        )
    };
    println!("\n### Local watch: file closed → present at a local destination (stable_for = 0)\n");
    println!(
        "| workers (poll_interval) | files | close → arrival p50 / p90 / p99 (ms) | max (ms) | close → event stored | event → attempt started | attempt → job finished |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let max = row.latency.iter().cloned().fold(f64::NAN, f64::max);
        println!(
            "| {} ({} ms) | {}/{} | {} | {:.1} | {} | {} | {} |",
            row.workers,
            row.poll_ms,
            row.arrived,
            row.files,
            fmt(&row.latency),
            max,
            fmt(&row.stages.close_to_event),
            fmt(&row.stages.event_to_start),
            fmt(&row.stages.start_to_finish),
        );
    }
    println!("\nstages: p50 / p90 / p99 in ms, from the store's millisecond timestamps");
    println!("goal: p50 ≤ 50 ms, p99 ≤ 200 ms");

    if burst_files > 0 {
        let mut rows = Vec::new();
        for workers in [workers, 0] {
            eprintln!("burst: {burst_files} files, {workers} workers");
            rows.push(runtime.block_on(burst(burst_files, burst_poll, workers, timeout)));
        }
        println!("\n### Local watch: burst of {burst_files} × 1 KiB files\n");
        println!(
            "| workers (poll_interval) | writing | first write → last event stored | first write → last job succeeded | events / jobs | overflows | found by scan |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in &rows {
            let show = |s: Option<f64>| match s {
                Some(s) => format!("{s:.1} s ({:.0}/s)", row.files as f64 / s),
                None if row.workers == 0 => "—".into(),
                None => "timed out".into(),
            };
            println!(
                "| {} ({} ms) | {:.1} s | {} | {} | {} / {} | {} | {} |",
                row.workers,
                row.poll_ms,
                row.write_s,
                show(row.events_s),
                show(row.jobs_s),
                row.events,
                row.jobs,
                row.overflows,
                row.by_scan,
            );
        }
        let ingests = 2000;
        eprintln!("ingest alone: {ingests} events");
        let (secs, tasks) = runtime.block_on(ingest_only(ingests));
        println!(
            "\n`Orbit::ingest` alone, no watch, no workers ({tasks} concurrent callers, as the \
             watch runs them): {ingests} events in {secs:.1} s ({:.0}/s)",
            ingests as f64 / secs
        );
    }
}
