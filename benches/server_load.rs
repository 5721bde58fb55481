//! The server under load on loopback, through its real HTTP stack: job submissions per
//! second and their latency (`POST /api/v1/jobs` from C client threads, each holding one
//! keep-alive connection), then the latency of `GET /api/v1/jobs` with 100,000 jobs stored
//! (the first page, a page filtered by state, a page at offset 90,000, the same page by
//! `before_id`). The server runs no workers, so submitted jobs stay queued.
//!
//! Backends: SQLite (a file in a temp dir, the engine's settings) and PostgreSQL (a fresh
//! database on the test server, dropped afterwards; skipped when
//! `FILE_ORBIT_TEST_POSTGRES_URL` is not set).
//!
//!   scripts/test-servers.sh start && source target/test-servers/env && \
//!     cargo bench --bench server_load --features server
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_LOAD_POSTS=2000       submissions per client count
//!   FILE_ORBIT_BENCH_LOAD_CLIENTS=1,8
//!   FILE_ORBIT_BENCH_LOAD_STORED=100000    jobs stored before the listings
//!   FILE_ORBIT_BENCH_LOAD_GETS=200         requests per listing
//!   FILE_ORBIT_BENCH_LOAD_BACKENDS=sqlite,postgres
//!   FILE_ORBIT_BENCH_TIMEOUT_S=600         per phase; a phase stops there and says so

use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{JobState, Orbit, OrbitOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Runs `total` requests from `clients` threads, each with its own connection; returns
/// the wall time, the latencies and whether the deadline cut the run short.
fn load(
    clients: usize,
    total: usize,
    deadline: Instant,
    call: impl Fn(&ureq::Agent, usize) + Send + Sync + 'static,
) -> (Duration, Vec<Duration>, bool) {
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut latencies = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total || Instant::now() > deadline {
                        return latencies;
                    }
                    let sent = Instant::now();
                    call(&agent, index);
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let wall = started.elapsed();
    latencies.sort();
    let cut = latencies.len() < total;
    (wall, latencies, cut)
}

struct Row {
    backend: &'static str,
    what: String,
    clients: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    cut: bool,
}

fn print_rows(rows: &[Row]) {
    println!();
    println!("| backend | request | clients | requests | req/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {}{} | {} | {} | {:.0} | {} | {} | {} |",
            row.backend,
            row.what,
            if row.cut { " (timed out)" } else { "" },
            row.clients,
            row.latencies.len(),
            row.latencies.len() as f64 / row.wall.as_secs_f64(),
            ms(percentile(&row.latencies, 0.5)),
            ms(percentile(&row.latencies, 0.99)),
            ms(row.latencies.last().copied().unwrap_or_default()),
        );
    }
}

async fn bench_backend(backend: &'static str, store_url: &str, rows: &mut Vec<Row>) {
    let posts = env_num("FILE_ORBIT_BENCH_LOAD_POSTS", 2000);
    let stored = env_num("FILE_ORBIT_BENCH_LOAD_STORED", 100_000);
    let gets = env_num("FILE_ORBIT_BENCH_LOAD_GETS", 200);
    let timeout = Duration::from_secs(env_num("FILE_ORBIT_BENCH_TIMEOUT_S", 600) as u64);
    let client_counts: Vec<usize> = env_or("FILE_ORBIT_BENCH_LOAD_CLIENTS", "1,8")
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("FILE_ORBIT_BENCH_LOAD_CLIENTS: numbers")
        })
        .collect();

    let orbit = Orbit::open(OrbitOptions {
        store_url: store_url.to_string(),
        master_key: Some(file_orbit::Secret::new(MASTER_KEY)),
        ..OrbitOptions::default()
    })
    .await
    .unwrap();
    // The endpoints the jobs name (POST /jobs refuses unknown ones); nothing runs.
    let roots = tempfile::tempdir().unwrap();
    for name in ["load-inbox", "load-archive"] {
        let root = roots.path().join(name);
        let endpoint = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: name.into(),
            config: EndpointConfig::Local(LocalConfig { root }),
        };
        orbit.put_endpoint(&endpoint, 4).await.unwrap();
    }
    let (server, base, auth) = start_server(&orbit).await;

    // POST /api/v1/jobs.
    let mut submitted = 0;
    for &clients in &client_counts {
        let bodies: Arc<Vec<String>> = Arc::new(
            (submitted..submitted + posts)
                .map(|i| {
                    serde_json::to_string(&noop_request(i, "load-inbox", "load-archive")).unwrap()
                })
                .collect(),
        );
        let (url, auth) = (format!("{base}/api/v1/jobs"), auth.clone());
        let deadline = Instant::now() + timeout;
        let (wall, latencies, cut) = tokio::task::spawn_blocking(move || {
            load(clients, bodies.len(), deadline, move |agent, index| {
                let response = agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .content_type("application/json")
                    .send(bodies[index].as_str())
                    .unwrap();
                assert_eq!(response.status().as_u16(), 201);
            })
        })
        .await
        .unwrap();
        submitted += latencies.len();
        rows.push(Row {
            backend,
            what: "POST /jobs".into(),
            clients,
            wall,
            latencies,
            cut,
        });
    }

    // Fill up to `stored` jobs through the store (untimed), 1% of them cancelled.
    let fill_started = Instant::now();
    let deadline = Instant::now() + timeout;
    let tasks = 4;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let orbit = orbit.clone();
            tokio::spawn(async move {
                let mut index = submitted + task;
                while index < stored && Instant::now() < deadline {
                    let id = orbit
                        .submit(&noop_request(index, "load-inbox", "load-archive"))
                        .await
                        .unwrap();
                    if index % 100 == 0 {
                        orbit.cancel(id).await.unwrap();
                    }
                    index += tasks;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let counts = orbit.store().job_counts().await.unwrap();
    let (total, cancelled) = (counts.total(), counts.get(JobState::Cancelled));
    println!(
        "{backend}: {total} jobs stored ({cancelled} cancelled), filled in {:.1} s",
        fill_started.elapsed().as_secs_f64()
    );

    // GET /api/v1/jobs.
    let deep = (total as usize).saturating_sub(10_000).max(1);
    let boundary = {
        let url = format!("{base}/api/v1/jobs?limit=1&offset={}", deep - 1);
        let text = agent()
            .get(&url)
            .header("Authorization", &auth)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        body[0]["id"].as_i64().unwrap_or(1)
    };
    let listings = [
        ("GET /jobs?limit=100".to_string(), "limit=100".to_string()),
        (
            "GET /jobs?state=cancelled&limit=100".into(),
            "state=cancelled&limit=100".into(),
        ),
        (
            format!("GET /jobs?limit=100&offset={deep}"),
            format!("limit=100&offset={deep}"),
        ),
        (
            "GET /jobs?limit=100&before_id= (same page)".into(),
            format!("limit=100&before_id={boundary}"),
        ),
    ];
    for (what, query) in listings {
        for &clients in &client_counts {
            let (url, auth) = (format!("{base}/api/v1/jobs?{query}"), auth.clone());
            let deadline = Instant::now() + timeout;
            let (wall, latencies, cut) = tokio::task::spawn_blocking(move || {
                load(clients, gets, deadline, move |agent, _| {
                    let mut response = agent
                        .get(&url)
                        .header("Authorization", &auth)
                        .call()
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    let _ = response.body_mut().read_to_vec().unwrap();
                })
            })
            .await
            .unwrap();
            rows.push(Row {
                backend,
                what: what.clone(),
                clients,
                wall,
                latencies,
                cut,
            });
        }
    }
    server.shutdown().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backends = env_or("FILE_ORBIT_BENCH_LOAD_BACKENDS", "sqlite,postgres");
        let mut rows = Vec::new();
        for backend in backends.split(',').map(str::trim) {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("load.db").display());
                    bench_backend("SQLite", &url, &mut rows).await;
                }
                "postgres" => {
                    let Ok(admin) = std::env::var("FILE_ORBIT_TEST_POSTGRES_URL") else {
                        println!("postgres: skipped (FILE_ORBIT_TEST_POSTGRES_URL is not set)");
                        continue;
                    };
                    let db = PgDb::create(&admin, "load").await;
                    bench_backend("PostgreSQL", &db.url, &mut rows).await;
                    db.drop().await;
                }
                other => panic!("FILE_ORBIT_BENCH_LOAD_BACKENDS: unknown backend {other:?}"),
            }
        }
        print_rows(&rows);
    });
}
