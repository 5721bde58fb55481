//! Bandwidth limits measured, in one run:
//!
//! 1. Achieved rate / cap for 1, 5 and 20 MiB/s caps on each target (local disk, sshd SFTP,
//!    Samba SMB, `rclone serve s3`): an `Orbit` with 4 workers copies 4 files from a local
//!    endpoint into an endpoint capped at `bandwidth = "<cap>"`, so four transfers share
//!    the cap. "steady" is the shim's byte counter over the middle of the run (1 s after the
//!    start to 1 s before the expected end), "end to end" the bytes over the wall time from
//!    submission to the last job's success (connection set-up and job bookkeeping
//!    included). Goal 0.95–1.02.
//! 2. The overlay's cost with no cap: the same one-file copies (rclone `operations/copyfile`,
//!    called directly) with the overlay (the Fs names its `orbit_endpoint`) and without it
//!    (the key removed), alternating, CPU seconds of this process per copy. Goal ≤ 3% more.
//!
//!   scripts/test-servers.sh start && source target/test-servers/env &&
//!   cargo bench --bench throttle
//!
//! Settings (env):
//!   FILE_ORBIT_BENCH_TARGETS=local,sftp,smb,s3   (targets without their env vars are skipped)
//!   FILE_ORBIT_BENCH_BW_CAPS_MIB=1,5,20
//!   FILE_ORBIT_BENCH_BW_SECONDS=6      planned length of each capped run
//!   FILE_ORBIT_BENCH_BW_CPU_MIB=512    size of each copy of the overlay-cost cells
//!   FILE_ORBIT_BENCH_BW_CPU_RUNS=3     copies per variant (the median is reported)

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/settings.rs"]
mod settings;
#[path = "support/targets.rs"]
mod targets;

use cpu::cpu_seconds;
use file_orbit::endpoint::{Endpoint, EndpointConfig, LocalConfig};
use file_orbit::engine::{JobRequest, JobState, Orbit, OrbitOptions};
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::Rclone;
use file_orbit::rclone::methods::{Fs, OrbitBwStats};
use file_orbit::transfer::TransferSpec;
use serde_json::json;
use settings::{env_list, env_or};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use targets::{Target, parse_target, remote_config};

const MIB: u64 = 1 << 20;
const FILES: usize = 4;

/// A file of `bytes` pseudo-random bytes (not compressible, not all zero).
fn write_file(path: &Path, bytes: u64) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ bytes;
    let body: Vec<u8> = (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(path, body).unwrap();
}

fn local(name: &str, root: PathBuf) -> Endpoint {
    std::fs::create_dir_all(&root).unwrap();
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config: EndpointConfig::Local(LocalConfig { root }),
    }
}

/// The endpoint of `target` for this run (a fresh directory or prefix), or None.
fn destination(target: Target, name: &str, dir: &Path) -> Option<Endpoint> {
    let run = format!("fo-bw-bench-{}-{name}", std::process::id());
    let config = match target {
        Target::Local => EndpointConfig::Local(LocalConfig {
            root: dir.join(name),
        }),
        _ => remote_config(target, &run)?,
    };
    if let EndpointConfig::Local(local) = &config {
        std::fs::create_dir_all(&local.root).unwrap();
    }
    Some(Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config,
    })
}

fn uploaded(rclone: &Rclone, endpoint: &str) -> u64 {
    let stats = rclone.call(&OrbitBwStats {}).unwrap();
    stats.endpoints.get(endpoint).map_or(0, |m| m.upload_bytes)
}

struct CapRow {
    target: Target,
    cap_mib: u64,
    steady: f64,
    end_to_end: f64,
}

/// Removes the run's directory (or prefix) on the target.
fn purge(rclone: &Rclone, endpoint: &Endpoint) {
    let fs = endpoint.to_rclone(rclone, "").unwrap();
    if let Err(err) = rclone.rpc("operations/purge", &json!({"fs": fs, "remote": ""})) {
        eprintln!("cleaning {} up: {err}", endpoint.name);
    }
}

async fn capped_run(orbit: &Orbit, dir: &Path, target: Target, cap_mib: u64) -> Option<CapRow> {
    let seconds: u64 = env_or("FILE_ORBIT_BENCH_BW_SECONDS", 6);
    let name = format!("bw-{}-{cap_mib}", target.key());
    let mut dst = destination(target, &name, dir)?;
    dst.bandwidth = Some(format!("{cap_mib}M").parse().unwrap());
    orbit.put_endpoint(&dst, FILES as u32).await.unwrap();
    let per_file = cap_mib * MIB * seconds / FILES as u64;
    let src_root = dir.join(format!("src-{cap_mib}"));
    let src = local(&format!("bw-src-{cap_mib}"), src_root.clone());
    for i in 0..FILES {
        write_file(&src_root.join(format!("f{i}.bin")), per_file);
    }
    orbit.put_endpoint(&src, 16).await.unwrap();

    let rclone = orbit.rclone();
    let start = Instant::now();
    let mut ids = Vec::new();
    for i in 0..FILES {
        let spec = TransferSpec::file(
            &src.name,
            &format!("f{i}.bin"),
            &dst.name,
            PathTemplate::parse("{filename}").unwrap(),
        );
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (from, at) = (uploaded(rclone, &dst.name), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds.saturating_sub(2).max(1))).await;
    let steady = (uploaded(rclone, &dst.name) - from) as f64 / at.elapsed().as_secs_f64();
    for id in &ids {
        let job = orbit.wait(*id, Duration::from_secs(600)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    }
    let end_to_end = (per_file * FILES as u64) as f64 / start.elapsed().as_secs_f64();
    purge(rclone, &dst);
    let cap = (cap_mib * MIB) as f64;
    Some(CapRow {
        target,
        cap_mib,
        steady: steady / cap,
        end_to_end: end_to_end / cap,
    })
}

/// CPU seconds of one `operations/copyfile` of `file` into `dst`, with or without the
/// overlay (the `orbit_endpoint` key) on both sides.
fn copy_cpu(rclone: &Rclone, src: &Endpoint, dst: &Endpoint, file: &str, overlay: bool) -> f64 {
    let fs = |endpoint: &Endpoint| {
        let Fs::Config(mut config) = endpoint.to_rclone(rclone, "").unwrap() else {
            unreachable!("endpoints are JSON-object remotes")
        };
        if !overlay {
            config.remove("orbit_endpoint");
        }
        config
    };
    let call = json!({
        "srcFs": fs(src), "srcRemote": file, "dstFs": fs(dst), "dstRemote": file,
        "_config": {"IgnoreChecksum": true},
    });
    let before = cpu_seconds(libc::RUSAGE_SELF);
    rclone.rpc("operations/copyfile", &call).unwrap();
    let used = cpu_seconds(libc::RUSAGE_SELF) - before;
    rclone
        .rpc(
            "operations/deletefile",
            &json!({"fs": fs(dst), "remote": file}),
        )
        .unwrap();
    used
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let targets: Vec<Target> = env_list("FILE_ORBIT_BENCH_TARGETS", "local,sftp,smb,s3")
        .iter()
        .map(|key| parse_target(key))
        .collect();
    let caps: Vec<u64> = env_list("FILE_ORBIT_BENCH_BW_CAPS_MIB", "1,5,20")
        .iter()
        .map(|cap| {
            cap.parse()
                .expect("FILE_ORBIT_BENCH_BW_CAPS_MIB: whole MiB/s")
        })
        .collect();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    let orbit = Orbit::open(OrbitOptions {
        store_url: store,
        master_key: Some(file_orbit::Secret::new(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )),
        ..Default::default()
    })
    .await
    .unwrap();
    let workers = orbit.start_workers(FILES);

    let mut rows = Vec::new();
    for &target in &targets {
        for &cap in &caps {
            if let Some(row) = capped_run(&orbit, dir.path(), target, cap).await {
                eprintln!(
                    "{} at {cap} MiB/s: steady {:.3}, end to end {:.3}",
                    target.label(),
                    row.steady,
                    row.end_to_end
                );
                rows.push(row);
            }
        }
    }
    workers.shutdown().await;

    println!("\n| target | cap MiB/s | achieved/cap (steady) | achieved/cap (end to end) |");
    println!("|---|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {:.3} | {:.3} |",
            row.target.label(),
            row.cap_mib,
            row.steady,
            row.end_to_end
        );
    }

    let cpu_mib: u64 = env_or("FILE_ORBIT_BENCH_BW_CPU_MIB", 512);
    let runs: usize = env_or("FILE_ORBIT_BENCH_BW_CPU_RUNS", 3);
    let rclone = orbit.rclone();
    let src = local("cpu-src", dir.path().join("cpu-src"));
    write_file(&dir.path().join("cpu-src/big.bin"), cpu_mib * MIB);
    println!(
        "\n| copy of {cpu_mib} MiB | CPU s without overlay | CPU s with overlay, no cap | overhead |"
    );
    println!("|---|---:|---:|---:|");
    for &target in &targets {
        let Some(dst) = destination(target, &format!("cpu-{}", target.key()), dir.path()) else {
            continue;
        };
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            without.push(copy_cpu(rclone, &src, &dst, "big.bin", false));
            with.push(copy_cpu(rclone, &src, &dst, "big.bin", true));
        }
        purge(rclone, &dst);
        let (without, with) = (median(without), median(with));
        println!(
            "| {} | {without:.3} | {with:.3} | {:+.1}% |",
            target.label(),
            (with / without - 1.0) * 100.0
        );
    }
}
