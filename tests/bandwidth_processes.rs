//! An endpoint's cap holds across processes: a server process and this test's engine,
//! sharing one PostgreSQL store, both run jobs to one capped SFTP endpoint, and together
//! they stay within its cap (each process takes the share of its running transfers).

mod common;

use common::copies::{all_succeeded, copy_numbered, numbered_source};

use common::process::{ServerProcess, shared_master_key};
use common::{Kind, endpoint, orbit_options, postgres_url, unique};
use file_orbit::endpoint::Endpoint;
use file_orbit::engine::Orbit;
use file_orbit::rclone::methods::OrbitBwStats;
use std::time::Instant;

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
    let source = numbered_source(&unique("procs-src"), FILES, FILE_BYTES);
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
    let ids = copy_numbered(&orbit, &source.name, FILES, &sftp.name).await;
    let took = all_succeeded(&orbit, &ids, started).await;
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
