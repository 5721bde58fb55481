//! Agents through the control plane's agent protocol (`/api/v1/agent/*`), on loopback
//! against an in-process server that runs no workers of its own:
//!
//! 1. **No-op throughput**: N queued one-file jobs between two unplaced local endpoints
//!    (stored with `Orbit::submit_many` before the clock starts), then 1 and 4 simulated
//!    agents, each a thread speaking the real HTTP protocol (created through the admin API,
//!    enrolled, hello, then: lease for all its free slots, at once report every leased job
//!    `succeeded`) until all N are `succeeded`: jobs/s leased and completed. The same loop
//!    again as tasks calling the engine's agent calls in-process (what the handlers call:
//!    credential lookup, `lease_for_agent`, `agent_outcomes`), and as tasks making only
//!    the store's lease and completion statements (`lease_many_reaching`,
//!    `complete_many`), to split the time between the HTTP server, the engine's work
//!    around the store (credential lookups, reading and unsealing the endpoints), and
//!    the store.
//! 2. **Real one-file copies**: 1 and 4 real agent processes (the example worker in agent
//!    mode, `workers = 1` each, plain HTTP to the loopback server), started and enrolled
//!    first; then M one-file local → local jobs (M files of K KiB, distinct destination
//!    paths) are submitted and the clock runs until all are `succeeded`. Every destination
//!    file's size is checked after each run; anything missing stops the bench.
//!
//! Backends: SQLite (a file in a temp dir) and PostgreSQL (a fresh database on the test
//! server, dropped afterwards; skipped when `FILE_ORBIT_TEST_POSTGRES_URL` is not set).
//!
//!   scripts/test-servers.sh start && source target/test-servers/env && \
//!     cargo build --release --example worker --features worker && \
//!     cargo bench --bench agents --features server
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_AGENTS_JOBS=2000        no-op jobs per agent count
//!   FILE_ORBIT_BENCH_AGENTS_COUNTS=1,4       agent counts (both phases)
//!   FILE_ORBIT_BENCH_AGENTS_SLOTS=16         slots of each simulated agent
//!   FILE_ORBIT_BENCH_AGENTS_BACKENDS=sqlite,postgres
//!   FILE_ORBIT_BENCH_AGENTS_PHASES=http,engine,store,copy
//!   FILE_ORBIT_BENCH_AGENTS_FILES=400        files copied per agent count
//!   FILE_ORBIT_BENCH_AGENTS_FILE_KIB=64
//!   FILE_ORBIT_BENCH_AGENTS_WORKER=<target>/release/examples/worker
//!   FILE_ORBIT_BENCH_TIMEOUT_S=120           per run; a no-op run stops there and says so,
//!                                            a copy run that has not finished fails

use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig, reach_tokens};
use file_orbit::engine::{AgentOutcome, Completion, JobRequest, JobState, Orbit, OrbitOptions};
use file_orbit::path_template::PathTemplate;
use file_orbit::server::Role;
use file_orbit::transfer::TransferSpec;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/jobs.rs"]
mod jobs;
#[path = "support/pg.rs"]
mod pg;
#[allow(dead_code)] // start_server (an operator's key) serves the other benches
#[path = "support/server.rs"]
mod server;
#[path = "support/settings.rs"]
mod settings;
use jobs::{ms, noop_request, percentile};
use pg::PgDb;
use server::{MASTER_KEY, agent as http_client, start_server_as};
use settings::{env_list, env_or};

/// How long a simulated agent's lease call may wait when the queue is empty.
const NOOP_WAIT_MS: u64 = 200;

struct Settings {
    jobs: usize,
    counts: Vec<usize>,
    slots: u32,
    backends: Vec<String>,
    phases: Vec<String>,
    files: usize,
    file_kib: usize,
    worker: PathBuf,
    timeout: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        let counts = env_list("FILE_ORBIT_BENCH_AGENTS_COUNTS", "1,4")
            .iter()
            .map(|n| match n.parse() {
                Ok(n) if n > 0 => n,
                _ => panic!("FILE_ORBIT_BENCH_AGENTS_COUNTS: {n:?} is not a count"),
            })
            .collect();
        // The bench runs from <target>/<profile>/deps/; the examples are beside deps/.
        let examples = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("examples/worker")))
            .unwrap_or_default();
        let phases = env_list("FILE_ORBIT_BENCH_AGENTS_PHASES", "http,engine,store,copy");
        for phase in &phases {
            assert!(
                ["http", "engine", "store", "copy"].contains(&phase.as_str()),
                "FILE_ORBIT_BENCH_AGENTS_PHASES: unknown phase {phase:?} (http, engine, store, copy)"
            );
        }
        Settings {
            jobs: env_or("FILE_ORBIT_BENCH_AGENTS_JOBS", 2000),
            counts,
            slots: env_or("FILE_ORBIT_BENCH_AGENTS_SLOTS", 16),
            backends: env_list("FILE_ORBIT_BENCH_AGENTS_BACKENDS", "sqlite,postgres"),
            phases,
            files: env_or("FILE_ORBIT_BENCH_AGENTS_FILES", 400),
            file_kib: env_or("FILE_ORBIT_BENCH_AGENTS_FILE_KIB", 64),
            worker: env_or("FILE_ORBIT_BENCH_AGENTS_WORKER", examples),
            timeout: Duration::from_secs(env_or("FILE_ORBIT_BENCH_TIMEOUT_S", 120)),
        }
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

/// POSTs `body` (with `auth` as the Authorization header when given): status and JSON.
fn post(http: &ureq::Agent, url: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = http.post(url).content_type("application/json");
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let mut response = request
        .send(body.to_string().as_str())
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    let text = response.body_mut().read_to_string().unwrap();
    let answer = serde_json::from_str(&text).unwrap_or(Value::Null);
    (response.status().as_u16(), answer)
}

/// Creates agent `name` through the admin API: its one-time enrolment token.
fn create_agent(http: &ureq::Agent, base: &str, admin: &str, name: &str) -> String {
    let (status, answer) = post(
        http,
        &format!("{base}/api/v1/agents"),
        Some(admin),
        &json!({"name": name, "labels": []}),
    );
    assert_eq!(status, 201, "creating agent {name}: {answer}");
    answer["enrolment_token"].as_str().unwrap().to_string()
}

/// Creates and enrols agent `name` with `slots` slots, says its first hello: the
/// `Authorization` header value of its credential.
fn enrolled_agent(http: &ureq::Agent, base: &str, admin: &str, name: &str, slots: u32) -> String {
    let token = create_agent(http, base, admin, name);
    let about = json!({"host": "bench", "version": "0.1.0", "slots": slots,
                       "backends": ["local"]});
    let mut body = about.clone();
    body["token"] = json!(token);
    let (status, answer) = post(http, &format!("{base}/api/v1/agent/enrol"), None, &body);
    assert_eq!(status, 200, "enrolling {name}: {answer}");
    let auth = format!("Bearer {}", answer["credential"].as_str().unwrap());
    let mut hello = about;
    hello["started"] = json!(true);
    let (status, answer) = post(
        http,
        &format!("{base}/api/v1/agent/hello"),
        Some(&auth),
        &hello,
    );
    assert_eq!(status, 200, "hello from {name}: {answer}");
    auth
}

/// One no-op run: how long, how many jobs completed, and the calls' latencies (lease
/// calls that leased something; `auth` only in-process: the credential lookups).
#[derive(Default)]
struct Run {
    wall: Duration,
    done: usize,
    leases: Vec<Duration>,
    outcomes: Vec<Duration>,
    auth: Vec<Duration>,
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.leases.extend(other.leases);
        self.outcomes.extend(other.outcomes);
        self.auth.extend(other.auth);
    }
}

/// What the agents of one run share: jobs completed, and when the last one was.
struct Progress {
    total: usize,
    done: AtomicUsize,
    finished: Mutex<Option<Instant>>,
    deadline: Instant,
}

impl Progress {
    fn new(total: usize, timeout: Duration) -> Arc<Progress> {
        Arc::new(Progress {
            total,
            done: AtomicUsize::new(0),
            finished: Mutex::new(None),
            deadline: Instant::now() + timeout,
        })
    }

    fn going(&self) -> bool {
        self.done.load(Ordering::Relaxed) < self.total && Instant::now() < self.deadline
    }

    fn completed(&self, jobs: usize) {
        if self.done.fetch_add(jobs, Ordering::Relaxed) + jobs >= self.total {
            self.finished
                .lock()
                .unwrap()
                .get_or_insert_with(Instant::now);
        }
    }

    fn wall_since(&self, started: Instant) -> Duration {
        self.finished.lock().unwrap().unwrap_or_else(Instant::now) - started
    }
}

/// The outcome `succeeded` (nothing copied) of each leased job, as the agent sends it.
fn successes(jobs: &[Value]) -> Value {
    let outcomes: Vec<Value> = jobs
        .iter()
        .map(|job| {
            json!({"job_id": job["job_id"], "slot": job["slot"], "outcome": "succeeded",
                   "bytes": 0, "files": 1})
        })
        .collect();
    json!({"outcomes": outcomes})
}

/// A simulated agent over HTTP: leases for all its slots, reports them all succeeded at
/// once, until the run's jobs are done.
fn http_agent(base: &str, auth: &str, slots: u32, progress: &Progress) -> Run {
    let http = http_client();
    let (lease_url, outcomes_url) = (
        format!("{base}/api/v1/agent/lease"),
        format!("{base}/api/v1/agent/outcomes"),
    );
    let all: Vec<u32> = (0..slots).collect();
    let lease_body = json!({"slots": all, "wait_ms": NOOP_WAIT_MS});
    let mut run = Run::default();
    while progress.going() {
        let sent = Instant::now();
        let (status, answer) = post(&http, &lease_url, Some(auth), &lease_body);
        assert_eq!(status, 200, "lease: {answer}");
        let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            continue;
        }
        run.leases.push(sent.elapsed());
        let sent = Instant::now();
        let (status, answer) = post(&http, &outcomes_url, Some(auth), &successes(&jobs));
        run.outcomes.push(sent.elapsed());
        assert_eq!(status, 200, "outcomes: {answer}");
        assert_eq!(answer["refused"], json!([]), "outcomes refused: {answer}");
        progress.completed(answer["recorded"].as_array().map_or(0, Vec::len));
    }
    run
}

/// The same loop in-process: the calls the agent routes' handlers make, without HTTP.
async fn engine_agent(orbit: Orbit, auth: String, slots: u32, progress: Arc<Progress>) -> Run {
    let credential = auth.trim_start_matches("Bearer ");
    let all: Vec<u32> = (0..slots).collect();
    let mut run = Run::default();
    while progress.going() {
        let sent = Instant::now();
        let agent = orbit
            .agent_by_credential(credential)
            .await
            .unwrap()
            .unwrap();
        run.auth.push(sent.elapsed());
        let jobs = orbit.lease_for_agent(&agent, &all).await.unwrap();
        if jobs.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        run.leases.push(sent.elapsed());
        let outcomes: Vec<AgentOutcome> = jobs
            .iter()
            .map(|job| AgentOutcome::Succeeded {
                job_id: job.job_id,
                slot: job.slot,
                bytes: 0,
                files: 1,
                warnings: Vec::new(),
            })
            .collect();
        let sent = Instant::now();
        let agent = orbit
            .agent_by_credential(credential)
            .await
            .unwrap()
            .unwrap();
        run.auth.push(sent.elapsed());
        let answer = orbit.agent_outcomes(&agent, &outcomes).await.unwrap();
        run.outcomes.push(sent.elapsed());
        assert!(answer.refused.is_empty(), "outcomes refused");
        progress.completed(answer.recorded.len());
    }
    run
}

/// The same loop on the store alone: the lease and completion statements the engine
/// calls make, without the credential lookup, the endpoints' reading and unsealing, or
/// HTTP.
async fn store_agent(orbit: Orbit, auth: String, slots: u32, progress: Arc<Progress>) -> Run {
    let credential = auth.trim_start_matches("Bearer ");
    let agent = orbit
        .agent_by_credential(credential)
        .await
        .unwrap()
        .unwrap();
    let owners: Vec<String> = (0..slots).map(|slot| agent.owner(slot)).collect();
    let reach = reach_tokens(&agent.name, &agent.labels);
    let (lease, aging) = (orbit.options().lease, orbit.options().aging);
    let mut run = Run::default();
    while progress.going() {
        let sent = Instant::now();
        let jobs = orbit
            .store()
            .lease_many_reaching(&owners, lease, aging, &reach)
            .await
            .unwrap();
        if jobs.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        run.leases.push(sent.elapsed());
        let done: Vec<Completion> = jobs
            .iter()
            .map(|job| Completion {
                id: job.id,
                worker: job.lease_owner.clone().unwrap(),
                bytes: 0,
                files: 1,
            })
            .collect();
        let sent = Instant::now();
        let recorded = orbit.store().complete_many(&done).await.unwrap();
        run.outcomes.push(sent.elapsed());
        assert!(recorded.iter().all(|r| *r), "completions refused");
        progress.completed(recorded.len());
    }
    run
}

struct NoopRow {
    backend: &'static str,
    path: &'static str,
    agents: usize,
    run: Run,
    cut: bool,
}

struct CopyRow {
    backend: &'static str,
    agents: usize,
    files: usize,
    wall: Duration,
}

/// Stores `requests` as queued jobs, 1,000 per call.
async fn submit(orbit: &Orbit, requests: &[JobRequest]) {
    for chunk in requests.chunks(1000) {
        for (index, stored) in orbit.submit_many(chunk).await.unwrap().iter().enumerate() {
            if let Err(err) = stored {
                panic!("job {index}: {err}");
            }
        }
    }
}

/// Succeeded jobs in the store, and queued ones.
async fn succeeded_and_queued(orbit: &Orbit) -> (i64, i64) {
    let counts = orbit.store().job_counts().await.unwrap();
    (
        counts.get(JobState::Succeeded),
        counts.get(JobState::Queued),
    )
}

async fn put_local(orbit: &Orbit, name: &str, root: PathBuf) {
    std::fs::create_dir_all(&root).unwrap();
    let endpoint = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config: EndpointConfig::Local(LocalConfig { root }),
    };
    orbit.put_endpoint(&endpoint, 64).await.unwrap();
}

/// The no-op runs on one store: HTTP agents and in-process ones, per agent count. False
/// when one timed out (its jobs are left in the queue).
async fn noop_runs(
    orbit: &Orbit,
    base: &str,
    admin: &str,
    backend: &'static str,
    s: &Settings,
    succeeded: &mut i64,
    rows: &mut Vec<NoopRow>,
) -> bool {
    let paths: Vec<&'static str> = ["http", "engine", "store"]
        .into_iter()
        .filter(|path| s.runs(path))
        .collect();
    let mut next_job = 0;
    for path in paths {
        for &count in &s.counts {
            let requests: Vec<JobRequest> = (next_job..next_job + s.jobs)
                .map(|i| noop_request(i, "noop-src", "noop-dst"))
                .collect();
            next_job += s.jobs;
            submit(orbit, &requests).await;
            let credentials: Vec<String> = {
                let (base, admin, slots) = (base.to_string(), admin.to_string(), s.slots);
                tokio::task::spawn_blocking(move || {
                    let http = http_client();
                    (0..count)
                        .map(|i| {
                            let name = format!("{path}{count}-{i}");
                            enrolled_agent(&http, &base, &admin, &name, slots)
                        })
                        .collect()
                })
                .await
                .unwrap()
            };
            let progress = Progress::new(s.jobs, s.timeout);
            let started = Instant::now();
            let mut run = Run::default();
            if path == "http" {
                let threads: Vec<_> = credentials
                    .into_iter()
                    .map(|auth| {
                        let (base, progress, slots) = (base.to_string(), progress.clone(), s.slots);
                        std::thread::spawn(move || http_agent(&base, &auth, slots, &progress))
                    })
                    .collect();
                let joined = tokio::task::spawn_blocking(move || {
                    threads
                        .into_iter()
                        .map(|thread| thread.join().unwrap())
                        .collect::<Vec<Run>>()
                })
                .await
                .unwrap();
                joined.into_iter().for_each(|agent| run.merge(agent));
            } else {
                let tasks: Vec<_> = credentials
                    .into_iter()
                    .map(|auth| {
                        let (orbit, progress) = (orbit.clone(), progress.clone());
                        match path {
                            "engine" => tokio::spawn(engine_agent(orbit, auth, s.slots, progress)),
                            _ => tokio::spawn(store_agent(orbit, auth, s.slots, progress)),
                        }
                    })
                    .collect();
                for task in tasks {
                    run.merge(task.await.unwrap());
                }
            }
            run.wall = progress.wall_since(started);
            run.done = progress.done.load(Ordering::Relaxed);
            let cut = run.done < s.jobs;
            *succeeded += run.done as i64;
            let (stored, queued) = succeeded_and_queued(orbit).await;
            assert_eq!(
                stored, *succeeded,
                "{backend} {path} {count}: succeeded jobs in the store"
            );
            eprintln!(
                "{backend} {path} {count} agents: {} jobs in {:.2} s{}",
                run.done,
                run.wall.as_secs_f64(),
                if cut { " (timed out)" } else { "" }
            );
            rows.push(NoopRow {
                backend,
                path,
                agents: count,
                run,
                cut,
            });
            if cut {
                // The jobs a timed-out run left would be the next run's: stop here.
                eprintln!("{backend}: {queued} jobs left queued; no more runs on it");
                return false;
            }
        }
    }
    true
}

/// A real agent process and where its log goes.
struct AgentProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts the example worker in agent mode with one slot, enrolling with `token`.
    fn start(worker: &Path, dir: &Path, name: &str, base: &str, token: &str) -> AgentProcess {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "workers = 1\n[agent]\ncontrol_plane = [\"{base}\"]\n\
                 credential_file = \"{}\"\nenrolment_token = \"{token}\"\n",
                dir.join(format!("{name}.credential")).display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(worker)
            .arg("--config")
            .arg(&config)
            .env_remove("FILE_ORBIT_STORE_URL")
            .env_remove("FILE_ORBIT_WORKERS")
            .env_remove("FILE_ORBIT_CONFIG")
            .env_remove("FILE_ORBIT_ENROLMENT_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", worker.display()));
        AgentProcess {
            name: name.into(),
            child,
            log,
        }
    }

    /// Panics, with the agent's log, when the process has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "agent {} exited ({status}):\n{}\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default(),
                std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
            );
        }
    }

    /// SIGTERM, then at most 30 s for the process to end (killed after that).
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("agent {} did not stop within 30 s: killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of agent `name` as the admin API lists it.
fn agent_status(http: &ureq::Agent, base: &str, admin: &str, name: &str) -> String {
    let mut response = http
        .get(&format!("{base}/api/v1/agents/{name}"))
        .header("Authorization", admin)
        .call()
        .unwrap();
    let body: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap_or_default();
    body["status"].as_str().unwrap_or_default().to_string()
}

/// The copy runs on one store: per agent count, M files copied by real agent processes.
async fn copy_runs(
    orbit: &Orbit,
    base: &str,
    admin: &str,
    backend: &'static str,
    s: &Settings,
    succeeded: &mut i64,
    rows: &mut Vec<CopyRow>,
) {
    assert!(
        s.worker.is_file(),
        "no worker at {} (cargo build --release --example worker --features worker, or set \
         FILE_ORBIT_BENCH_AGENTS_WORKER)",
        s.worker.display()
    );
    let work = tempfile::tempdir().unwrap();
    let size = s.file_kib * 1024;
    let source = work.path().join("src");
    std::fs::create_dir_all(source.join("incoming")).unwrap();
    for i in 0..s.files {
        let bytes: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
        std::fs::write(source.join(format!("incoming/copy-{i}.bin")), bytes).unwrap();
    }
    put_local(orbit, "copy-src", source).await;
    for &count in &s.counts {
        let destination = work.path().join(format!("dst-{count}"));
        let dst_name = format!("copy-dst-{count}");
        put_local(orbit, &dst_name, destination.clone()).await;
        let names: Vec<String> = (0..count).map(|i| format!("copy{count}-{i}")).collect();
        let (worker, dir, base_url, admin_key) = (
            s.worker.clone(),
            work.path().to_path_buf(),
            base.to_string(),
            admin.to_string(),
        );
        let timeout = s.timeout;
        let agents = tokio::task::spawn_blocking(move || {
            let http = http_client();
            let mut agents: Vec<AgentProcess> = names
                .iter()
                .map(|name| {
                    let token = create_agent(&http, &base_url, &admin_key, name);
                    AgentProcess::start(&worker, &dir, name, &base_url, &token)
                })
                .collect();
            // Ready: enrolled (after starting rclone) and in contact.
            let deadline = Instant::now() + timeout;
            for agent in &mut agents {
                while agent_status(&http, &base_url, &admin_key, &agent.name) != "online" {
                    agent.check_alive();
                    assert!(Instant::now() < deadline, "agent {} not online", agent.name);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            agents
        })
        .await
        .unwrap();
        let requests: Vec<JobRequest> = (0..s.files)
            .map(|i| {
                JobRequest::new(TransferSpec::file(
                    "copy-src",
                    &format!("incoming/copy-{i}.bin"),
                    &dst_name,
                    PathTemplate::parse("out/{filename}").unwrap(),
                ))
            })
            .collect();
        let started = Instant::now();
        submit(orbit, &requests).await;
        let target = *succeeded + s.files as i64;
        let mut agents = agents;
        loop {
            let counts = orbit.store().job_counts().await.unwrap();
            let done = counts.get(JobState::Succeeded);
            if done >= target {
                break;
            }
            agents.iter_mut().for_each(AgentProcess::check_alive);
            assert!(
                started.elapsed() < s.timeout,
                "{backend} copies with {count} agents: {} of {} done after {:?} ({counts:?})",
                done - *succeeded,
                s.files,
                s.timeout
            );
            // Not more often: counting the jobs is a query the store pays for too.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let wall = started.elapsed();
        *succeeded = target;
        tokio::task::spawn_blocking(move || agents.into_iter().for_each(AgentProcess::stop))
            .await
            .unwrap();
        let wrong: Vec<String> = (0..s.files)
            .filter_map(|i| {
                let path = destination.join(format!("out/copy-{i}.bin"));
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.len() == size as u64 => None,
                    Ok(meta) => Some(format!("{}: {} bytes", path.display(), meta.len())),
                    Err(err) => Some(format!("{}: {err}", path.display())),
                }
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{backend} copies with {count} agents: {} of {} destination files wrong, e.g. {}",
            wrong.len(),
            s.files,
            wrong[0]
        );
        eprintln!(
            "{backend} copies with {count} agents: {} files in {:.2} s",
            s.files,
            wall.as_secs_f64()
        );
        rows.push(CopyRow {
            backend,
            agents: count,
            files: s.files,
            wall,
        });
    }
}

async fn bench_backend(
    backend: &'static str,
    store_url: &str,
    s: &Settings,
    noop_rows: &mut Vec<NoopRow>,
    copy_rows: &mut Vec<CopyRow>,
) {
    let orbit = Orbit::open(OrbitOptions {
        store_url: store_url.to_string(),
        master_key: Some(file_orbit::Secret::new(MASTER_KEY)),
        ..OrbitOptions::default()
    })
    .await
    .unwrap();
    let roots = tempfile::tempdir().unwrap();
    for name in ["noop-src", "noop-dst"] {
        put_local(&orbit, name, roots.path().join(name)).await;
    }
    let (server, base, admin) = start_server_as(&orbit, Role::Admin).await;
    let mut succeeded = 0;
    let clean = noop_runs(&orbit, &base, &admin, backend, s, &mut succeeded, noop_rows).await;
    if s.runs("copy") && s.files > 0 && clean {
        copy_runs(&orbit, &base, &admin, backend, s, &mut succeeded, copy_rows).await;
    }
    server.shutdown().await;
    orbit.close().await;
}

fn mean_ms(latencies: &[Duration]) -> String {
    match latencies.len() {
        0 => "-".into(),
        n => ms(latencies.iter().sum::<Duration>() / n as u32),
    }
}

fn print_tables(s: &Settings, noop: &mut [NoopRow], copies: &[CopyRow]) {
    if !noop.is_empty() {
        println!(
            "\n## No-op jobs leased and completed ({} slots per agent)\n",
            s.slots
        );
        println!(
            "| backend | path | agents | jobs | s | jobs/s | lease p50 / p99 ms | \
             outcomes p50 / p99 ms | credential lookup mean ms | goal 1,000/s with 4 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    for row in noop.iter_mut() {
        let run = &mut row.run;
        run.leases.sort();
        run.outcomes.sort();
        let rate = run.done as f64 / run.wall.as_secs_f64();
        let goal = match (row.path, row.agents) {
            ("http", 4) => format!("{:.2}×", rate / 1000.0),
            _ => "".into(),
        };
        println!(
            "| {} | {} | {} | {}{} | {:.2} | {:.0} | {} / {} | {} / {} | {} | {} |",
            row.backend,
            match row.path {
                "http" => "HTTP (agent API)",
                "engine" => "in-process engine calls",
                _ => "store statements only",
            },
            row.agents,
            run.done,
            if row.cut { " (timed out)" } else { "" },
            run.wall.as_secs_f64(),
            rate,
            ms(percentile(&run.leases, 0.5)),
            ms(percentile(&run.leases, 0.99)),
            ms(percentile(&run.outcomes, 0.5)),
            ms(percentile(&run.outcomes, 0.99)),
            mean_ms(&run.auth),
            goal,
        );
    }
    if !copies.is_empty() {
        println!(
            "\n## Real one-file copies by agent processes ({} KiB files, workers = 1 each)\n",
            s.file_kib
        );
        println!("| backend | agents | files | s | jobs/s | vs 1 agent (goal ≥ 3× with 4) |");
        println!("|---|---|---|---|---|---|");
    }
    for row in copies {
        let rate = row.files as f64 / row.wall.as_secs_f64();
        let one = copies
            .iter()
            .find(|other| other.backend == row.backend && other.agents == 1)
            .map(|one| one.files as f64 / one.wall.as_secs_f64());
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {} |",
            row.backend,
            row.agents,
            row.files,
            row.wall.as_secs_f64(),
            rate,
            one.map_or("-".into(), |one| format!("{:.2}×", rate / one)),
        );
    }
}

fn main() {
    let s = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut noop_rows, mut copy_rows) = (Vec::new(), Vec::new());
        for backend in &s.backends {
            match backend.as_str() {
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("agents.db").display());
                    bench_backend("SQLite", &url, &s, &mut noop_rows, &mut copy_rows).await;
                }
                "postgres" => {
                    let Ok(admin) = std::env::var("FILE_ORBIT_TEST_POSTGRES_URL") else {
                        println!("postgres: skipped (FILE_ORBIT_TEST_POSTGRES_URL is not set)");
                        continue;
                    };
                    let db = PgDb::create(&admin, "agents").await;
                    bench_backend("PostgreSQL", &db.url, &s, &mut noop_rows, &mut copy_rows).await;
                    db.drop().await;
                }
                other => panic!("FILE_ORBIT_BENCH_AGENTS_BACKENDS: unknown backend {other:?}"),
            }
        }
        print_tables(&s, &mut noop_rows, &copy_rows);
    });
}
