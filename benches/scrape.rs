//! `/metrics` and `/health` with many finished jobs stored, through the server's real HTTP
//! stack: the latency of a scrape and of a health check, then the latency of job
//! submissions (`POST /api/v1/jobs`, one client) while another client scrapes `/metrics`
//! in a loop, and while another lists a deep page of `GET /api/v1/jobs` in a loop (a read
//! that scans). The finished jobs (each with one attempt; 2% dead) are written in bulk by
//! one SQL statement. The server runs no workers, so submitted jobs stay queued.
//!
//! Backends: SQLite (a file in a temp dir, the engine's settings) and PostgreSQL (a fresh
//! database on the test server, dropped afterwards; skipped when
//! `FILE_ORBIT_TEST_POSTGRES_URL` is not set).
//!
//!   scripts/test-servers.sh start && source target/test-servers/env && \
//!     cargo bench --bench scrape --features server
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_SCRAPE_JOBS=1000000   finished jobs stored
//!   FILE_ORBIT_BENCH_SCRAPE_GETS=20        scrapes and health checks timed alone
//!   FILE_ORBIT_BENCH_SCRAPE_POSTS=50       submissions timed beside each reader
//!   FILE_ORBIT_BENCH_SCRAPE_BACKENDS=sqlite,postgres

use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{Orbit, OrbitOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/jobs.rs"]
mod jobs;
#[path = "support/pg.rs"]
mod pg;
#[path = "support/server.rs"]
mod server;
use jobs::{env_or, ms, noop_request, percentile};
use pg::PgDb;
use server::{MASTER_KEY, agent, env_num, start_server};

/// `GET url` with `auth`; panics unless 200.
fn get(agent: &ureq::Agent, url: &str, auth: &str) {
    let mut response = agent.get(url).header("Authorization", auth).call().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let _ = response.body_mut().read_to_vec().unwrap();
}

/// Writes `jobs` finished jobs (2% dead, the rest succeeded; a third retried once) and
/// one finished attempt each, with one statement per table.
async fn fill(backend: &str, store_url: &str, jobs: usize) {
    let spec = serde_json::to_string(&noop_request(0, "load-inbox", "load-archive").spec).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let columns = "INSERT INTO jobs (spec, source_endpoint, destination_endpoint, next_hops, \
        priority, state, attempts, max_attempts, backoff_base_ms, backoff_max_ms, run_after, \
        cancel_requested, bytes, files, created_at, updated_at, finished_at)";
    let row = "$2, 'load-inbox', 'load-archive', '[]', 0, \
        CASE WHEN i % 50 = 0 THEN 'dead' ELSE 'succeeded' END, \
        CASE WHEN i % 3 = 0 THEN 2 ELSE 1 END, 5, 2000, 300000, $3, 0, \
        CASE WHEN i % 50 = 0 THEN 0 ELSE 1024 END, 1, $3 - i, $3, $3";
    let attempts = "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, \
        outcome) SELECT id, attempts, 'bench', finished_at - (id % 7000) * 97, finished_at, \
        CASE WHEN state = 'dead' THEN 'failed' ELSE 'succeeded' END FROM jobs \
        WHERE state IN ('succeeded', 'dead')";
    match backend {
        "sqlite" => {
            use sqlx::Connection;
            let path = store_url.trim_start_matches("sqlite://");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                .await
                .unwrap();
            let sql = format!(
                "{columns} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                 WHERE i < $1) SELECT {row} FROM n"
            );
            let mut tx = conn.begin().await.unwrap();
            for statement in [sql.as_str(), attempts] {
                sqlx::query(statement)
                    .bind(jobs as i64)
                    .bind(&spec)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let _ = conn.close().await;
        }
        _ => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(store_url).await.unwrap();
            let sql = format!(
                "{columns} SELECT {} FROM generate_series(1, $1) AS g(i)",
                row.replace("$3", "CAST($3 AS BIGINT)")
            );
            let mut tx = conn.begin().await.unwrap();
            sqlx::query(&sql)
                .bind(jobs as i64)
                .bind(&spec)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(attempts).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
            let _ = conn.close().await;
        }
    }
}

struct Row {
    backend: &'static str,
    what: String,
    latencies: Vec<Duration>,
}

fn print_rows(jobs: usize, rows: &[Row]) {
    println!();
    println!("{jobs} finished jobs stored");
    println!();
    println!("| backend | request | requests | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.backend,
            row.what,
            row.latencies.len(),
            ms(percentile(&row.latencies, 0.5)),
            ms(percentile(&row.latencies, 0.99)),
            ms(row.latencies.last().copied().unwrap_or_default()),
        );
    }
}

/// Times `count` calls of `call`, `pause` apart, sorted.
fn timed(count: usize, pause: Duration, mut call: impl FnMut(usize)) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = (0..count)
        .map(|index| {
            std::thread::sleep(pause);
            let sent = Instant::now();
            call(index);
            sent.elapsed()
        })
        .collect();
    latencies.sort();
    latencies
}

async fn bench_backend(
    backend: &'static str,
    kind: &str,
    store_url: &str,
    jobs: usize,
    rows: &mut Vec<Row>,
) {
    let gets = env_num("FILE_ORBIT_BENCH_SCRAPE_GETS", 20);
    let posts = env_num("FILE_ORBIT_BENCH_SCRAPE_POSTS", 50);
    let orbit = Orbit::open(OrbitOptions {
        store_url: store_url.to_string(),
        master_key: Some(file_orbit::Secret::new(MASTER_KEY)),
        ..OrbitOptions::default()
    })
    .await
    .unwrap();
    let roots = tempfile::tempdir().unwrap();
    for name in ["load-inbox", "load-archive"] {
        let endpoint = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: name.into(),
            config: EndpointConfig::Local(LocalConfig {
                root: roots.path().join(name),
            }),
        };
        orbit.put_endpoint(&endpoint, 4).await.unwrap();
    }
    let filled = Instant::now();
    fill(kind, store_url, jobs).await;
    println!(
        "{backend}: {jobs} finished jobs written in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let (server, base, auth) = start_server(&orbit).await;

    for (what, path) in [("GET /metrics", "/metrics"), ("GET /health", "/health")] {
        let (url, auth) = (format!("{base}{path}"), auth.clone());
        let latencies = tokio::task::spawn_blocking(move || {
            let agent = agent();
            timed(gets, Duration::ZERO, |_| get(&agent, &url, &auth))
        })
        .await
        .unwrap();
        rows.push(Row {
            backend,
            what: what.into(),
            latencies,
        });
    }

    let submitted = Arc::new(AtomicUsize::new(0));
    let deep = jobs.saturating_sub(100);
    let readers = [
        ("alone", None),
        ("while GET /metrics loops", Some("/metrics".to_string())),
        (
            "while GET /jobs?offset=(all but 100) loops",
            Some(format!("/api/v1/jobs?limit=100&offset={deep}")),
        ),
    ];
    for (beside, reader) in readers {
        let stop = Arc::new(AtomicBool::new(false));
        let reading = reader.map(|path| {
            let (url, auth, stop) = (format!("{base}{path}"), auth.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    get(&agent, &url, &auth);
                    reads += 1;
                }
                reads
            })
        });
        let (url, auth, submitted) = (
            format!("{base}/api/v1/jobs"),
            auth.clone(),
            submitted.clone(),
        );
        let latencies = tokio::task::spawn_blocking(move || {
            let agent = agent();
            // Submissions a little apart, as clients send them (and the reader runs).
            timed(posts, Duration::from_millis(20), |_| {
                let index = submitted.fetch_add(1, Ordering::Relaxed);
                let body = noop_request(index, "load-inbox", "load-archive");
                let response = agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .content_type("application/json")
                    .send(serde_json::to_string(&body).unwrap().as_str())
                    .unwrap();
                assert_eq!(response.status().as_u16(), 201);
            })
        })
        .await
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        let reads = match reading {
            Some(thread) => format!(" ({} reads)", thread.join().unwrap()),
            None => String::new(),
        };
        rows.push(Row {
            backend,
            what: format!("POST /jobs {beside}{reads}"),
            latencies,
        });
    }
    server.shutdown().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let jobs = env_num("FILE_ORBIT_BENCH_SCRAPE_JOBS", 1_000_000);
        let backends = env_or("FILE_ORBIT_BENCH_SCRAPE_BACKENDS", "sqlite,postgres");
        let mut rows = Vec::new();
        for backend in backends.split(',').map(str::trim) {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("scrape.db").display());
                    bench_backend("SQLite", "sqlite", &url, jobs, &mut rows).await;
                }
                "postgres" => {
                    let Ok(admin) = std::env::var("FILE_ORBIT_TEST_POSTGRES_URL") else {
                        println!("postgres: skipped (FILE_ORBIT_TEST_POSTGRES_URL is not set)");
                        continue;
                    };
                    let db = PgDb::create(&admin, "scrape").await;
                    bench_backend("PostgreSQL", "postgres", &db.url, jobs, &mut rows).await;
                    db.drop().await;
                }
                other => panic!("FILE_ORBIT_BENCH_SCRAPE_BACKENDS: unknown backend {other:?}"),
            }
        }
        print_rows(jobs, &rows);
    });
}
