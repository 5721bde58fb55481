//! Wall time of a tree copy through File Orbit (a `TransferJob`, rclone in-process) next to
//! the rclone CLI of the same release (`rclone copy`) and `cp -r` (local→local only), in
//! one run, for 2000 × 4 KiB files in nested dirs and for one big file, to the local disk
//! and to the real test servers (sshd SFTP, Samba SMB, `rclone serve s3`, moto S3).
//!
//! Like with like: both rclones copy with 4 transfers and 8 checkers (rclone's defaults,
//! set explicitly on both sides), `--create-empty-src-dirs` (File Orbit always asks for
//! it), no config file, and the same remote: the CLI gets the very connection string that
//! rclone builds in-process from File Orbit's JSON-object remote. File Orbit runs with
//! `verify: false`; rclone's own post-copy hash comparison stays on in both for remote
//! targets, and is off in both local→local (`--ignore-checksum`: File Orbit skips it
//! between two local endpoints unless the spec asks to verify, as `cp` does).
//!
//! Needs the rclone CLI of librclone's release (`FILE_ORBIT_RCLONE_CLI` or `rclone` on PATH;
//! another release is refused) and, for the remote targets, the servers and env file of
//! `scripts/test-servers.sh` (targets without their env vars are skipped). `scripts/bench.sh`
//! does all of it. Settings (env):
//!   FILE_ORBIT_BENCH_RUNS=3              timed runs per cell (the median is reported)
//!   FILE_ORBIT_BENCH_WARMUPS=1           untimed rounds per cell first
//!   FILE_ORBIT_BENCH_BIG_MIB=1024        big file for local→local
//!   FILE_ORBIT_BENCH_REMOTE_BIG_MIB=1024 big file for the remote targets
//!   FILE_ORBIT_BENCH_TARGETS=local,sftp,smb,s3,moto   (moto: the small tree only)
//!   FILE_ORBIT_BENCH_WORK=tree,big
//!   FILE_ORBIT_BENCH_TIMEOUT_S=120       per run; a longer run is stopped and reported
//!   FILE_ORBIT_BENCH_DEADLINE_S=1800     whole bench; then it stops, cleans up, exits 2
//!   FILE_ORBIT_BENCH_DROP_CACHES=1       drop the page cache before every run (root only)
//!   FILE_ORBIT_BENCH_VARIANTS=1          also time the variants that explain the gaps
//!
//! Every run copies into a fresh directory (or prefix); each copy is counted and sized
//! afterwards (untimed) so a tool that skipped work fails instead of looking fast. Sources
//! live under cargo's CARGO_TARGET_TMPDIR (on disk). Prints a markdown table (ratio > 1
//! means File Orbit is faster), then every run's wall and CPU seconds.

use chrono::Utc;
use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::methods::{Fs, SyncCopy, TreeTransfer};
use file_orbit::rclone::{JobOptions, Rclone};
use file_orbit::transfer::{TransferJob, TransferSpec};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/settings.rs"]
mod settings;
use settings::{env_list, env_or};
#[path = "support/cpu.rs"]
mod cpu;
use cli::{connection_string, first_line};
#[path = "support/targets.rs"]
mod targets;
use cpu::cpu_seconds;
use targets::{Target, parse_target, remote_config, test_env};

/// rclone's default `--transfers`; File Orbit sets `Checkers` to twice this, which is
/// rclone's default `--checkers` (8).
const TRANSFERS: u32 = 4;
const CHECKERS: u32 = 2 * TRANSFERS;
const TREE_FILES: u64 = 2000;
const TREE_FILE_BYTES: usize = 4096;
const MIB: u64 = 1 << 20;
/// Big file for the remote targets unless FILE_ORBIT_BENCH_REMOTE_BIG_MIB says otherwise.
const DEFAULT_REMOTE_BIG_MIB: u64 = 1024;

fn env_flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok("1" | "true" | "yes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    FileOrbit,
    Cli,
    Cp,
}

impl Tool {
    fn key(self) -> &'static str {
        match self {
            Tool::FileOrbit => "fo",
            Tool::Cli => "cli",
            Tool::Cp => "cp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Tree,
    Big { mib: u64 },
}

impl Work {
    fn source_dir(self) -> String {
        match self {
            Work::Tree => "tree".into(),
            Work::Big { mib } => format!("big-{mib}"),
        }
    }
    fn label(self) -> String {
        match self {
            Work::Tree => format!("{TREE_FILES} × {} KiB", TREE_FILE_BYTES / 1024),
            Work::Big { mib } if mib % 1024 == 0 => format!("1 × {} GiB", mib / 1024),
            Work::Big { mib } => format!("1 × {mib} MiB"),
        }
    }
    fn files(self) -> u64 {
        match self {
            Work::Tree => TREE_FILES,
            Work::Big { .. } => 1,
        }
    }
    fn bytes(self) -> u64 {
        match self {
            Work::Tree => TREE_FILES * TREE_FILE_BYTES as u64,
            Work::Big { mib } => mib * MIB,
        }
    }
}

/// Where copies go: the endpoint (rooted at this run's bench directory on the target).
struct Destination {
    target: Target,
    endpoint: Endpoint,
    /// Local directory of the endpoint root (local target only).
    local_root: Option<PathBuf>,
    /// A moto bucket this bench created and removes at the end.
    own_bucket: Option<Endpoint>,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        let bytes = xorshift(state).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// 2000 × 4 KiB of pseudo-random bytes in 4 top dirs × 5 subdirs (100 files each).
fn write_tree(root: &Path) {
    let mut state = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; TREE_FILE_BYTES];
    for i in 0..TREE_FILES {
        let dir = root.join(format!("d{}/s{}", i % 4, (i / 4) % 5));
        std::fs::create_dir_all(&dir).unwrap();
        fill(&mut buf, &mut state);
        std::fs::write(dir.join(format!("f{i:04}.bin")), &buf).unwrap();
    }
}

fn write_big(dir: &Path, mib: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut file = std::fs::File::create(dir.join("big.bin")).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1D ^ mib;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..mib {
        fill(&mut buf, &mut state);
        file.write_all(&buf).unwrap();
    }
    file.sync_all().unwrap();
}

fn fs_type_name(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a zeroed statfs the call fills in.
    let magic = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c_path.as_ptr(), &mut st) != 0 {
            return "unknown".into();
        }
        st.f_type as i64
    };
    match magic {
        0x0102_1994 => "tmpfs (NOT disk!)".into(),
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("fs magic {other:#x}"),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Bench {
    rclone: &'static Rclone,
    runtime: tokio::runtime::Runtime,
    cli: String,
    runs: usize,
    warmups: usize,
    timeout: Duration,
    drop_caches: bool,
    /// Local directory holding `src/` (sources) and `dst/` (local copies).
    dir: PathBuf,
    source: Endpoint,
    next_run: u32,
}

/// One timed run: wall-clock seconds, and CPU seconds (user + system) of the process that
/// did the copy (the bench process itself for File Orbit, the child for the CLI and cp).
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
}

/// One timed run's outcome, or why it failed.
type RunResult = Result<Sample, String>;

/// rclone-side settings of a variant run (investigation only).
#[derive(Clone, Default)]
struct Variant {
    /// Extra `_config` options for the in-process rclone, and the matching CLI flags.
    config: Vec<(&'static str, Value, &'static str)>,
    /// Progress poll interval of the in-process job (`JobOptions::poll_interval`, 100 ms
    /// by default; job status is read every tenth of the elapsed time, from 5 ms up to it).
    poll: Option<Duration>,
}

/// One column of a cell: a tool, or (variants) a tool with other rclone settings.
struct Entry {
    label: String,
    tool: Tool,
    /// `None`: the tool as the table compares it. `Some`: for File Orbit, a plain
    /// in-process `sync/copy` (no `TransferJob`) with these settings; for the CLI, extra flags.
    variant: Option<Variant>,
}

impl Entry {
    fn plain(tool: Tool) -> Entry {
        let label = match tool {
            Tool::FileOrbit => "File Orbit",
            Tool::Cli => "rclone CLI",
            Tool::Cp => "cp -r",
        };
        Entry {
            label: label.into(),
            tool,
            variant: None,
        }
    }
}

impl Bench {
    fn source_fs_path(&self, work: Work) -> PathBuf {
        self.dir.join("src").join(work.source_dir())
    }

    fn ensure_source(&self, work: Work) {
        let path = self.source_fs_path(work);
        if path.exists() {
            return;
        }
        let started = Instant::now();
        match work {
            Work::Tree => write_tree(&path),
            Work::Big { mib } => write_big(&path, mib),
        }
        eprintln!(
            "wrote source {} ({}) in {:.1} s",
            path.display(),
            work.label(),
            started.elapsed().as_secs_f64()
        );
    }

    fn before_run(&self) {
        // Write back the previous run's dirty pages now rather than during the next run.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        if self.drop_caches {
            std::fs::write("/proc/sys/vm/drop_caches", "3")
                .expect("FILE_ORBIT_BENCH_DROP_CACHES needs root");
        }
    }

    fn dst_fs(&self, dest: &Destination, path: &str) -> Fs {
        dest.endpoint.to_rclone(self.rclone, path).unwrap()
    }

    /// Checks (untimed) that the run copied every file and byte. A big file's copy is removed
    /// at once; tree copies stay until the end of the bench (except on moto, which keeps
    /// them in memory): ext4 without a journal (as on the bench machine) does not reuse an
    /// inode number freed in the last 60 s (300 s while its inode-table block is dirty), and
    /// scans past each one (`recently_deleted()` in fs/ext4/ialloc.c, seen with perf), so
    /// deleting 2000 files made the next 2000 creates on that file system ~1.2 s slower for
    /// every tool, `cp` included. The servers' directories are on the same file system.
    fn check_copy(&self, dest: &Destination, work: Work, path: &str) -> Result<(), String> {
        let fs = self.dst_fs(dest, path);
        let size = self
            .rclone
            .rpc("operations/size", &json!({"fs": fs}))
            .map_err(|err| format!("size of the copy: {err}"));
        let remove_now = matches!(work, Work::Big { .. }) || dest.target == Target::Moto;
        let removed = match (&dest.local_root, remove_now) {
            (_, false) => Ok(()),
            (Some(root), true) => std::fs::remove_dir_all(root.join(path))
                .map_err(|err| format!("removing {}: {err}", root.join(path).display())),
            (None, true) => self
                .rclone
                .rpc("operations/purge", &json!({"fs": fs, "remote": ""}))
                .map(|_| ())
                .map_err(|err| format!("purging the copy: {err}")),
        };
        let size = size?;
        removed?;
        let (count, bytes) = (size["count"].as_u64(), size["bytes"].as_u64());
        if count != Some(work.files()) || bytes != Some(work.bytes()) {
            return Err(format!(
                "incomplete copy: {count:?} files, {bytes:?} bytes; expected {} files, {} bytes",
                work.files(),
                work.bytes()
            ));
        }
        Ok(())
    }

    fn run_path(&mut self, work: Work, tool: Tool) -> String {
        self.next_run += 1;
        let work = match work {
            Work::Tree => "tree".to_string(),
            Work::Big { mib } => format!("big{mib}"),
        };
        format!("{work}-{}-{}", tool.key(), self.next_run)
    }

    /// File Orbit as a user runs it: `TransferJob::start` + `wait`, `verify: false`.
    fn time_file_orbit(&self, dest: &Destination, work: Work, path: &str) -> RunResult {
        let spec = TransferSpec {
            parallelism: Some(TRANSFERS),
            ..TransferSpec::tree(
                &self.source.name,
                &work.source_dir(),
                &dest.endpoint.name,
                PathTemplate::parse(path).map_err(|e| e.to_string())?,
            )
        };
        let (rclone, source, timeout) = (self.rclone, &self.source, self.timeout);
        self.before_run();
        self.runtime.block_on(async {
            let (started, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
            let job = TransferJob::start(rclone, &spec, source, &dest.endpoint, Utc::now())
                .await
                .map_err(|err| err.to_string())?;
            match tokio::time::timeout(timeout, job.wait()).await {
                Ok(Ok(progress)) if progress.files == work.files() => Ok(Sample {
                    wall: started.elapsed().as_secs_f64(),
                    cpu: cpu_seconds(libc::RUSAGE_SELF) - cpu,
                }),
                Ok(Ok(progress)) => Err(format!(
                    "File Orbit reported {} files transferred, expected {}",
                    progress.files,
                    work.files()
                )),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => {
                    stop_all_jobs(rclone);
                    Err(format!("timed out after {timeout:?}"))
                }
            }
        })
    }

    /// A plain in-process `sync/copy` with the variant's settings (investigation only).
    fn time_in_process(
        &self,
        dest: &Destination,
        work: Work,
        path: &str,
        variant: &Variant,
    ) -> RunResult {
        let mut config = Map::new();
        config.insert("Transfers".into(), TRANSFERS.into());
        config.insert("Checkers".into(), CHECKERS.into());
        for (key, value, _) in &variant.config {
            config.insert((*key).into(), value.clone());
        }
        let request = SyncCopy(TreeTransfer {
            src_fs: Fs::local(self.source_fs_path(work)),
            dst_fs: self.dst_fs(dest, path),
            create_empty_src_dirs: true,
        });
        let options = JobOptions {
            config: Some(config),
            filter: None,
            poll_interval: variant.poll.unwrap_or(JobOptions::default().poll_interval),
        };
        let (rclone, timeout) = (self.rclone, self.timeout);
        self.before_run();
        self.runtime.block_on(async {
            let (started, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
            let job = rclone
                .start(&request, options)
                .await
                .map_err(|err| err.to_string())?;
            match tokio::time::timeout(timeout, job.wait()).await {
                Ok(Ok(_)) => Ok(Sample {
                    wall: started.elapsed().as_secs_f64(),
                    cpu: cpu_seconds(libc::RUSAGE_SELF) - cpu,
                }),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => {
                    stop_all_jobs(rclone);
                    Err(format!("timed out after {timeout:?}"))
                }
            }
        })
    }

    fn cli_args(&self, dest: &Destination, work: Work, path: &str, extra: &[&str]) -> Vec<String> {
        let src = self.source_fs_path(work).display().to_string();
        let dst = connection_string(&self.dst_fs(dest, path));
        let mut args: Vec<String> = vec![
            "copy".into(),
            src,
            dst,
            "--config".into(),
            "".into(),
            "--transfers".into(),
            TRANSFERS.to_string(),
            "--checkers".into(),
            CHECKERS.to_string(),
            "--create-empty-src-dirs".into(),
        ];
        // What File Orbit asks for between two local endpoints without `verify`.
        if dest.local_root.is_some() {
            args.push("--ignore-checksum".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn time_cli(&self, dest: &Destination, work: Work, path: &str, variant: &Variant) -> RunResult {
        let extra: Vec<&str> = variant
            .config
            .iter()
            .flat_map(|(_, _, flags)| flags.split_whitespace())
            .collect();
        let args = self.cli_args(dest, work, path, &extra);
        self.time_command(&self.cli, &args)
    }

    fn time_cp(&self, dest: &Destination, work: Work, path: &str) -> RunResult {
        let root = dest.local_root.as_ref().expect("cp runs local→local only");
        let args = [
            "-r".to_string(),
            self.source_fs_path(work).display().to_string(),
            root.join(path).display().to_string(),
        ];
        self.time_command("cp", &args)
    }

    /// Runs a command to completion (killed after the timeout); its stderr goes to a file.
    fn time_command(&self, program: &str, args: &[String]) -> RunResult {
        let stderr_path = self.dir.join("stderr.txt");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        self.before_run();
        let (started, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|err| format!("cannot run {program}: {err}"))?;
        let deadline = started + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} timed out after {:?}", self.timeout));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let elapsed = Sample {
            wall: started.elapsed().as_secs_f64(),
            cpu: cpu_seconds(libc::RUSAGE_CHILDREN) - cpu,
        };
        if !status.success() {
            let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(format!("{program} failed ({status}): {}", tail.join(" | ")));
        }
        Ok(elapsed)
    }

    /// Runs `entry` once into a fresh destination path and checks the copy.
    fn time(&mut self, dest: &Destination, work: Work, entry: &Entry) -> RunResult {
        let path = self.run_path(work, entry.tool);
        let elapsed = match (entry.tool, &entry.variant) {
            (Tool::FileOrbit, None) => self.time_file_orbit(dest, work, &path),
            (Tool::FileOrbit, Some(v)) => self.time_in_process(dest, work, &path, v),
            (Tool::Cli, v) => self.time_cli(dest, work, &path, &v.clone().unwrap_or_default()),
            (Tool::Cp, _) => self.time_cp(dest, work, &path),
        };
        let checked = self.check_copy(dest, work, &path);
        let seconds = elapsed?;
        checked?;
        Ok(seconds)
    }
}

/// Stops every rclone job still running in-process (after a timed-out run).
fn stop_all_jobs(rclone: &Rclone) {
    if let Ok(list) = rclone.rpc("job/list", &json!({})) {
        for id in list["runningIds"].as_array().into_iter().flatten() {
            let _ = rclone.rpc("job/stop", &json!({"jobid": id}));
        }
    }
}

/// Median wall time of the runs, or the first error.
fn median(results: &[RunResult]) -> Result<f64, String> {
    median_of(results, |s| s.wall)
}

fn median_of(results: &[RunResult], pick: impl Fn(&Sample) -> f64) -> Result<f64, String> {
    let mut seconds = Vec::new();
    for result in results {
        seconds.push(pick(&result.clone()?));
    }
    seconds.sort_by(f64::total_cmp);
    let n = seconds.len();
    if n == 0 {
        return Err("no runs".into());
    }
    Ok(if n % 2 == 1 {
        seconds[n / 2]
    } else {
        (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
    })
}

fn cell(result: &Result<f64, String>) -> String {
    match result {
        Ok(s) => format!("{s:.3}"),
        Err(_) => "failed".into(),
    }
}

fn ratio(other: &Result<f64, String>, ours: &Result<f64, String>) -> String {
    match (other, ours) {
        (Ok(other), Ok(ours)) => format!("{:.2}", other / ours),
        _ => "–".into(),
    }
}

fn runs_text(results: &[RunResult]) -> String {
    results
        .iter()
        .map(|r| match r {
            Ok(s) => format!("{:.3} ({:.2} CPU)", s.wall, s.cpu),
            Err(e) => format!("ERROR: {e}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times each entry on one cell: `warmups` untimed rounds, then `runs` timed rounds, each
/// round rotating which entry goes first. An entry that fails is not run again.
fn measure(
    bench: &mut Bench,
    dest: &Destination,
    work: Work,
    entries: &[Entry],
) -> Vec<Vec<RunResult>> {
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); entries.len()];
    let mut failed = vec![false; entries.len()];
    for round in 0..bench.warmups + bench.runs {
        let timed = round >= bench.warmups;
        for k in 0..entries.len() {
            let index = (round + k) % entries.len();
            if failed[index] {
                continue;
            }
            let entry = &entries[index];
            let result = bench.time(dest, work, entry);
            if let Err(err) = &result {
                eprintln!(
                    "{} {}: {} ({}): {err}",
                    work.label(),
                    dest.target.label(),
                    entry.label,
                    if timed { "timed run" } else { "warm-up" }
                );
                failed[index] = true;
            }
            if timed || result.is_err() {
                results[index].push(result);
            }
        }
    }
    results
}

fn destination(bench: &Bench, target: Target, root: &str) -> Option<Destination> {
    let mut own_bucket = None;
    let mut local_root = None;
    let config = match target {
        Target::Local => {
            let dir = bench.dir.join("dst");
            std::fs::create_dir_all(&dir).unwrap();
            local_root = Some(dir.clone());
            EndpointConfig::Local(LocalConfig { root: dir })
        }
        _ => remote_config(target, root)?,
    };
    if target == Target::Moto {
        let bucket_root = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "bench-bucket".into(),
            config: remote_config(target, "")?,
        };
        let fs = bucket_root.to_rclone(bench.rclone, "").unwrap();
        if let Err(err) = bench
            .rclone
            .rpc("operations/mkdir", &json!({"fs": fs, "remote": ""}))
        {
            eprintln!("skipping {}: cannot create bucket: {err}", target.label());
            return None;
        }
        own_bucket = Some(bucket_root);
    }
    Some(Destination {
        target,
        endpoint: Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: format!("bench-{}", target.key()),
            config,
        },
        local_root,
        own_bucket,
    })
}

/// The remote directories (and the bucket) the bench made, to remove at the end.
fn cleanup_list(rclone: &Rclone, dest: &Destination) -> Vec<(String, &'static str, Fs)> {
    let mut list = Vec::new();
    if dest.local_root.is_none() {
        let fs = dest.endpoint.to_rclone(rclone, "").unwrap();
        list.push((dest.target.label().to_string(), "operations/purge", fs));
    }
    if let Some(bucket) = &dest.own_bucket {
        let fs = bucket.to_rclone(rclone, "").unwrap();
        list.push((
            format!("{} bucket", dest.target.label()),
            "operations/rmdir",
            fs,
        ));
    }
    list
}

/// `rclone serve s3` keeps objects as files and can leave their emptied parent
/// directories behind after a purge through the S3 API (S3 has no directories to remove):
/// removes the empty directories left under the bench's prefix in its backing directory
/// (`FILE_ORBIT_TEST_RCLONE_S3_DIR`), never a file.
fn sweep_rclone_s3_dirs(remote_root: &str) {
    fn remove_empty(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_empty(&entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir); // fails, as it should, unless empty
    }
    let (Some(dir), Some(bucket)) = (test_env("RCLONE_S3_DIR"), test_env("RCLONE_S3_BUCKET"))
    else {
        return;
    };
    let root = Path::new(&dir).join(bucket).join(remote_root);
    if root.exists() {
        remove_empty(&root);
        if root.exists() {
            eprintln!("cleanup: {} still holds files", root.display());
        }
    }
}

/// Removes what `cleanup_list` names: each call bounded by a 120 s wait.
fn cleanup(rclone: &'static Rclone, list: &[(String, &'static str, Fs)]) {
    for (what, method, fs) in list {
        let (tx, rx) = std::sync::mpsc::channel();
        let (method, input) = (*method, json!({"fs": fs, "remote": ""}));
        std::thread::spawn(move || {
            let _ = tx.send(rclone.rpc(method, &input));
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(_)) => {}
            // Nothing left there is fine.
            Ok(Err(err)) if err.to_string().contains("not found") => {}
            Ok(Err(err)) => eprintln!("cleanup of {what}: {err}"),
            Err(_) => eprintln!("cleanup of {what}: no answer in 120 s; left behind"),
        }
    }
}

struct Row {
    work: String,
    target: String,
    fo: Result<f64, String>,
    cli: Result<f64, String>,
    cp: Option<Result<f64, String>>,
    runs: String,
}

fn print_table(rows: &[Row]) {
    println!("| work | target | File Orbit s | rclone CLI s | cp s | CLI/FO ratio | cp/FO ratio |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let (cp, cp_ratio) = match &row.cp {
            Some(cp) => (cell(cp), ratio(cp, &row.fo)),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {} | {} | {} | {cp} | {} | {cp_ratio} |",
            row.work,
            row.target,
            cell(&row.fo),
            cell(&row.cli),
            ratio(&row.cli, &row.fo),
        );
    }
}

fn main() {
    let runs: usize = env_or("FILE_ORBIT_BENCH_RUNS", 3);
    assert!(runs >= 1, "FILE_ORBIT_BENCH_RUNS must be at least 1");
    let warmups: usize = env_or("FILE_ORBIT_BENCH_WARMUPS", 1);
    let big_mib: u64 = env_or("FILE_ORBIT_BENCH_BIG_MIB", 1024);
    let remote_big_mib: u64 = env_or("FILE_ORBIT_BENCH_REMOTE_BIG_MIB", DEFAULT_REMOTE_BIG_MIB);
    let timeout = Duration::from_secs(env_or("FILE_ORBIT_BENCH_TIMEOUT_S", 120));
    let deadline = Duration::from_secs(env_or("FILE_ORBIT_BENCH_DEADLINE_S", 1800));
    let targets: Vec<Target> = env_list("FILE_ORBIT_BENCH_TARGETS", "local,sftp,smb,s3,moto")
        .iter()
        .map(|key| parse_target(key))
        .collect();
    let works = env_list("FILE_ORBIT_BENCH_WORK", "tree,big");
    let variants = env_flag("FILE_ORBIT_BENCH_VARIANTS");
    let drop_caches = env_flag("FILE_ORBIT_BENCH_DROP_CACHES");
    // Not the test servers' rclone (FILE_ORBIT_TEST_RCLONE): PyPI's build of an older release.
    let cli = std::env::var("FILE_ORBIT_RCLONE_CLI").unwrap_or_else(|_| "rclone".into());

    let rclone = Rclone::global().expect("librclone loads");
    let cli_version = first_line(&cli, "version");
    assert_eq!(
        cli_version,
        format!("rclone {}", rclone.version().version),
        "the rclone CLI {cli} must be librclone's release (scripts/bench.sh builds it)"
    );
    // On disk next to the build (cargo's CARGO_TARGET_TMPDIR), never a tmpfs /tmp.
    let tmp = tempfile::Builder::new()
        .prefix("fo-bench-transfer-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let started = Instant::now();
    println!(
        "File Orbit: rclone {} in-process ({}); CLI: {cli_version} ({cli}); cp: {}",
        rclone.version().version,
        rclone.library_path(),
        first_line("cp", "--version"),
    );
    println!(
        "{} UTC, {} cores, load average {} at start; {runs} timed runs per cell (median) after {warmups} warm-up round(s); data in {} ({})",
        Utc::now().format("%Y-%m-%d %H:%M"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        tmp.path().display(),
        fs_type_name(tmp.path()),
    );
    println!(
        "page cache: {}; sync(2) before every run; no tool fsyncs its writes",
        if drop_caches {
            "dropped before every run (cold)"
        } else {
            "warm (sources written at the start and read by every run)"
        }
    );
    if !cli_version.ends_with(&rclone.version().version) {
        println!("WARNING: the CLI is not the in-process rclone release");
    }

    let source_root = tmp.path().join("src");
    std::fs::create_dir_all(&source_root).unwrap();
    let mut bench = Bench {
        rclone,
        runtime: tokio::runtime::Runtime::new().unwrap(),
        cli,
        runs,
        warmups,
        timeout,
        drop_caches,
        dir: tmp.path().to_path_buf(),
        source: Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "bench-source".into(),
            config: EndpointConfig::Local(LocalConfig { root: source_root }),
        },
        next_run: 0,
    };

    let remote_root = format!(
        "fo-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let dests: Vec<Destination> = targets
        .iter()
        .filter_map(|&target| destination(&bench, target, &remote_root))
        .collect();
    let to_clean: Vec<_> = dests
        .iter()
        .flat_map(|dest| cleanup_list(rclone, dest))
        .collect();

    // The whole bench is bounded: past the deadline, stop, clean up and exit.
    {
        let to_clean = to_clean.clone();
        let tmp_path = tmp.path().to_path_buf();
        let watchdog_root = remote_root.clone();
        std::thread::spawn(move || {
            std::thread::sleep(deadline);
            eprintln!(
                "bench still running after {deadline:?}: stopping (FILE_ORBIT_BENCH_DEADLINE_S)"
            );
            stop_all_jobs(rclone);
            cleanup(rclone, &to_clean);
            sweep_rclone_s3_dirs(&watchdog_root);
            let _ = std::fs::remove_dir_all(&tmp_path);
            std::process::exit(2);
        });
    }
    if let Some(dest) = dests.iter().find(|d| d.target == Target::Sftp) {
        let example = connection_string(&bench.dst_fs(dest, "tree-cli-N"));
        let pass = redact_connection(&example);
        println!(
            "CLI command, e.g. SFTP: rclone copy <src dir> \"{pass}\" --config \"\" --transfers {TRANSFERS} --checkers {CHECKERS} --create-empty-src-dirs"
        );
    }

    let mut rows = Vec::new();
    let mut variant_lines = Vec::new();
    for work_key in &works {
        for dest in &dests {
            let target = dest.target;
            let work = match (work_key.as_str(), target) {
                ("tree", _) => Work::Tree,
                // moto keeps objects in Python memory and is slow: the small tree only.
                ("big", Target::Moto) => continue,
                ("big", Target::Local) => Work::Big { mib: big_mib },
                ("big", _) => Work::Big {
                    mib: remote_big_mib,
                },
                (other, _) => panic!("unknown work {other:?} in FILE_ORBIT_BENCH_WORK"),
            };
            bench.ensure_source(work);
            let mut entries = vec![Entry::plain(Tool::FileOrbit), Entry::plain(Tool::Cli)];
            if target == Target::Local {
                entries.push(Entry::plain(Tool::Cp));
            }
            let cell_started = Instant::now();
            let results = measure(&mut bench, dest, work, &entries);
            let mut work_label = work.label();
            if matches!(work, Work::Big { mib } if mib != big_mib) {
                work_label.push_str(&format!(" (not {big_mib} MiB: see notes)"));
            }
            let row = Row {
                work: work_label,
                target: target.label().into(),
                fo: median(&results[0]),
                cli: median(&results[1]),
                cp: results.get(2).map(|r| median(r)),
                runs: format!(
                    "FO [{}]; CLI [{}]{}",
                    runs_text(&results[0]),
                    runs_text(&results[1]),
                    results
                        .get(2)
                        .map(|r| format!("; cp [{}]", runs_text(r)))
                        .unwrap_or_default()
                ),
            };
            eprintln!(
                "{} {}: FO {} s, CLI {} s{} ({:.0} s for the cell)",
                row.work,
                row.target,
                cell(&row.fo),
                cell(&row.cli),
                row.cp
                    .as_ref()
                    .map(|cp| format!(", cp {} s", cell(cp)))
                    .unwrap_or_default(),
                cell_started.elapsed().as_secs_f64()
            );
            rows.push(row);
            if variants {
                variant_lines.extend(run_variants(&mut bench, dest, work));
            }
        }
    }
    let cleanup_started = Instant::now();
    cleanup(rclone, &to_clean);
    sweep_rclone_s3_dirs(&remote_root);
    eprintln!(
        "removed the remote copies in {:.0} s",
        cleanup_started.elapsed().as_secs_f64()
    );

    println!();
    print_table(&rows);
    println!();
    println!("Timed runs, in order: wall seconds (CPU seconds of the copying process):");
    for row in &rows {
        println!("- {} {}: {}", row.work, row.target, row.runs);
    }
    if !variant_lines.is_empty() {
        println!();
        println!("Variants (median s, same run; in-process = plain sync/copy, no TransferJob):");
        for line in variant_lines {
            println!("{line}");
        }
    }
    println!();
    println!(
        "load average {} at the end; {:.0} s in all",
        load_average(),
        started.elapsed().as_secs_f64()
    );
}

/// The connection string with every password-like value replaced by `***`.
fn redact_connection(connection: &str) -> String {
    let mut out = String::new();
    for (i, part) in connection.split(",").enumerate() {
        if i > 0 {
            out.push(',');
        }
        match part.split_once('=') {
            Some((key, _)) if key.contains("pass") || key.contains("secret") => {
                out.push_str(&format!("{key}='***'"));
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// Times the variants that explain the gaps between File Orbit and the CLI (opt-in).
fn run_variants(bench: &mut Bench, dest: &Destination, work: Work) -> Vec<String> {
    let in_process = |label: &str, variant: Variant| Entry {
        label: format!("in-process {label}"),
        tool: Tool::FileOrbit,
        variant: Some(variant),
    };
    let pair = |label: &str, config: Vec<(&'static str, Value, &'static str)>| {
        let variant = Variant { config, poll: None };
        vec![
            in_process(label, variant.clone()),
            Entry {
                label: format!("CLI {label}"),
                tool: Tool::Cli,
                variant: Some(variant),
            },
        ]
    };
    let mut cases: Vec<Vec<Entry>> = vec![vec![
        Entry::plain(Tool::FileOrbit),
        in_process("poll ≤100 ms (default)", Variant::default()),
        in_process(
            "poll 5 ms",
            Variant {
                poll: Some(Duration::from_millis(5)),
                ..Variant::default()
            },
        ),
        Entry::plain(Tool::Cli),
    ]];
    match (dest.target, work) {
        (Target::Sftp | Target::Smb, Work::Tree) => {
            cases.push(pair(
                "--inplace",
                vec![("Inplace", true.into(), "--inplace")],
            ));
        }
        (_, Work::Big { .. }) => {
            cases.push(pair(
                "--ignore-checksum",
                vec![("IgnoreChecksum", true.into(), "--ignore-checksum")],
            ));
            cases.push(pair(
                "--multi-thread-streams 0",
                vec![("MultiThreadStreams", 0.into(), "--multi-thread-streams 0")],
            ));
        }
        _ => {}
    }
    let mut out = Vec::new();
    for entries in cases {
        let results = measure(bench, dest, work, &entries);
        let medians: Vec<String> = results
            .iter()
            .zip(&entries)
            .map(|(r, entry)| {
                format!(
                    "{} {} s ({} CPU s)",
                    entry.label,
                    cell(&median(r)),
                    cell(&median_of(r, |s| s.cpu))
                )
            })
            .collect();
        out.push(format!(
            "- {} {}: {}",
            work.label(),
            dest.target.label(),
            medians.join(" · ")
        ));
    }
    out
}
