//! One-file jobs keep the connections to a remote endpoint warm: many one-file jobs into
//! many different directories of an SFTP endpoint, run by the engine's workers, open no
//! more SSH connections than there are slots (counted at a relay in front of sshd).

mod common;

use common::latency::LatencyRelay;
use common::{Kind, env, rclone};
use file_orbit::endpoint::{Endpoint, EndpointConfig, HostKeyCheck};
use file_orbit::engine::{JobRequest, JobState, Orbit};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::time::{Duration, Instant};

/// The test sshd's host key as `"<algorithm> <base64 key>"`, from the known_hosts file.
fn sshd_host_key() -> String {
    let known = std::fs::read_to_string(env("SFTP_KNOWN_HOSTS")).unwrap();
    let line = known.lines().next().expect("a known_hosts line");
    line.split_whitespace()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An SFTP endpoint on a fresh directory of the test sshd, reached through `relay`.
fn sftp_through(relay: &LatencyRelay, name: &str) -> Endpoint {
    let direct = common::endpoint(Kind::Sftp, name);
    let EndpointConfig::Sftp(mut sftp) = direct.config else {
        unreachable!()
    };
    sftp.host = "127.0.0.1".into();
    sftp.port = relay.port;
    sftp.host_key = HostKeyCheck::Pinned {
        keys: vec![sshd_host_key()],
    };
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config: EndpointConfig::Sftp(sftp),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_jobs_into_many_directories_reuse_the_slots_connections() {
    const JOBS: usize = 40;
    const SLOTS: usize = 4;
    let _ = rclone();
    let relay = LatencyRelay::start(
        format!("{}:{}", env("SFTP_HOST"), env("SFTP_PORT")),
        Duration::ZERO,
    )
    .await;
    let source = common::endpoint(Kind::Local, "inbox");
    let root = common::local_root(&source);
    for index in 0..JOBS {
        let dir = root.join(format!("dir-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file.bin"), vec![b'x'; 4096]).unwrap();
    }
    let destination = sftp_through(&relay, "partner");
    let (url, _dir) = common::sqlite_url();
    let orbit = Orbit::open(common::orbit_options(&url)).await.unwrap();
    orbit.put_endpoint(&source, SLOTS as u32).await.unwrap();
    orbit
        .put_endpoint(&destination, SLOTS as u32)
        .await
        .unwrap();
    let before = relay.connections();
    let requests: Vec<JobRequest> = (0..JOBS)
        .map(|index| {
            JobRequest::new(TransferSpec::file(
                "inbox",
                &format!("dir-{index}/file.bin"),
                "partner",
                PathTemplate::parse("{relpath}").unwrap(),
            ))
        })
        .collect();
    for id in orbit.submit_many(&requests).await.unwrap() {
        id.unwrap();
    }
    let started = Instant::now();
    let workers = orbit.start_workers(SLOTS);
    let deadline = started + Duration::from_secs(120);
    loop {
        let counts = orbit.store().job_counts().await.unwrap();
        assert_eq!(counts.get(JobState::Dead), 0, "a job failed: {counts:?}");
        if counts.get(JobState::Succeeded) as usize == JOBS {
            break;
        }
        assert!(Instant::now() < deadline, "jobs still running: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown().await;
    let opened = relay.connections() - before;
    let everything = destination.to_rclone(rclone(), "").unwrap();
    let size = rclone()
        .rpc("operations/size", &serde_json::json!({"fs": everything}))
        .unwrap();
    assert_eq!(size["count"], JOBS, "files on the SFTP server: {size}");
    // Before: a remote per destination directory, so one new SSH connection (with its
    // handshake) per job; then, rooted at the endpoint, concurrent first uses still made
    // one remote each. Now each slot's transfer runs on its own lane, warm after its
    // first job.
    assert!(
        opened <= SLOTS,
        "{JOBS} one-file jobs with {SLOTS} slots opened {opened} SSH connections"
    );
}
