//! Retries, on SQLite and on the real PostgreSQL test server: a transfer to an SFTP server
//! that is down for the first attempts succeeds once it comes back (a private
//! `rclone serve sftp` started mid-test); a permanent error (authentication failed on the
//! sshd test server) goes straight to the dead letter without retrying, and again after a
//! manual retry; a retryable failure that never heals (a server that does not speak SSH)
//! is dead after exactly `max_attempts` attempts, spaced by growing backoff delays.

mod common;

use common::{orbit_options, postgres_url, sftp_config, sqlite_url, unique};
use file_orbit::Secret;
use file_orbit::endpoint::{
    Endpoint, EndpointConfig, HostKeyCheck, LocalConfig, SftpAuth, SftpConfig,
};
use file_orbit::engine::{AuditRecord, Job, JobRequest, JobState, Orbit, RetryPolicy};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `$body(store_url)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::init_tracing();
                let (url, _dir) = super::sqlite_url();
                super::$name(&url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::init_tracing();
                let url = super::postgres_url().await;
                super::$name(&url).await;
            }
        }
    )*};
}

on_both_stores!(
    sftp_down_then_back_succeeds_after_retries,
    authentication_failure_goes_straight_to_dead_letter,
    retryable_failure_that_never_heals_dies_after_max_attempts,
);

/// Logs (engine and rclone) as `RUST_LOG` asks, shown with a failing test's output.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(60);

const USER: &str = "fo-retry";

/// A loopback port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A fresh ed25519 host key in `dir` and a known_hosts file naming it for
/// `127.0.0.1:port`; returns (private key path, known_hosts path).
fn host_key(dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let key = dir.join("host_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "fo-retry-host", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed: {status}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    let (algorithm, blob) = (fields.next().unwrap(), fields.next().unwrap());
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {algorithm} {blob}\n"),
    )
    .unwrap();
    (key, known_hosts)
}

/// `rclone serve sftp` as a child process, killed (and reaped) when dropped; its log goes
/// to `serve.log` in the server's config dir.
struct SftpServer {
    child: Child,
    log: PathBuf,
}

impl SftpServer {
    /// Serves `dir` on 127.0.0.1:`port` for `USER`/`password` with host key `key`, and
    /// waits (bounded) until the port accepts connections.
    fn start(dir: &Path, port: u16, password: &str, key: &Path, config_dir: &Path) -> SftpServer {
        let rclone = common::env("RCLONE");
        let log = config_dir.join("serve.log");
        let child = Command::new(rclone)
            .arg("serve")
            .arg("sftp")
            .arg(dir)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--user", USER, "--pass", password])
            .arg("--key")
            .arg(key)
            .arg("--authorized-keys")
            .arg(config_dir.join("no_authorized_keys"))
            .arg("--config")
            .arg(config_dir.join("rclone.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("rclone serve sftp starts");
        let mut server = SftpServer { child, log };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("rclone serve sftp exited early: {status}\n{}", server.log());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "rclone serve sftp did not listen on {address} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP server that answers every connection with an over-long line instead of
/// an SSH banner, so an SSH client fails its handshake at once ("overflow reading version
/// string"). Stopped when dropped.
struct NotSsh {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl NotSsh {
    fn start() -> NotSsh {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let accepting = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = stream.write_all(&[b'x'; 300]);
                    // Read until the client hangs up, so closing never resets the
                    // connection before the client has read the reply.
                    let mut sink = [0u8; 1024];
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        NotSsh {
            port,
            stop,
            accepting: Some(accepting),
        }
    }
}

impl Drop for NotSsh {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// A local endpoint on its own temp dir holding `payload.bin` = `body`.
fn local_source(dir: &Path, body: &[u8]) -> Endpoint {
    std::fs::write(dir.join("payload.bin"), body).unwrap();
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "src".into(),
        config: EndpointConfig::Local(LocalConfig {
            root: dir.to_path_buf(),
        }),
    }
}

/// An SFTP endpoint `dst` on 127.0.0.1:`port`, password auth, host key from `known_hosts`.
fn sftp_endpoint(port: u16, password: &str, known_hosts: &Path) -> Endpoint {
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "dst".into(),
        config: EndpointConfig::Sftp(SftpConfig {
            host: "127.0.0.1".into(),
            port,
            user: USER.into(),
            auth: SftpAuth::Password {
                password: Secret::new(password),
            },
            host_key: HostKeyCheck::KnownHostsFile {
                path: known_hosts.to_path_buf(),
            },
            root: String::new(),
            server_hashes: false,
        }),
    }
}

/// Copies `src:payload.bin` to `dst:<destination>` with `policy`.
fn copy_request(destination: &str, policy: RetryPolicy) -> JobRequest {
    let mut request = JobRequest::new(TransferSpec::file(
        "src",
        "payload.bin",
        "dst",
        PathTemplate::parse(destination).unwrap(),
    ));
    request.retry = policy;
    request
}

fn payload() -> Vec<u8> {
    (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Polls job `id` until `done` holds; panics with the last state after `WAIT`.
async fn wait_for(orbit: &Orbit, id: i64, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticker.tick().await;
        let job = orbit.job(id).await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id}: not {what} after {WAIT:?}: {:?}, attempts {}, last error {:?} ({:?})",
            job.state,
            job.attempts,
            job.last_error,
            job.last_error_kind
        );
    }
}

/// Audit records about job `id`, oldest first.
async fn audit_of(orbit: &Orbit, id: i64) -> Vec<AuditRecord> {
    let subject = format!("job/{id}");
    let mut records: Vec<AuditRecord> = orbit
        .audit_log(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.subject == subject)
        .collect();
    records.reverse();
    records
}

fn count(records: &[AuditRecord], action: &str) -> usize {
    records.iter().filter(|r| r.action == action).count()
}

/// `started_at` of every attempt of job `id`, in order, read straight from the store.
async fn attempt_starts(store_url: &str, id: i64) -> Vec<i64> {
    use sqlx::Connection;
    const SQL: &str = "SELECT started_at FROM job_attempts WHERE job_id = $1 ORDER BY id";
    if store_url.starts_with("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(store_url).await.unwrap();
        sqlx::query_scalar(SQL)
            .bind(id)
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(store_url).await.unwrap();
        sqlx::query_scalar(SQL)
            .bind(id)
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }
}

/// SFTP is down for the first attempts (connection refused: retryable), then a server
/// starts on that port and the next attempt delivers the file.
async fn sftp_down_then_back_succeeds_after_retries(store_url: &str) {
    let temp = tempfile::tempdir().unwrap();
    let (source_dir, served_dir, server_dir) = (
        temp.path().join("source"),
        temp.path().join("served"),
        temp.path().join("server"),
    );
    for dir in [&source_dir, &served_dir, &server_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let port = free_port();
    let password = unique("pw");
    let (key, known_hosts) = host_key(&server_dir, port);
    let body = payload();

    let orbit = Orbit::open(orbit_options(store_url)).await.unwrap();
    orbit
        .put_endpoint(&local_source(&source_dir, &body), 4)
        .await
        .unwrap();
    orbit
        .put_endpoint(&sftp_endpoint(port, &password, &known_hosts), 4)
        .await
        .unwrap();
    let policy = RetryPolicy {
        max_attempts: 10,
        base_delay_ms: 200,
        max_delay_ms: 1000,
    };
    let id = orbit
        .submit(&copy_request("inbox/payload.bin", policy))
        .await
        .unwrap();
    let workers = orbit.start_workers(2);

    let down = wait_for(&orbit, id, "queued after two refused attempts", |job| {
        job.attempts >= 2
            && job.state == JobState::Queued
            && job.last_error_kind.as_deref() == Some("Connection")
    })
    .await;
    let error = down.last_error.clone().unwrap_or_default();
    assert!(
        error.to_lowercase().contains("connection refused"),
        "unexpected error while the server is down: {error}"
    );
    assert!(
        !error.contains(&password),
        "error shows the password: {error}"
    );

    let server = SftpServer::start(&served_dir, port, &password, &key, &server_dir);
    let job = wait_for(&orbit, id, "finished", |job| job.state.is_terminal()).await;
    workers.shutdown().await;
    let server_log = server.log();
    drop(server);

    assert_eq!(
        job.state,
        JobState::Succeeded,
        "last error {:?} ({:?}); rclone serve sftp said:\n{server_log}",
        job.last_error,
        job.last_error_kind
    );
    assert!(job.attempts >= 3, "attempts {}", job.attempts);
    assert!(job.attempts <= 10, "attempts {}", job.attempts);
    assert_eq!(job.bytes, body.len() as i64);
    let arrived = std::fs::read(served_dir.join("inbox/payload.bin")).unwrap();
    assert!(arrived == body, "the served file differs from the source");

    let audit = audit_of(&orbit, id).await;
    let retries = count(&audit, "job.retry_scheduled");
    assert!(retries >= 2, "retry_scheduled records: {retries}");
    assert_eq!(
        retries as i64,
        job.attempts - 1,
        "every failed attempt schedules one retry"
    );
    assert_eq!(count(&audit, "job.started") as i64, job.attempts);
    assert_eq!(count(&audit, "job.succeeded"), 1);
    assert_eq!(count(&audit, "job.dead"), 0);
    for record in audit.iter().filter(|r| r.action == "job.retry_scheduled") {
        assert_eq!(record.detail["error_kind"], "Connection", "{record:?}");
        assert_eq!(record.detail["retryable"], true, "{record:?}");
    }
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
}

/// A wrong password is permanent: dead after one attempt, however many are allowed;
/// a manual retry runs it once more and it is dead again.
async fn authentication_failure_goes_straight_to_dead_letter(store_url: &str) {
    let temp = tempfile::tempdir().unwrap();
    let body = payload();
    let wrong = unique("wrong-password");
    let mut config = sftp_config(&unique("fo-retry"));
    config.auth = SftpAuth::Password {
        password: Secret::new(wrong.clone()),
    };
    let destination = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "dst".into(),
        config: EndpointConfig::Sftp(config),
    };

    let orbit = Orbit::open(orbit_options(store_url)).await.unwrap();
    orbit
        .put_endpoint(&local_source(temp.path(), &body), 4)
        .await
        .unwrap();
    orbit.put_endpoint(&destination, 4).await.unwrap();
    let policy = RetryPolicy {
        max_attempts: 5,
        base_delay_ms: 100,
        max_delay_ms: 200,
    };
    let id = orbit
        .submit(&copy_request("payload.bin", policy))
        .await
        .unwrap();

    let check_dead = |job: &Job| {
        assert_eq!(job.state, JobState::Dead);
        assert_eq!(job.attempts, 1, "a permanent error is not retried");
        assert_eq!(job.max_attempts, 5);
        assert_eq!(job.last_error_kind.as_deref(), Some("Authentication"));
        let error = job.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("unable to authenticate"),
            "unexpected error: {error}"
        );
        assert!(!error.contains(&wrong), "error shows the password: {error}");
        assert!(job.finished_at.is_some());
    };

    let workers = orbit.start_workers(2);
    let job = wait_for(&orbit, id, "finished", |job| job.state.is_terminal()).await;
    // Stopped so the manual retry below can be seen queued before a worker takes it.
    workers.shutdown().await;
    check_dead(&job);
    let audit = audit_of(&orbit, id).await;
    assert_eq!(count(&audit, "job.dead"), 1);
    assert_eq!(count(&audit, "job.retry_scheduled"), 0);
    assert_eq!(count(&audit, "job.started"), 1);
    let dead = audit.iter().find(|r| r.action == "job.dead").unwrap();
    assert_eq!(dead.detail["error_kind"], "Authentication");
    assert_eq!(dead.detail["retryable"], false);
    assert!(!dead.detail.to_string().contains(&wrong));

    orbit.retry(id).await.unwrap();
    let queued = orbit.job(id).await.unwrap();
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.finished_at, None);

    let workers = orbit.start_workers(2);
    let job = wait_for(&orbit, id, "finished again", |job| job.state.is_terminal()).await;
    workers.shutdown().await;
    check_dead(&job);
    let audit = audit_of(&orbit, id).await;
    assert_eq!(count(&audit, "job.retried"), 1);
    assert_eq!(count(&audit, "job.dead"), 2);
    assert_eq!(count(&audit, "job.started"), 2);
    assert_eq!(count(&audit, "job.retry_scheduled"), 0);
    assert_eq!(attempt_starts(store_url, id).await.len(), 2);
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
}

/// A server that never heals: every attempt fails at once with a retryable error. It is
/// retried with doubling delays, dead after exactly `max_attempts`, never leased before
/// its `run_after`.
///
/// Not a port with nothing listening: rclone's SFTP backend itself retries a refused dial
/// (low-level retries, 0.1 s doubling to 2 s, 10 tries), so each such attempt takes about
/// 11.5 s and would hide the engine's own delays. A listener that answers with a
/// non-SSH banner fails the handshake in milliseconds with no low-level retry, and the
/// engine classifies that as `Remote`, which is retryable.
async fn retryable_failure_that_never_heals_dies_after_max_attempts(store_url: &str) {
    const BASE_MS: i64 = 200;
    const MAX_ATTEMPTS: i64 = 4;
    let temp = tempfile::tempdir().unwrap();
    let server = NotSsh::start();
    let (_, known_hosts) = host_key(temp.path(), server.port);
    let source_dir = temp.path().join("source");
    std::fs::create_dir_all(&source_dir).unwrap();

    let orbit = Orbit::open(orbit_options(store_url)).await.unwrap();
    orbit
        .put_endpoint(&local_source(&source_dir, &payload()), 4)
        .await
        .unwrap();
    orbit
        .put_endpoint(&sftp_endpoint(server.port, "unused", &known_hosts), 4)
        .await
        .unwrap();
    let policy = RetryPolicy {
        max_attempts: MAX_ATTEMPTS as u32,
        base_delay_ms: BASE_MS as u64,
        max_delay_ms: 5_000,
    };
    let id = orbit
        .submit(&copy_request("payload.bin", policy))
        .await
        .unwrap();
    let workers = orbit.start_workers(2);
    let job = wait_for(&orbit, id, "finished", |job| job.state.is_terminal()).await;
    workers.shutdown().await;
    drop(server);

    assert_eq!(job.state, JobState::Dead);
    assert_eq!(
        job.attempts, MAX_ATTEMPTS,
        "dead after exactly max_attempts"
    );
    assert_eq!(job.last_error_kind.as_deref(), Some("Remote"));
    let error = job.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("ssh: handshake failed"),
        "unexpected error: {error}"
    );

    let audit = audit_of(&orbit, id).await;
    assert_eq!(count(&audit, "job.started") as i64, MAX_ATTEMPTS);
    assert_eq!(count(&audit, "job.dead"), 1);
    let scheduled: Vec<&AuditRecord> = audit
        .iter()
        .filter(|r| r.action == "job.retry_scheduled")
        .collect();
    assert_eq!(scheduled.len() as i64, MAX_ATTEMPTS - 1);
    for record in &scheduled {
        assert_eq!(record.detail["retryable"], true, "{record:?}");
    }
    let dead = audit.iter().find(|r| r.action == "job.dead").unwrap();
    assert_eq!(dead.detail["retryable"], true, "dead for lack of attempts");
    assert_eq!(dead.detail["attempt"], MAX_ATTEMPTS);

    // The delay each retry was scheduled with: `run_after` minus the record's time. The
    // record is written a moment after the delay was computed, hence a little slack
    // below; backon's jitter adds up to 100 % above. Delay n is base * 2^(n-1), so the
    // last one is longer than any jittered constant delay could be.
    let slack = 100;
    let run_after: Vec<i64> = scheduled
        .iter()
        .map(|r| r.detail["run_after"].as_i64().unwrap())
        .collect();
    let delays: Vec<i64> = scheduled
        .iter()
        .zip(&run_after)
        .map(|(r, run_after)| run_after - r.at)
        .collect();
    for (n, delay) in delays.iter().enumerate() {
        let nominal = BASE_MS << n;
        assert!(
            *delay >= nominal - slack && *delay <= 2 * nominal,
            "delay {} should be {nominal} ms plus jitter: {delays:?}",
            n + 1
        );
    }

    // The attempts really waited: none started before its run_after.
    let starts = attempt_starts(store_url, id).await;
    assert_eq!(starts.len() as i64, MAX_ATTEMPTS, "attempt rows {starts:?}");
    for (n, run_after) in run_after.iter().enumerate() {
        assert!(
            starts[n + 1] >= *run_after,
            "attempt {} started before its run_after: {starts:?} vs {run_after:?}",
            n + 2
        );
        let gap = starts[n + 1] - starts[n];
        assert!(gap >= (BASE_MS << n) - slack, "attempt starts {starts:?}");
    }
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
}
