//! Live progress across the cluster (feature `server`, real HTTP, real sshd): while a
//! transfer runs on one server's worker, another server on the same store (no workers of
//! its own) shows its bytes, files, speed and totals.

mod common;

use common::api::job_until;
use common::relay::Relay;
use common::server::TestServer;
use common::{Kind, endpoint, env, local_root, sftp_config, unique};
use file_orbit::endpoint::{Endpoint, EndpointConfig, HostKeyCheck};
use file_orbit::engine::JobRequest;
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::path::Path;
use std::time::{Duration, Instant};

/// The test sshd's host key as `"<algorithm> <key>"`, for an endpoint that reaches it
/// through a relay (another port than known_hosts names).
fn pinned_host_key() -> String {
    let known = std::fs::read_to_string(env("SFTP_KNOWN_HOSTS")).unwrap();
    let line = known.lines().find(|line| line.contains("ssh-")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    format!("{} {}", fields[1], fields[2])
}

/// Bytes of the files directly in `dir` (0 while it does not exist).
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_transfer_shows_its_progress_on_another_node() {
    let mut setup = TestServer::setup(1);
    let orbit = setup.orbit().await;
    let src = endpoint(Kind::Local, "src");
    // A sparse 1 GiB file: far more than passes before the line goes silent.
    let big = std::fs::File::create(local_root(&src).join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    orbit.put_endpoint(&src, 4).await.unwrap();
    // The SFTP server through a relay, so the transfer can be held mid-way.
    let relay = Relay::start(format!("{}:{}", env("SFTP_HOST"), env("SFTP_PORT"))).await;
    let root = unique("progress");
    let mut sftp = sftp_config(&root);
    sftp.port = relay.port;
    sftp.host_key = HostKeyCheck::Pinned {
        keys: vec![pinned_host_key()],
    };
    let dst = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "partner".into(),
        config: EndpointConfig::Sftp(sftp),
    };
    orbit.put_endpoint(&dst, 4).await.unwrap();

    let mut runner = setup.start().await;
    // Another node on the same store, without workers: it only watches.
    let mut watcher = runner.another_node();
    watcher.config.workers = 0;
    let mut watcher = watcher.start().await;
    let (run_api, watch_api, keys) = (&runner.api, &watcher.api, &runner.keys);

    let spec = TransferSpec::file(
        "src",
        "big.bin",
        "partner",
        PathTemplate::parse("{filename}").unwrap(),
    );
    let body = serde_json::to_value(JobRequest::new(spec)).unwrap();
    let reply = run_api
        .post("/api/v1/jobs", &keys.operator, Some(body))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_i64().unwrap();

    // Once bytes have arrived at the SFTP server, hold the line: the transfer stays running.
    let landing = Path::new(&env("SFTP_HOME")).join(&root);
    let deadline = Instant::now() + Duration::from_secs(60);
    while bytes_in(&landing) == 0 {
        assert!(Instant::now() < deadline, "no bytes arrived in {landing:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    relay.silence();

    let job = job_until(watch_api, &keys.viewer, id, "showed progress", |job| {
        job["progress"]["bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(job["state"], "leased", "{job}");
    assert_eq!(job["progress"]["total_bytes"], 1u64 << 30, "{job}");
    assert!(job["bytes"].as_u64().unwrap() > 0, "{job}");
    assert!(job["progress"]["updated_at"].as_i64().unwrap() > 0, "{job}");

    let cancel = run_api
        .post(&format!("/api/v1/jobs/{id}/cancel"), &keys.operator, None)
        .await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    relay.restore();
    let job = job_until(watch_api, &keys.viewer, id, "ended", |job| {
        job["state"] == "cancelled"
    })
    .await;
    assert!(
        job["progress"].is_null(),
        "an ended attempt shows no live progress: {job}"
    );
    assert!(runner.shutdown().await);
    assert!(watcher.shutdown().await);
    let _ = std::fs::remove_dir_all(&landing);
}
