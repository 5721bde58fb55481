//! The server (no workers of its own) and two worker processes share one PostgreSQL store
//! and split a batch of 500 transfers submitted over HTTP; one worker process is killed
//! with SIGKILL mid-batch. Every job succeeds exactly once, both processes ran jobs, the
//! files equal their sources, the audit chain is intact, and the worker's JSON log file,
//! read through `GET /api/v1/logs`, shows the jobs it ran.
//!
//! A worker process is this test binary run again with `CHILD_ENV` set: it runs
//! `file_orbit::worker::run` (what `examples/worker.rs` runs) until killed or until its
//! parent goes away (its stdin closes).

mod common;

use common::server::TestServer;
use common::{Kind, endpoint, local_root, orbit_options, postgres_url};
use file_orbit::engine::{JobFilter, JobRequest, JobState, Orbit, RetryPolicy};
use file_orbit::path_template::PathTemplate;
use file_orbit::server::{RateLimit, ServerConfig};
use file_orbit::service::logs::{self, LogConfig, LogFormat};
use file_orbit::transfer::TransferSpec;
use file_orbit::worker::{self, WorkerConfig};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a worker process: the store URL; `NAME_ENV` is its name.
const CHILD_ENV: &str = "FILE_ORBIT_SERVER_WORKERS_STORE";
const NAME_ENV: &str = "FILE_ORBIT_SERVER_WORKERS_NAME";
const TEST: &str = "two_worker_processes_split_a_batch_and_a_killed_one_loses_nothing";
const JOBS: usize = 500;
/// Jobs that must have succeeded before the first worker process is killed.
const KILL_AFTER: usize = 150;
/// Short leases, so the jobs the killed process held run again soon.
const LEASE_SECS: u64 = 2;
/// Any wait of the test: start-up, the kill point, the end of the batch.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_split_a_batch_and_a_killed_one_loses_nothing() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return run_worker_process(&url).await;
    }
    let store_url = postgres_url().await;
    let logs_dir = tempfile::tempdir().unwrap();
    let master_key = orbit_options(&store_url).master_key.unwrap();

    // The server: API only, no workers; it reads the worker processes' logs.
    let mut setup = TestServer::setup_on(&store_url, 0);
    setup.config.rate_limit = RateLimit {
        per_second: 10_000.0,
        burst: 10_000,
    };
    setup.config.max_body_bytes = ServerConfig::default().max_body_bytes;
    setup.config.log = LogConfig {
        dir: Some(logs_dir.path().to_path_buf()),
        format: LogFormat::Json,
        ..LogConfig::default()
    };
    let mut server = setup.start().await;
    let (api, orbit, admin) = (&server.api, server.orbit.clone(), &server.keys.admin);

    let source = endpoint(Kind::Local, "split-source");
    let destination = endpoint(Kind::Local, "split-destination");
    for endpoint in [&source, &destination] {
        let mut body = serde_json::to_value(endpoint).unwrap();
        body["max_concurrent"] = json!(64);
        let reply = api
            .put(&format!("/api/v1/endpoints/{}", endpoint.name), admin, body)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let (source_root, destination_root) = (local_root(&source), local_root(&destination));
    let mut ids = BTreeSet::new();
    for index in 0..JOBS {
        let name = format!("f{index:03}.bin");
        std::fs::write(source_root.join(&name), content(index)).unwrap();
        let mut request = JobRequest::new(TransferSpec::file(
            &source.name,
            &name,
            &destination.name,
            PathTemplate::parse("{filename}").unwrap(),
        ));
        request.idempotency_key = Some(format!("split-{index}"));
        request.retry = RetryPolicy {
            max_attempts: 10,
            base_delay_ms: 50,
            max_delay_ms: 500,
        };
        let body = serde_json::to_value(&request).unwrap();
        let reply = api.post("/api/v1/jobs", admin, Some(body)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.insert(reply.json()["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), JOBS);

    let started = Instant::now();
    let mut first = spawn_worker(&store_url, "worker-a", logs_dir.path(), &master_key);
    let second = spawn_worker(&store_url, "worker-b", logs_dir.path(), &master_key);
    while succeeded(&orbit).await < KILL_AFTER {
        assert!(
            started.elapsed() < DEADLINE,
            "{KILL_AFTER} jobs did not succeed in {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_pid = first.id();
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = succeeded(&orbit).await;
    assert!(at_kill < JOBS, "the batch ended before the kill");
    println!("{TEST}: killed worker-a (pid {killed_pid}) at {at_kill} of {JOBS} succeeded");
    while succeeded(&orbit).await < JOBS {
        assert!(
            started.elapsed() < DEADLINE,
            "the batch did not finish in {DEADLINE:?}: {} succeeded",
            succeeded(&orbit).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker registry: the survivor is alive; the killed process stops being alive
    // once its registration expires (a lease's length after its last renewal).
    let survivor = format!("-{}", second.id());
    let killed = format!("-{killed_pid}");
    loop {
        let reply = api.get("/api/v1/workers", admin).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let nodes = reply.json();
        let node = |pid: &str| {
            nodes
                .as_array()
                .unwrap()
                .iter()
                .find(|node| node["id"].as_str().unwrap().ends_with(pid))
                .cloned()
                .unwrap_or_else(|| panic!("no worker {pid} in {nodes}"))
        };
        let (alive, dead) = (node(&survivor), node(&killed));
        assert_eq!(alive["alive"], true, "{nodes}");
        assert!(alive["slots"].as_i64().unwrap() > 0, "{nodes}");
        if dead["alive"] == false {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the killed worker still counts as alive: {nodes}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(second);

    // Each job: succeeded once, by one of the two processes; attempts lost to the kill
    // belong to the killed process.
    let pool = sqlx::PgPool::connect(&store_url).await.unwrap();
    let rows: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT job_id, worker, outcome FROM job_attempts ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let mut by_job: BTreeMap<i64, Vec<(String, Option<String>)>> = BTreeMap::new();
    for (job, worker, outcome) in rows {
        by_job.entry(job).or_default().push((worker, outcome));
    }
    assert_eq!(by_job.keys().copied().collect::<BTreeSet<_>>(), ids);
    let mut ran_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost = 0;
    for (job, attempts) in &by_job {
        let successes: Vec<_> = attempts
            .iter()
            .filter(|(_, o)| o.as_deref() == Some("succeeded"))
            .collect();
        assert_eq!(successes.len(), 1, "job {job}: {attempts:?}");
        let process = successes[0].0.rsplit_once("-w").unwrap().0.to_string();
        *ran_by.entry(process).or_default() += 1;
        for (worker, outcome) in attempts {
            if outcome.as_deref() != Some("succeeded") {
                assert_eq!(outcome.as_deref(), Some("lost"), "job {job}: {attempts:?}");
                lost += 1;
                assert!(
                    worker.contains(&format!("-{killed_pid}-w")),
                    "job {job}: a lost attempt of a live worker: {attempts:?}"
                );
            }
        }
    }
    println!("{TEST}: jobs by worker process: {ran_by:?}; attempts lost to the kill: {lost}");
    assert_eq!(ran_by.len(), 2, "both processes ran jobs: {ran_by:?}");
    let jobs = orbit
        .jobs(&JobFilter {
            state: None,
            limit: 1000,
            offset: 0,
            before_id: None,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(jobs.iter().all(|job| job.state == JobState::Succeeded));
    for index in 0..JOBS {
        let copied = std::fs::read(destination_root.join(format!("f{index:03}.bin"))).unwrap();
        assert_eq!(copied, content(index), "file {index}");
    }
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);

    // The surviving worker's log file, read through the API: its jobs, by job id.
    let job = *ids.iter().last().unwrap();
    let reply = api
        .get(&format!("/api/v1/logs?service=worker&job={job}"), admin)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let lines = reply.json();
    let lines = lines.as_array().unwrap();
    assert!(!lines.is_empty(), "no log line for job {job}");
    assert!(
        lines
            .iter()
            .all(|line| line["job"] == job && line["service"] == "worker"),
        "{lines:?}"
    );
    let reply = api.get("/api/v1/logs?level=loud", admin).await;
    assert_eq!(
        (reply.status, &reply.json()["error"]["field"]),
        (400, &json!("level")),
        "{}",
        reply.body
    );
    assert!(server.shutdown().await);
}

/// The worker process.
async fn run_worker_process(store_url: &str) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(3);
    });
    let mut config = WorkerConfig::new(store_url);
    config.name = std::env::var(NAME_ENV).unwrap();
    config.lease_secs = LEASE_SECS;
    config.log.apply_env().unwrap();
    logs::init("worker", &config.log).unwrap();
    println!("READY");
    worker::run(&config, std::future::pending()).await.unwrap();
}

struct Worker(Child);

impl Worker {
    fn id(&self) -> u32 {
        self.0.id()
    }
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(
    store_url: &str,
    name: &str,
    logs_dir: &Path,
    master_key: &file_orbit::Secret,
) -> Worker {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, store_url)
        .env(NAME_ENV, name)
        .env(logs::LOG_DIR_ENV, logs_dir)
        .env(logs::LOG_FORMAT_ENV, "json")
        .env("FILE_ORBIT_MASTER_KEY", master_key.expose())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its log lines are in its log file.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            // The harness prints `test <name> ... ` first, on the same line.
            Some(Ok(line)) if line.trim_end().ends_with("READY") => break,
            Some(Ok(_)) => {}
            other => panic!("worker {name} ended before READY: {other:?}"),
        }
    }
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Worker(child)
}

async fn succeeded(orbit: &Orbit) -> usize {
    let counts = orbit.store().job_counts().await.unwrap();
    counts.get(JobState::Succeeded) as usize
}

fn content(index: usize) -> Vec<u8> {
    format!("file {index}\n")
        .repeat(index % 50 + 1)
        .into_bytes()
}
