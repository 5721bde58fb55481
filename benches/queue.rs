//! Jobs per second through the durable queue: `Store::submit` N jobs, then W workers loop
//! `Store::lease_many` → `Store::complete_many` until nothing is left, as the engine's
//! workers do: a worker process with B slots leases up to B jobs in one transaction and
//! records the successes that finished meanwhile in one transaction. Batch 1 is one job
//! per transaction (`lease` → `complete`). Transfers are never run (no-op: the specs are
//! local→local and nobody executes them), so this measures the store alone — every state
//! change with its hash-chained audit record in the same transaction (plus the
//! `job_attempts` row), as the engine does it.
//!
//! Backends: SQLite (a file store in a temp dir on disk, the engine's own pragmas: WAL,
//! synchronous=NORMAL, one connection) and PostgreSQL (a fresh database on the test server
//! of `scripts/test-servers.sh`, dropped afterwards; skipped when
//! `FILE_ORBIT_TEST_POSTGRES_URL` is not set). Workers: 1 and 4 (each its own leaser, as
//! separate worker processes would be); batch: 1 and 16. Submits run on as many tasks as
//! there are workers.
//!
//!   scripts/test-servers.sh start && source target/test-servers/env && cargo bench --bench queue
//!
//! Then, per backend, the engine end to end: `Orbit::start_workers(slots)` runs N real
//! one-file local→local copies (1 KiB each, through rclone) from submitted to all
//! succeeded — what the dispatcher and reporter deliver when the transfers are not no-ops.
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_QUEUE_JOBS=5000       jobs per cell
//!   FILE_ORBIT_BENCH_QUEUE_WORKERS=1,4
//!   FILE_ORBIT_BENCH_QUEUE_BATCH=1,16      slots per worker: jobs per lease_many
//!   FILE_ORBIT_BENCH_QUEUE_BACKENDS=sqlite,postgres
//!   FILE_ORBIT_BENCH_QUEUE_ENGINE_JOBS=2000  copies in the engine cells (0: none)
//!   FILE_ORBIT_BENCH_QUEUE_ENGINE_SLOTS=16   workers of the engine cells
//!   FILE_ORBIT_BENCH_QUEUE_ENGINE_DIR=/tmp   where the engine cells' files go (e.g. a
//!                                            tmpfs such as /dev/shm: no disk file system)
//!   FILE_ORBIT_BENCH_TIMEOUT_S=300         per phase (submit, drain); then the cell stops
//!   FILE_ORBIT_BENCH_QUEUE_PROFILE=1       engine cells: where each job's time goes, from
//!                                          the engine's tracing spans (costs some speed)
//!
//! Prints a markdown table; latency is one lease_many + its complete_many (one batch), as a
//! worker sees it.

use file_orbit::Secret;
use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{Completion, JobState, Orbit, OrbitOptions, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/jobs.rs"]
mod jobs;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/phases.rs"]
mod phases;
use jobs::{env_or, ms, noop_request, percentile};
use pg::PgDb;

/// As `OrbitOptions::default()`.
const LEASE: Duration = Duration::from_secs(30);
const AGING: Duration = Duration::from_secs(60);

struct Cell {
    backend: &'static str,
    workers: usize,
    batch: usize,
    submitted: usize,
    submit: Duration,
    done: usize,
    drain: Duration,
    /// lease_many + complete_many, per batch.
    latencies: Vec<Duration>,
    lease: Vec<Duration>,
    complete: Vec<Duration>,
    timed_out: bool,
    audit_ok: bool,
}

async fn run_cell(
    backend: &'static str,
    store: Store,
    jobs: usize,
    workers: usize,
    batch: usize,
    timeout: Duration,
) -> Cell {
    // Submit: `workers` tasks share the N jobs.
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0;
                for index in (w..jobs).step_by(workers) {
                    if Instant::now() >= deadline {
                        break;
                    }
                    store
                        .submit(
                            &noop_request(index, "bench-inbox", "bench-archive"),
                            "bench",
                        )
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut submitted = 0;
    for task in tasks {
        submitted += task.await.unwrap();
    }
    let submit = started.elapsed();

    // Drain: each worker leases and completes until the queue is empty.
    let deadline = Instant::now() + timeout;
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            let stop = stop.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                let owners: Vec<String> = (0..batch).map(|s| format!("bench-w{w}-s{s}")).collect();
                let (mut total, mut lease, mut complete) = (Vec::new(), Vec::new(), Vec::new());
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= deadline {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    let t0 = Instant::now();
                    let leased = store.lease_many(&owners, LEASE, AGING).await.unwrap();
                    if leased.is_empty() {
                        if finished.load(Ordering::Relaxed) >= submitted {
                            break; // nothing left
                        }
                        // The rest is leased by other workers (or locked by their batch).
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let t1 = Instant::now();
                    let successes: Vec<Completion> = leased
                        .iter()
                        .map(|job| Completion {
                            id: job.id,
                            worker: job.lease_owner.clone().unwrap(),
                            bytes: 0,
                            files: 0,
                        })
                        .collect();
                    let recorded = store.complete_many(&successes).await.unwrap();
                    assert!(recorded.iter().all(|&ok| ok), "a lease was lost");
                    let t2 = Instant::now();
                    done += leased.len();
                    finished.fetch_add(leased.len(), Ordering::Relaxed);
                    lease.push(t1 - t0);
                    complete.push(t2 - t1);
                    total.push(t2 - t0);
                }
                (done, total, lease, complete)
            })
        })
        .collect();
    let (mut done, mut latencies, mut lease, mut complete) =
        (0, Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        let (n, t, l, c) = task.await.unwrap();
        done += n;
        latencies.extend(t);
        lease.extend(l);
        complete.extend(c);
    }
    let drain = started.elapsed();
    let timed_out = stop.load(Ordering::Relaxed) || submitted < jobs;
    latencies.sort();
    lease.sort();
    complete.sort();

    // Sanity (untimed): every job succeeded exactly once and the audit chain is intact.
    let counts = store.job_counts().await.unwrap();
    let succeeded = counts.get(JobState::Succeeded) as usize;
    assert_eq!(succeeded, done, "succeeded jobs vs completions");
    if !timed_out {
        assert_eq!(succeeded, jobs, "job counts: {counts:?}");
    }
    let audit_ok = store.verify_audit_log().await.unwrap().is_none();
    Cell {
        backend,
        workers,
        batch,
        submitted,
        submit,
        done,
        drain,
        latencies,
        lease,
        complete,
        timed_out,
        audit_ok,
    }
}

/// Runs `cell(backend name, store URL)` on a fresh database of `backend` (a SQLite file
/// in a temp dir, or a new database on the PostgreSQL server at `pg_admin`), removed
/// afterwards even if the cell panics. None when PostgreSQL is not configured.
async fn on_fresh_database<T, F, Fut>(backend: &str, pg_admin: Option<&str>, cell: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce(&'static str, String) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("orbit.db").display());
            Some(cell("SQLite (file, WAL)", url).await)
        }
        "postgres" => {
            let Some(admin) = pg_admin else {
                eprintln!(
                    "PostgreSQL skipped: FILE_ORBIT_TEST_POSTGRES_URL is not set \
                     (scripts/test-servers.sh start && source target/test-servers/env)"
                );
                return None;
            };
            let db = PgDb::create(admin, "queue").await;
            // In its own task so that the database is dropped even if it panics.
            let result = tokio::spawn(cell("PostgreSQL", db.url.clone())).await;
            db.drop().await;
            match result {
                Ok(value) => Some(value),
                Err(err) => std::panic::resume_unwind(err.into_panic()),
            }
        }
        other => panic!("unknown backend {other:?} (sqlite, postgres)"),
    }
}

struct EngineCell {
    backend: &'static str,
    slots: usize,
    done: usize,
    elapsed: Duration,
    copied: usize,
    timed_out: bool,
    /// CPU time (user + system) of this process from start to all succeeded.
    cpu: Duration,
    /// Span name → (count, wall time), when profiling.
    phases: phases::Totals,
}

/// `jobs` one-file copies of 1 KiB between two local endpoints, run by the engine's own
/// workers (`slots` of them in this process): from submitted to all succeeded.
async fn run_engine_cell(
    backend: &'static str,
    url: String,
    jobs: usize,
    slots: usize,
    timeout: Duration,
) -> EngineCell {
    let dir = match std::env::var("FILE_ORBIT_BENCH_QUEUE_ENGINE_DIR") {
        Ok(parent) => tempfile::tempdir_in(parent).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let (inbox, archive) = (dir.path().join("inbox"), dir.path().join("archive"));
    std::fs::create_dir_all(inbox.join("incoming")).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    for index in 0..jobs {
        let path = inbox.join(format!("incoming/file-{index}.csv"));
        std::fs::write(path, vec![b'x'; 1024]).unwrap();
    }
    let orbit = Orbit::open(OrbitOptions {
        store_url: url,
        master_key: Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")),
        ..Default::default()
    })
    .await
    .unwrap();
    for (name, root) in [("bench-inbox", &inbox), ("bench-archive", &archive)] {
        let endpoint = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: name.into(),
            config: EndpointConfig::Local(LocalConfig { root: root.clone() }),
        };
        orbit.put_endpoint(&endpoint, slots as u32).await.unwrap();
    }
    for index in 0..jobs {
        orbit
            .submit(&noop_request(index, "bench-inbox", "bench-archive"))
            .await
            .unwrap();
    }
    phases::take();
    eprintln!("engine cell {backend}: {jobs} jobs submitted; workers start");
    let cpu_before = cpu_time();
    let started = Instant::now();
    let workers = orbit.start_workers(slots);
    let (done, timed_out) = loop {
        let counts = orbit.store().job_counts().await.unwrap();
        assert_eq!(counts.get(JobState::Dead), 0, "a copy failed: {counts:?}");
        let succeeded = counts.get(JobState::Succeeded) as usize;
        if succeeded == jobs || started.elapsed() >= timeout {
            break (succeeded, succeeded < jobs);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    let phases = phases::take();
    workers.shutdown().await;
    let copied = std::fs::read_dir(archive.join("archive")).map_or(0, |dir| dir.count());
    assert!(
        timed_out || copied == jobs,
        "{copied} of {jobs} files copied"
    );
    EngineCell {
        backend,
        slots,
        done,
        elapsed,
        copied,
        timed_out,
        cpu,
        phases,
    }
}

/// This process's CPU time so far (user + system, all threads).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn main() {
    let jobs: usize = env_or("FILE_ORBIT_BENCH_QUEUE_JOBS", "5000")
        .parse()
        .unwrap();
    let workers: Vec<usize> = env_or("FILE_ORBIT_BENCH_QUEUE_WORKERS", "1,4")
        .split(',')
        .map(|w| w.trim().parse().unwrap())
        .collect();
    let batches: Vec<usize> = env_or("FILE_ORBIT_BENCH_QUEUE_BATCH", "1,16")
        .split(',')
        .map(|b| b.trim().parse().unwrap())
        .collect();
    let backends = env_or("FILE_ORBIT_BENCH_QUEUE_BACKENDS", "sqlite,postgres");
    let engine_jobs: usize = env_or("FILE_ORBIT_BENCH_QUEUE_ENGINE_JOBS", "2000")
        .parse()
        .unwrap();
    let engine_slots: usize = env_or("FILE_ORBIT_BENCH_QUEUE_ENGINE_SLOTS", "16")
        .parse()
        .unwrap();
    let timeout = Duration::from_secs(env_or("FILE_ORBIT_BENCH_TIMEOUT_S", "300").parse().unwrap());
    let pg_admin = std::env::var("FILE_ORBIT_TEST_POSTGRES_URL").ok();
    if env_or("FILE_ORBIT_BENCH_QUEUE_PROFILE", "0") == "1" {
        phases::install();
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (cells, engine_cells) = runtime.block_on(async {
        let mut cells = Vec::new();
        let mut engine_cells = Vec::new();
        for backend in backends.split(',').map(str::trim) {
            for (&w, &b) in workers
                .iter()
                .flat_map(|w| batches.iter().map(move |b| (w, b)))
            {
                let cell =
                    on_fresh_database(backend, pg_admin.as_deref(), move |name, url| async move {
                        let store = Store::open(&url).await.unwrap();
                        run_cell(name, store, jobs, w, b, timeout).await
                    });
                cells.extend(cell.await);
            }
            if engine_jobs > 0 {
                let cell = on_fresh_database(backend, pg_admin.as_deref(), move |name, url| {
                    run_engine_cell(name, url, engine_jobs, engine_slots, timeout)
                });
                engine_cells.extend(cell.await);
            }
        }
        (cells, engine_cells)
    });

    println!(
        "\n| backend | workers | batch | jobs | submit jobs/s | lease+complete jobs/s | batch p50 ms | batch p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cells {
        let flag = if c.timed_out { " (timed out)" } else { "" };
        println!(
            "| {} | {} | {} | {}{flag} | {:.0} | {:.0} | {} | {} |",
            c.backend,
            c.workers,
            c.batch,
            c.done,
            c.submitted as f64 / c.submit.as_secs_f64(),
            c.done as f64 / c.drain.as_secs_f64(),
            ms(percentile(&c.latencies, 0.5)),
            ms(percentile(&c.latencies, 0.99)),
        );
    }
    println!(
        "\n| backend | workers | batch | lease p50 ms | lease p99 ms | complete p50 ms | complete p99 ms | audit chain |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cells {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.backend,
            c.workers,
            c.batch,
            ms(percentile(&c.lease, 0.5)),
            ms(percentile(&c.lease, 0.99)),
            ms(percentile(&c.complete, 0.5)),
            ms(percentile(&c.complete, 0.99)),
            if c.audit_ok { "intact" } else { "BROKEN" },
        );
    }
    println!("\ngoal: ≥ 2000 lease+complete jobs/s");
    if !engine_cells.is_empty() {
        println!(
            "\nEngine end to end: `Orbit::start_workers(slots)` running one-file local→local copies \
             of 1 KiB through rclone"
        );
        println!(
            "\n| backend | slots | jobs | jobs/s | files copied | CPU µs per job | cores busy |"
        );
        println!("|---|---|---|---|---|---|---|");
        for c in &engine_cells {
            let flag = if c.timed_out { " (timed out)" } else { "" };
            println!(
                "| {} | {} | {}{flag} | {:.0} | {} | {:.0} | {:.2} |",
                c.backend,
                c.slots,
                c.done,
                c.done as f64 / c.elapsed.as_secs_f64(),
                c.copied,
                c.cpu.as_secs_f64() / c.done.max(1) as f64 * 1e6,
                c.cpu.as_secs_f64() / c.elapsed.as_secs_f64(),
            );
        }
        for c in engine_cells.iter().filter(|c| !c.phases.is_empty()) {
            print_phases(c);
        }
    }
}

/// Per span: how many, wall time per job, and share of the slots' time (slots × elapsed).
fn print_phases(c: &EngineCell) {
    let slot_time = c.elapsed.as_secs_f64() * c.slots as f64;
    println!(
        "\n{} — {} jobs in {:.2} s, {} slots: {:.0} µs of slot time per job\n",
        c.backend,
        c.done,
        c.elapsed.as_secs_f64(),
        c.slots,
        slot_time / c.done.max(1) as f64 * 1e6,
    );
    println!("| span | count | µs per span | µs per job | % of slot time |");
    println!("|---|---|---|---|---|");
    for (name, (count, total)) in &c.phases {
        let total = total.as_secs_f64();
        println!(
            "| {name} | {count} | {:.0} | {:.0} | {:.1} |",
            total / (*count).max(1) as f64 * 1e6,
            total / c.done.max(1) as f64 * 1e6,
            total / slot_time * 100.0,
        );
    }
}
