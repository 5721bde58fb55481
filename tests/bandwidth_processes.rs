//! An endpoint's cap holds across processes: a server process and this test's engine,
//! sharing one PostgreSQL store, both run jobs to one capped SFTP endpoint, and together
//! they stay within its cap (each process takes the share of its running transfers).

mod common;

use common::process::{ServerProcess, shared_master_key};
use common::{Kind, endpoint, local_root, orbit_options, postgres_url, unique};
use file_orbit::endpoint::Endpoint;
use file_orbit::engine::{JobRequest, JobState, Orbit};
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::methods::OrbitBwStats;
use file_orbit::transfer::TransferSpec;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const FILES: usize = 8;
const FILE_BYTES: u64 = 3 * MIB;
const CAP: u64 = 3 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_an_endpoint_s_cap() {
    let store_url = postgres_url().await;
    let key = shared_master_key();
    let mut options = orbit_options(&store_url);
    options.master_key = Some(key.clone());
    let orbit = Orbit::open(options).await.unwrap();
    let source = endpoint(Kind::Local, &unique("procs-src"));
    for i in 0..FILES {
        let body: Vec<u8> = (0..FILE_BYTES).map(|b| (b * 13 + i as u64) as u8).collect();
        std::fs::write(local_root(&source).join(format!("f{i}.bin")), body).unwrap();
    }
    let sftp = Endpoint {
        bandwidth: Some("3M".parse().unwrap()),
        ..endpoint(Kind::Sftp, &unique("procs-sftp"))
    };
    orbit.put_endpoint(&source, 16).await.unwrap();
    orbit.put_endpoint(&sftp, 16).await.unwrap();

    let data_dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data_dir.path(),
        &format!("store_url = \"{store_url}\"\nworkers = 4\n"),
        &[("FILE_ORBIT_MASTER_KEY", key.expose())],
    );
    let workers = orbit.start_workers(4);
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..FILES {
        let spec = TransferSpec::file(
            &source.name,
            &format!("f{i}.bin"),
            &sftp.name,
            PathTemplate::parse("{filename}").unwrap(),
        );
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    for id in &ids {
        let job = orbit.wait(*id, Duration::from_secs(120)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    }
    let took = started.elapsed();
    workers.shutdown().await;

    // Both processes moved some of the bytes (the server's count is its last sample's).
    let here = orbit.rclone().call(&OrbitBwStats {}).unwrap();
    let here = here.endpoints.get(&sftp.name).map_or(0, |m| m.upload_bytes);
    let metrics = server.api.get("/metrics", &server.admin).await.body;
    let line = format!(
        "file_orbit_endpoint_transferred_bytes_total{{endpoint=\"{}\",direction=\"upload\"}} ",
        sftp.name
    );
    let there: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        here > 0 && there > 0,
        "bytes here {here}, in the server {there}"
    );
    let ratio = (FILES as u64 * FILE_BYTES) as f64 / took.as_secs_f64() / CAP as f64;
    assert!(
        (0.85..=1.1).contains(&ratio),
        "two processes together moved {ratio:.3}× the cap (here {here}, there {there})"
    );
}
