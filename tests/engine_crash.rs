//! Crash safety: worker processes are killed with SIGKILL at random points in the middle
//! of a batch of transfers and restarted, many times, on SQLite (one file shared by the
//! processes) and on PostgreSQL. In the end every job has succeeded exactly once, nothing
//! is left leased, the destination equals the source and the audit chain is intact.
//!
//! The worker process is this test binary run again (`CHILD_ENV` holds the store URL):
//! it opens the store, starts `WORKERS` workers, prints READY and works until killed.
//! The kill times come from a seeded PRNG; the seed is printed, and `SEED_ENV` replays it.

mod common;

use common::{Kind, endpoint, local_root, orbit_options, postgres_url, sqlite_url};
use file_orbit::engine::{
    JobFilter, JobRequest, JobState, Limits, Orbit, OrbitOptions, RetryPolicy,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Set in the worker process: the store URL it works on.
const CHILD_ENV: &str = "FILE_ORBIT_CRASH_TEST_STORE";
/// Replays a run: the seed of the kill times.
const SEED_ENV: &str = "FILE_ORBIT_CRASH_TEST_SEED";
const SQLITE_TEST: &str = "sigkilled_workers_lose_and_repeat_no_job_on_sqlite";
const POSTGRES_TEST: &str = "sigkilled_workers_lose_and_repeat_no_job_on_postgres";

/// Jobs in the batch, one file each.
const FILES: usize = 400;
/// Workers per worker process.
const WORKERS: usize = 4;
/// Worker processes killed (at most; fewer if the batch is done before).
const KILLS: usize = 10;
/// How long a worker process runs before it is killed: uniform in this range (ms).
const RUN_MS: (u64, u64) = (100, 1_500);
/// Short leases, so the jobs a killed process held are soon leased again.
const LEASE: Duration = Duration::from_millis(1_500);
/// The kill phase ends at this point even if kills remain.
const KILL_PHASE: Duration = Duration::from_secs(40);
/// The last worker process must finish the batch within this.
const FINISH: Duration = Duration::from_secs(60);
/// Any single step of a worker process (start-up, exit after SIGKILL).
const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_and_repeat_no_job_on_sqlite() {
    if let Some(url) = worker_process_store() {
        return run_worker_process(&url).await;
    }
    let (url, _dir) = sqlite_url();
    kill_workers_until_done(&url, SQLITE_TEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_and_repeat_no_job_on_postgres() {
    if let Some(url) = worker_process_store() {
        return run_worker_process(&url).await;
    }
    let url = postgres_url().await;
    kill_workers_until_done(&url, POSTGRES_TEST).await;
}

fn worker_process_store() -> Option<String> {
    std::env::var(CHILD_ENV).ok().filter(|url| !url.is_empty())
}

fn options(store_url: &str) -> OrbitOptions {
    OrbitOptions {
        lease: LEASE,
        // This test kills workers on purpose, often the same job's several times: none of
        // its jobs is a poison job.
        limits: Limits {
            max_lost_attempts: 1_000,
            ..Limits::default()
        },
        ..orbit_options(store_url)
    }
}

/// The worker process: works on the store until killed (or until its parent goes away,
/// which closes its stdin).
async fn run_worker_process(store_url: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(3);
    });
    let orbit = Orbit::open(options(store_url)).await.unwrap();
    let _workers = orbit.start_workers(WORKERS);
    println!("READY");
    std::future::pending::<()>().await;
}

/// The parent: the batch, the kills, the last worker process, then the checks.
async fn kill_workers_until_done(store_url: &str, test_name: &str) {
    let started = Instant::now();
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test_name}: kill-time seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = SplitMix64(seed);

    let orbit = Orbit::open(options(store_url)).await.unwrap();
    let source = endpoint(Kind::Local, "crash-source");
    let destination = endpoint(Kind::Local, "crash-destination");
    orbit.put_endpoint(&source, 64).await.unwrap();
    orbit.put_endpoint(&destination, 64).await.unwrap();
    let (source_root, destination_root) = (local_root(&source), local_root(&destination));
    let relpaths = write_sources(&source_root);
    let total_bytes: u64 = relpaths
        .iter()
        .map(|path| std::fs::metadata(source_root.join(path)).unwrap().len())
        .sum();
    let mut ids = BTreeSet::new();
    for (index, relpath) in relpaths.iter().enumerate() {
        let request = JobRequest {
            idempotency_key: Some(format!("crash-{index}")),
            retry: RetryPolicy {
                max_attempts: 20,
                base_delay_ms: 50,
                max_delay_ms: 500,
            },
            ..JobRequest::new(TransferSpec::file(
                &source.name,
                relpath,
                &destination.name,
                PathTemplate::parse("{relpath}").unwrap(),
            ))
        };
        assert!(ids.insert(orbit.submit(&request).await.unwrap()));
    }
    println!(
        "{test_name}: {} jobs, {:.1} MiB, submitted after {:?}",
        ids.len(),
        total_bytes as f64 / 1048576.0,
        started.elapsed()
    );

    // Kill phase: start a worker process, let it work a random while, SIGKILL it.
    let mut kills = 0;
    let mut kills_holding_leases = 0;
    let mut kills_mid_write = 0;
    let mut seen_partials = BTreeSet::new();
    let kill_phase_ends = Instant::now() + KILL_PHASE;
    while kills < KILLS && Instant::now() < kill_phase_ends {
        if unfinished(&orbit).await == 0 {
            break;
        }
        let mut worker = WorkerProcess::spawn(test_name, store_url);
        worker.wait_ready().await;
        let run_for = Duration::from_millis(RUN_MS.0 + rng.below(RUN_MS.1 - RUN_MS.0 + 1));
        // The random point of the kill (not a synchronisation: nothing waits for it).
        tokio::time::sleep(run_for).await;
        worker.kill().await;
        kills += 1;
        let orphaned = leased_by(&orbit, worker.pid).await;
        if orphaned > 0 {
            kills_holding_leases += 1;
        }
        // rclone writes `<name>.<crc>.partial` and renames it when done: one left behind
        // shows the kill landed in the middle of writing a file.
        let partials: BTreeSet<String> = files_under(&destination_root)
            .into_iter()
            .filter(|path| path.ends_with(".partial"))
            .collect();
        let partial = partials.difference(&seen_partials).count();
        if partial > 0 {
            kills_mid_write += 1;
        }
        seen_partials = partials;
        println!(
            "{test_name}: kill {kills} after {run_for:?}: pid {} held {orphaned} lease(s), left \
             {partial} new partial file(s); {} job(s) unfinished",
            worker.pid,
            unfinished(&orbit).await
        );
    }
    let kill_phase_took = started.elapsed();

    // A last worker process finishes the batch.
    let mut worker = WorkerProcess::spawn(test_name, store_url);
    worker.wait_ready().await;
    let finish_by = Instant::now() + FINISH;
    loop {
        let counts = orbit.store().job_counts().await.unwrap();
        let open = counts.unfinished();
        if open == 0 {
            break;
        }
        worker.assert_alive();
        assert!(
            Instant::now() < finish_by,
            "{test_name} (seed {seed}): the batch did not finish within {FINISH:?} of the last \
             restart: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().await;
    println!(
        "{test_name}: batch done after {:?} ({kills} kills, kill phase {kill_phase_took:?})",
        started.elapsed()
    );

    // Every job succeeded; none left queued, leased, dead or cancelled.
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
    assert_eq!(
        jobs.iter().map(|job| job.id).collect::<BTreeSet<_>>(),
        ids,
        "the store holds other jobs than the ones submitted"
    );
    let not_succeeded: Vec<_> = jobs
        .iter()
        .filter(|job| job.state != JobState::Succeeded)
        .map(|job| (job.id, job.state, job.attempts, job.last_error.clone()))
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "{test_name} (seed {seed}): jobs not succeeded: {not_succeeded:?}"
    );
    for job in &jobs {
        assert!(
            job.lease_owner.is_none()
                && job.lease_expires_at.is_none()
                && job.finished_at.is_some(),
            "job {} succeeded but keeps lease data: {job:?}",
            job.id
        );
    }

    // Exactly once: per job, one attempt succeeded, the last one; the others were lost to
    // kills (never finished) or, at most, failed and were retried.
    let attempts = attempt_rows(store_url).await;
    let mut by_job: BTreeMap<i64, Vec<&Attempt>> = BTreeMap::new();
    for attempt in &attempts {
        by_job.entry(attempt.job_id).or_default().push(attempt);
    }
    let mut lost = 0;
    let mut failed = Vec::new();
    let mut repeated_jobs = 0;
    for job in &jobs {
        let rows = by_job.get(&job.id).map(Vec::as_slice).unwrap_or_default();
        let numbers: Vec<i64> = rows.iter().map(|row| row.attempt).collect();
        assert_eq!(
            numbers,
            (1..=job.attempts).collect::<Vec<_>>(),
            "job {}: attempt rows do not match its {} attempts",
            job.id,
            job.attempts
        );
        let succeeded = rows
            .iter()
            .filter(|row| row.outcome.as_deref() == Some("succeeded"))
            .count();
        assert_eq!(
            succeeded, 1,
            "job {} succeeded {succeeded} times: {rows:?}",
            job.id
        );
        let last = rows.last().unwrap();
        assert!(
            last.outcome.as_deref() == Some("succeeded") && last.finished_at.is_some(),
            "job {}: its last attempt is not the successful one: {rows:?}",
            job.id
        );
        for row in &rows[..rows.len() - 1] {
            match row.outcome.as_deref() {
                // Lost to a kill: closed as lost when the job was leased again.
                Some("lost") => {
                    assert!(row.finished_at.is_some(), "job {}: {rows:?}", job.id);
                    lost += 1;
                }
                // A retryable failure (not expected, but allowed: it was retried).
                Some("failed") => failed.push(row.job_id),
                None => panic!(
                    "job {}: an earlier attempt was never closed: {rows:?}",
                    job.id
                ),
                Some(other) => panic!(
                    "job {}: an earlier attempt ended {other:?} (nothing cancels here): {rows:?}",
                    job.id
                ),
            }
        }
        if rows.len() > 1 {
            repeated_jobs += 1;
        }
    }
    if !failed.is_empty() {
        println!(
            "{test_name}: {} attempt(s) failed and were retried, of jobs {failed:?}",
            failed.len()
        );
    }

    // The audit log: intact, and one job.succeeded per job.
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
    let audit = orbit.audit_log(100_000).await.unwrap();
    let mut successes: BTreeMap<String, usize> = BTreeMap::new();
    for record in audit.iter().filter(|r| r.action == "job.succeeded") {
        *successes.entry(record.subject.clone()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = ids.iter().map(|id| (format!("job/{id}"), 1)).collect();
    assert_eq!(successes, expected, "job.succeeded audit records per job");

    // The destination equals the source, byte for byte.
    let mismatched: Vec<&String> = relpaths
        .iter()
        .filter(|path| {
            std::fs::read(destination_root.join(path)).ok()
                != Some(std::fs::read(source_root.join(path)).unwrap())
        })
        .collect();
    assert!(
        mismatched.is_empty(),
        "{test_name} (seed {seed}): {} destination file(s) missing or different: {:?}",
        mismatched.len(),
        &mismatched[..mismatched.len().min(10)]
    );
    let expected_files: BTreeSet<&String> = relpaths.iter().collect();
    let extra: Vec<String> = files_under(&destination_root)
        .into_iter()
        .filter(|path| !expected_files.contains(path))
        .collect();
    assert!(
        extra.is_empty(),
        "{test_name} (seed {seed}): the destination has files the source does not: {extra:?}"
    );

    println!(
        "{test_name}: {kills} kills ({kills_holding_leases} while holding leases, \
         {kills_mid_write} while writing a file), {lost} attempt(s) lost to kills, {} failed, \
         over {repeated_jobs} job(s); {} attempts in all; {:?} in all",
        failed.len(),
        attempts.len(),
        started.elapsed()
    );
    // The kills must have interrupted work, or this test proves nothing.
    assert!(
        kills_holding_leases > 0 && lost > 0,
        "{test_name} (seed {seed}): no kill interrupted a job ({kills} kills, {lost} lost \
         attempts); the batch is too small or the kills too late"
    );

    for root in [&source_root, &destination_root] {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// A worker process: this test binary again, in worker mode.
struct WorkerProcess {
    pid: i32,
    events: mpsc::UnboundedReceiver<Event>,
    output: Vec<String>,
    exited: Option<ExitStatus>,
}

enum Event {
    Line(String),
    Exited(std::io::Result<ExitStatus>),
}

impl WorkerProcess {
    fn spawn(test_name: &str, store_url: &str) -> WorkerProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, store_url)
            // Held open by us: the worker process exits when it closes, even if we are
            // killed ourselves.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let stdout = child.stdout.take().unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = events_tx.send(Event::Line(line));
            }
            // Dropping stdin (with the child) after the exit is reaped.
            let _ = events_tx.send(Event::Exited(child.wait()));
        });
        WorkerProcess {
            pid,
            events,
            output: Vec::new(),
            exited: None,
        }
    }

    /// Waits (at most `STEP`) for the next event; None on timeout.
    async fn next_event(&mut self, until: tokio::time::Instant) -> Option<()> {
        let event = tokio::time::timeout_at(until, self.events.recv())
            .await
            .ok()?;
        match event {
            Some(Event::Line(line)) => self.output.push(line),
            Some(Event::Exited(status)) => self.exited = Some(status.unwrap()),
            None => panic!("worker process {} output ended without exit", self.pid),
        }
        Some(())
    }

    async fn wait_ready(&mut self) {
        let until = tokio::time::Instant::now() + STEP;
        // libtest may print "test <name> ... " on the same line first.
        while !self.output.iter().any(|line| line.ends_with("READY")) {
            let event = self.next_event(until).await;
            assert!(
                event.is_some() && self.exited.is_none(),
                "worker process {} not ready within {STEP:?} (exit {:?}); output {:?}",
                self.pid,
                self.exited,
                self.output
            );
        }
    }

    /// Panics if the process has ended by itself.
    fn assert_alive(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                Event::Line(line) => self.output.push(line),
                Event::Exited(status) => self.exited = Some(status.unwrap()),
            }
        }
        assert!(
            self.exited.is_none(),
            "worker process {} exited by itself: {:?}; output {:?}",
            self.pid,
            self.exited,
            self.output
        );
    }

    /// SIGKILLs the process and reaps it; it must not have ended before.
    async fn kill(&mut self) {
        self.assert_alive();
        // SAFETY: kill(2) on our own child's pid; it cannot have been reaped (and the pid
        // reused) before: the exit is only reaped by the reader thread, and it has not
        // reported one.
        assert_eq!(unsafe { libc::kill(self.pid, libc::SIGKILL) }, 0);
        let until = tokio::time::Instant::now() + STEP;
        while self.exited.is_none() {
            assert!(
                self.next_event(until).await.is_some(),
                "worker process {} not reaped within {STEP:?} of SIGKILL",
                self.pid
            );
        }
        let status = self.exited.unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "worker process {} ended by {status}, not by the kill; output {:?}",
            self.pid,
            self.output
        );
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // SAFETY: as in `kill`; a failing test must not leave the worker running.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Jobs not yet succeeded, dead or cancelled.
async fn unfinished(orbit: &Orbit) -> i64 {
    orbit.store().job_counts().await.unwrap().unfinished()
}

/// Jobs still leased by a worker of process `pid` (worker ids are `host-pid-wN`).
async fn leased_by(orbit: &Orbit, pid: i32) -> usize {
    let marker = format!("-{pid}-w");
    orbit
        .jobs(&JobFilter {
            state: Some(JobState::Leased),
            limit: 1000,
            offset: 0,
            before_id: None,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|job| {
            job.lease_owner
                .as_deref()
                .is_some_and(|owner| owner.contains(&marker))
        })
        .count()
}

#[derive(Debug)]
struct Attempt {
    job_id: i64,
    attempt: i64,
    outcome: Option<String>,
    finished_at: Option<i64>,
}

/// Every row of `job_attempts`, read straight from the store's database.
async fn attempt_rows(store_url: &str) -> Vec<Attempt> {
    use sqlx::Connection;
    const SQL: &str = "SELECT job_id, attempt, outcome, finished_at FROM job_attempts \
                       ORDER BY job_id, attempt, id";
    type Row = (i64, i64, Option<String>, Option<i64>);
    let rows: Vec<Row> = if store_url.starts_with("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(store_url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(store_url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
    };
    rows.into_iter()
        .map(|(job_id, attempt, outcome, finished_at)| Attempt {
            job_id,
            attempt,
            outcome,
            finished_at,
        })
        .collect()
}

/// Writes `FILES` files of 1 KiB to 2 MiB (log-uniform sizes, so many small and some
/// large) in a few directories, with deterministic content that differs per file; returns
/// their relative paths.
fn write_sources(root: &Path) -> Vec<String> {
    let mut sizes = SplitMix64(0x0f17_0b17);
    (0..FILES)
        .map(|index| {
            let exponent = sizes.below(1 << 20) as f64 / (1 << 20) as f64 * 11.0;
            let size = ((1024.0 * exponent.exp2()) as usize).clamp(1024, 2 << 20);
            let relpath = format!("dir-{}/file-{index:03}.bin", index % 7);
            let mut content = SplitMix64(index as u64);
            let mut body = Vec::with_capacity(size + 8);
            while body.len() < size {
                body.extend_from_slice(&content.next().to_le_bytes());
            }
            body.truncate(size);
            let path = root.join(&relpath);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
            relpath
        })
        .collect()
}

/// Relative paths of every file under `root`.
fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

/// A small PRNG (SplitMix64): kill times from the seed, file sizes and contents.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
