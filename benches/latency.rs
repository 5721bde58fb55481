//! Many small files over a distance: the real test servers (sshd SFTP, Samba SMB,
//! `rclone serve s3`) behind a relay that adds round-trip time (tests/common/latency.rs:
//! each chunk held half the RTT per direction, throughput not capped), and the same cells
//! without the relay for reference. Per target and RTT, in one run:
//!
//! (a) a tree of N × 4 KiB (4 top dirs × 5 subdirs): File Orbit's `TransferJob` with its
//!     defaults, vs the rclone CLI's `copy` with its default flags, vs the CLI with
//!     `--transfers 32 --checkers 32`;
//! (b) N one-file jobs (one per file of the same tree) run by the engine
//!     (`Orbit::start_workers`, SQLite store), vs one CLI `copyto` per file (a sample of
//!     them is timed and extrapolated to N), vs the CLI's batch `copy` with its default
//!     flags (the CLI column of (a): the same N files).
//!
//! Every copy goes to a fresh directory and is counted afterwards (untimed), so a tool
//! that skipped files fails instead of looking fast. Needs the servers and env file of
//! `scripts/test-servers.sh` and the rclone CLI of librclone's release
//! (`FILE_ORBIT_RCLONE_CLI`, else `rclone` on PATH; `scripts/bench.sh` builds it).
//! Settings (env):
//!   FILE_ORBIT_BENCH_LATENCY_FILES=200      N (the table uses 2000)
//!   FILE_ORBIT_BENCH_LATENCY_RTT_MS=20,0    added round-trip times (0: no relay)
//!   FILE_ORBIT_BENCH_TARGETS=sftp,smb,s3
//!   FILE_ORBIT_BENCH_LATENCY_SLOTS=16       engine worker slots (and the endpoint's
//!                                           max_concurrent)
//!   FILE_ORBIT_BENCH_LATENCY_COPYTO=20      CLI copyto calls timed per cell
//!   FILE_ORBIT_BENCH_TIMEOUT_S=600          per run
//! Prints markdown tables; a ratio > 1 means File Orbit is faster.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/settings.rs"]
mod settings;
use settings::{env_list, env_or};
#[path = "../tests/common/latency.rs"]
mod latency;

use cli::{connection_string, first_line};
use file_orbit::Secret;
use file_orbit::endpoint::{
    AwsCredentials, Endpoint, EndpointConfig, HostKeyCheck, LocalConfig, S3Config, SftpAuth,
    SftpConfig, SmbConfig,
};
use file_orbit::engine::{JobRequest, JobState, Orbit, OrbitOptions};
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::Rclone;
use file_orbit::transfer::{TransferJob, TransferSpec};
use latency::LatencyRelay;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 4096;

fn test_env(name: &str) -> String {
    let key = format!("FILE_ORBIT_TEST_{name}");
    std::env::var(&key).unwrap_or_else(|_| {
        panic!("{key} is not set: source the env file of scripts/test-servers.sh")
    })
}

/// The relative path of file `i` of the tree.
fn tree_path(i: usize) -> String {
    format!("d{}/s{}/f{i:05}.bin", i % 4, (i / 4) % 5)
}

/// N files of 4 KiB of distinct bytes.
fn write_tree(root: &Path, files: usize) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; FILE_BYTES];
    for i in 0..files {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let path = root.join(tree_path(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &buf).unwrap();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sftp,
    Smb,
    S3,
}

impl Target {
    fn parse(key: &str) -> Target {
        match key {
            "sftp" => Target::Sftp,
            "smb" => Target::Smb,
            "s3" => Target::S3,
            other => panic!("unknown target {other:?} in FILE_ORBIT_BENCH_TARGETS"),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Target::Sftp => "SFTP (sshd)",
            Target::Smb => "SMB (Samba)",
            Target::S3 => "S3 (rclone serve s3)",
        }
    }
    /// The server's address.
    fn address(self) -> String {
        match self {
            Target::Sftp => format!("{}:{}", test_env("SFTP_HOST"), test_env("SFTP_PORT")),
            Target::Smb => format!("{}:{}", test_env("SMB_HOST"), test_env("SMB_PORT")),
            Target::S3 => test_env("RCLONE_S3_ENDPOINT")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    }
    /// An endpoint on the server at `address`, rooted at `root`.
    fn endpoint(self, address: &str, root: &str) -> Endpoint {
        let (host, port) = address.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        let config = match self {
            Target::Sftp => {
                let known = std::fs::read_to_string(test_env("SFTP_KNOWN_HOSTS")).unwrap();
                let key: Vec<&str> = known.split_whitespace().skip(1).take(2).collect();
                EndpointConfig::Sftp(SftpConfig {
                    host: host.into(),
                    port,
                    user: test_env("SFTP_USER"),
                    auth: SftpAuth::Password {
                        password: Secret::new(test_env("SFTP_PASSWORD")),
                    },
                    // Pinned: the relay's port is not the one known_hosts names.
                    host_key: HostKeyCheck::Pinned {
                        keys: vec![key.join(" ")],
                    },
                    root: root.into(),
                    server_hashes: false,
                })
            }
            Target::Smb => EndpointConfig::Smb(SmbConfig {
                host: host.into(),
                port,
                user: test_env("SMB_USER"),
                password: Secret::new(test_env("SMB_PASSWORD")),
                domain: "WORKGROUP".into(),
                share: test_env("SMB_SHARE"),
                root: root.into(),
            }),
            Target::S3 => EndpointConfig::S3(S3Config {
                provider: None,
                bucket: test_env("RCLONE_S3_BUCKET"),
                prefix: root.into(),
                region: Some(test_env("RCLONE_S3_REGION")),
                endpoint_url: Some(format!("http://{address}")),
                credentials: AwsCredentials::new(
                    test_env("RCLONE_S3_ACCESS_KEY_ID"),
                    Secret::new(test_env("RCLONE_S3_SECRET_ACCESS_KEY")),
                ),
                force_path_style: Some(true),
                storage_class: None,
                server_side_encryption: None,
            }),
        };
        Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "partner".into(),
            config,
        }
    }
}

struct Bench {
    rclone: &'static Rclone,
    runtime: tokio::runtime::Runtime,
    cli: String,
    files: usize,
    slots: usize,
    copyto: usize,
    timeout: Duration,
    /// Holds `src/` (the tree) and the engine's stores.
    dir: PathBuf,
    source: Endpoint,
}

/// One cell's timings in seconds (None: the run failed; why is printed).
#[derive(Default)]
struct Row {
    tree_ours: Option<f64>,
    tree_cli: Option<f64>,
    tree_cli32: Option<f64>,
    jobs_ours: Option<f64>,
    /// Extrapolated to N from the timed sample.
    copyto: Option<f64>,
}

impl Bench {
    /// Files under `path` of `endpoint` (untimed check).
    fn count(&self, endpoint: &Endpoint, path: &str) -> Result<usize, String> {
        let fs = endpoint.to_rclone(self.rclone, path).unwrap();
        let size = self
            .rclone
            .rpc("operations/size", &json!({"fs": fs}))
            .map_err(|err| format!("size of the copy: {err}"))?;
        Ok(size["count"].as_u64().unwrap_or(0) as usize)
    }

    fn checked(
        &self,
        what: &str,
        endpoint: &Endpoint,
        path: &str,
        expected: usize,
        timed: Result<f64, String>,
    ) -> Option<f64> {
        let result = timed.and_then(|seconds| match self.count(endpoint, path)? {
            n if n == expected => Ok(seconds),
            n => Err(format!("{n} of {expected} files arrived")),
        });
        match result {
            Ok(seconds) => {
                eprintln!("  {what}: {seconds:.2} s");
                Some(seconds)
            }
            Err(err) => {
                eprintln!("  {what}: FAILED: {err}");
                None
            }
        }
    }

    fn tree_ours(&self, dst: &Endpoint, path: &str) -> Result<f64, String> {
        let spec = TransferSpec::tree("inbox", "", &dst.name, PathTemplate::parse(path).unwrap());
        let (rclone, source) = (self.rclone, &self.source);
        self.runtime.block_on(async {
            let started = Instant::now();
            let job = TransferJob::start(rclone, &spec, source, dst, chrono::Utc::now())
                .await
                .map_err(|err| err.to_string())?;
            tokio::time::timeout(self.timeout, job.wait())
                .await
                .map_err(|_| format!("timed out after {:?}", self.timeout))?
                .map_err(|err| err.to_string())?;
            Ok(started.elapsed().as_secs_f64())
        })
    }

    fn cli(&self, args: &[String]) -> Result<f64, String> {
        let started = Instant::now();
        let mut child = Command::new(&self.cli)
            .args(args)
            .args(["--config", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", self.cli))?;
        let deadline = started + self.timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                if status.success() {
                    return Ok(started.elapsed().as_secs_f64());
                }
                let mut text = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut text);
                }
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                return Err(format!("rclone failed ({status}): {}", tail.join(" | ")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {:?}", self.timeout));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn tree_cli(&self, dst: &Endpoint, path: &str, extra: &[&str]) -> Result<f64, String> {
        let mut args = vec![
            "copy".to_string(),
            self.dir.join("src").display().to_string(),
            connection_string(&dst.to_rclone(self.rclone, path).unwrap()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.cli(&args)
    }

    /// `self.copyto` CLI copyto calls, one after another, extrapolated to N files.
    fn copyto_cli(&self, dst: &Endpoint, path: &str) -> Result<f64, String> {
        let mut total = 0.0;
        for i in 0..self.copyto {
            let args = vec![
                "copyto".to_string(),
                self.dir
                    .join("src")
                    .join(tree_path(i))
                    .display()
                    .to_string(),
                connection_string(
                    &dst.to_rclone(self.rclone, &format!("{path}/{}", tree_path(i)))
                        .unwrap(),
                ),
            ];
            total += self.cli(&args)?;
        }
        Ok(total * self.files as f64 / self.copyto as f64)
    }

    /// N one-file jobs through the engine's workers: from starting the workers to all
    /// succeeded.
    fn jobs_ours(&self, dst: &Endpoint, path: &str, run: usize) -> Result<f64, String> {
        let store = self.dir.join(format!("orbit-{run}.db"));
        let options = OrbitOptions {
            store_url: format!("sqlite://{}", store.display()),
            master_key: Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")),
            ..Default::default()
        };
        let template = PathTemplate::parse(&format!("{path}/{{relpath}}")).unwrap();
        let requests: Vec<JobRequest> = (0..self.files)
            .map(|i| {
                JobRequest::new(TransferSpec::file(
                    "inbox",
                    &tree_path(i),
                    &dst.name,
                    template.clone(),
                ))
            })
            .collect();
        let (source, slots, files, timeout) = (&self.source, self.slots, self.files, self.timeout);
        self.runtime.block_on(async {
            let orbit = Orbit::open(options).await.map_err(|e| e.to_string())?;
            for endpoint in [source, dst] {
                orbit
                    .put_endpoint(endpoint, slots as u32)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            for id in orbit
                .submit_many(&requests)
                .await
                .map_err(|e| e.to_string())?
            {
                id.map_err(|e| e.to_string())?;
            }
            let started = Instant::now();
            let workers = orbit.start_workers(slots);
            let outcome = loop {
                let counts = orbit
                    .store()
                    .job_counts()
                    .await
                    .map_err(|e| e.to_string())?;
                if counts.get(JobState::Dead) > 0 {
                    break Err(format!("jobs failed: {counts:?}"));
                }
                if counts.get(JobState::Succeeded) as usize == files {
                    break Ok(started.elapsed().as_secs_f64());
                }
                if started.elapsed() > timeout {
                    break Err(format!("timed out after {timeout:?}: {counts:?}"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            workers.shutdown().await;
            orbit.close().await;
            outcome
        })
    }

    fn run(&self, target: Target, rtt_ms: u64, run: usize) -> Row {
        let direct = target.address();
        let relay = (rtt_ms > 0).then(|| {
            self.runtime.block_on(LatencyRelay::start(
                direct.clone(),
                Duration::from_millis(rtt_ms),
            ))
        });
        let address = match &relay {
            Some(relay) => format!("127.0.0.1:{}", relay.port),
            None => direct,
        };
        let root = format!("fo-latency-{}-{run}", std::process::id());
        let dst = target.endpoint(&address, &root);
        eprintln!(
            "{} with {rtt_ms} ms added RTT (root {root}):",
            target.label()
        );
        let n = self.files;
        let mut row = Row::default();
        let t = self.tree_ours(&dst, "tree-ours");
        row.tree_ours = self.checked("tree, File Orbit", &dst, "tree-ours", n, t);
        let t = self.tree_cli(&dst, "tree-cli", &[]);
        row.tree_cli = self.checked("tree, CLI defaults", &dst, "tree-cli", n, t);
        let t = self.tree_cli(
            &dst,
            "tree-cli32",
            &["--transfers", "32", "--checkers", "32"],
        );
        row.tree_cli32 = self.checked("tree, CLI 32/32", &dst, "tree-cli32", n, t);
        let t = self.jobs_ours(&dst, "jobs-ours", run);
        row.jobs_ours = self.checked("one-file jobs, engine", &dst, "jobs-ours", n, t);
        let t = self.copyto_cli(&dst, "copyto");
        let sample = self.copyto.min(n);
        row.copyto = self.checked("copyto per file (extrapolated)", &dst, "copyto", sample, t);
        let fs = dst.to_rclone(self.rclone, "").unwrap();
        if let Err(err) = self
            .rclone
            .rpc("operations/purge", &json!({"fs": fs, "remote": ""}))
        {
            eprintln!("  could not remove {root}: {err}");
        }
        if let Some(relay) = &relay {
            eprintln!("  connections through the relay: {}", relay.connections());
        }
        row
    }
}

fn secs(value: Option<f64>) -> String {
    value.map_or("failed".into(), |s| format!("{s:.2}"))
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours > 0.0 => format!("{:.2}×", theirs / ours),
        _ => "–".into(),
    }
}

fn main() {
    let files: usize = env_or("FILE_ORBIT_BENCH_LATENCY_FILES", 200);
    let rtts: Vec<u64> = env_list("FILE_ORBIT_BENCH_LATENCY_RTT_MS", "20,0")
        .iter()
        .map(|ms| {
            ms.parse()
                .expect("FILE_ORBIT_BENCH_LATENCY_RTT_MS: milliseconds")
        })
        .collect();
    let targets: Vec<Target> = env_list("FILE_ORBIT_BENCH_TARGETS", "sftp,smb,s3")
        .iter()
        .map(|key| Target::parse(key))
        .collect();
    let slots: usize = env_or("FILE_ORBIT_BENCH_LATENCY_SLOTS", 16);
    let copyto: usize = env_or("FILE_ORBIT_BENCH_LATENCY_COPYTO", 20);
    assert!(
        files >= 1 && slots >= 1 && copyto >= 1,
        "sizes must be at least 1"
    );
    let timeout = Duration::from_secs(env_or("FILE_ORBIT_BENCH_TIMEOUT_S", 600));
    let cli = std::env::var("FILE_ORBIT_RCLONE_CLI").unwrap_or_else(|_| "rclone".into());
    let rclone = Rclone::global().expect("librclone loads");
    let cli_version = first_line(&cli, "version");
    assert!(!cli_version.starts_with("cannot run"), "{cli_version}");
    let tmp = tempfile::Builder::new()
        .prefix("fo-bench-latency-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    write_tree(&tmp.path().join("src"), files);
    let source = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "inbox".into(),
        config: EndpointConfig::Local(LocalConfig {
            root: tmp.path().join("src"),
        }),
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "File Orbit: rclone {} in-process; CLI: {cli_version} ({cli}); {files} × 4 KiB; engine: {slots} slots; \
         copyto: {copyto} calls timed and extrapolated to {files}; load average at start {}",
        rclone.version().version,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let bench = Bench {
        rclone,
        runtime: tokio::runtime::Runtime::new().unwrap(),
        cli,
        files,
        slots,
        copyto,
        timeout,
        dir: tmp.path().to_path_buf(),
        source,
    };
    let mut rows = Vec::new();
    for &target in &targets {
        for &rtt in &rtts {
            let run = rows.len();
            rows.push((target, rtt, bench.run(target, rtt, run)));
        }
    }
    println!("\n(a) tree copy of {files} × 4 KiB (seconds; ratio = theirs / ours)\n");
    println!(
        "| target | added RTT | File Orbit | CLI defaults | ratio (goal ≥ 2) | CLI 32/32 | ratio (goal ≥ 1) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (target, rtt, row) in &rows {
        println!(
            "| {} | {rtt} ms | {} | {} | {} | {} | {} |",
            target.label(),
            secs(row.tree_ours),
            secs(row.tree_cli),
            ratio(row.tree_ours, row.tree_cli),
            secs(row.tree_cli32),
            ratio(row.tree_ours, row.tree_cli32),
        );
    }
    println!("\n(b) {files} one-file jobs (seconds; ratio = theirs / ours)\n");
    println!(
        "| target | added RTT | engine, {slots} slots | files/s | CLI copyto per file* | ratio (goal ≥ 30) | CLI batch copy | ratio (goal ≥ 1) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (target, rtt, row) in &rows {
        println!(
            "| {} | {rtt} ms | {} | {} | {} | {} | {} | {} |",
            target.label(),
            secs(row.jobs_ours),
            row.jobs_ours
                .map_or("–".into(), |s| format!("{:.0}", files as f64 / s)),
            secs(row.copyto),
            ratio(row.jobs_ours, row.copyto),
            secs(row.tree_cli),
            ratio(row.jobs_ours, row.tree_cli),
        );
    }
    println!("\n* {copyto} copyto calls timed one after another, extrapolated to {files}.");
}
