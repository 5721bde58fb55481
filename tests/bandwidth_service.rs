//! The service-wide cap (its own test binary: it is one per process): transfers to two
//! uncapped remote endpoints together stay within it, while a copy between local disks,
//! which it does not charge, runs free.

mod common;

use common::{Kind, endpoint, local_root, orbit_options, sqlite_url, unique};
use file_orbit::endpoint::Endpoint;
use file_orbit::engine::{JobRequest, JobState, Orbit};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

async fn copy(orbit: &Orbit, source: &Endpoint, files: usize, destination: &Endpoint) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..files {
        let spec = TransferSpec::file(
            &source.name,
            &format!("f{i}.bin"),
            &destination.name,
            PathTemplate::parse("{filename}").unwrap(),
        );
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    ids
}

async fn took(orbit: &Orbit, ids: &[i64], start: Instant) -> Duration {
    for id in ids {
        let job = orbit.wait(*id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_endpoints_together_stay_within_the_service_cap() {
    let (url, _dir) = sqlite_url();
    let mut options = orbit_options(&url);
    options.bandwidth.service = Some("4M".parse().unwrap());
    let orbit = Orbit::open(options).await.unwrap();
    let source = endpoint(Kind::Local, &unique("svc-src"));
    for i in 0..4 {
        let body: Vec<u8> = (0..6 * MIB).map(|b| (b * 3 + i) as u8).collect();
        std::fs::write(local_root(&source).join(format!("f{i}.bin")), body).unwrap();
    }
    let sftp = endpoint(Kind::Sftp, &unique("svc-sftp"));
    let s3 = endpoint(Kind::S3, &unique("svc-s3"));
    let disk = endpoint(Kind::Local, &unique("svc-disk"));
    orbit.put_endpoint(&source, 16).await.unwrap();
    for destination in [&sftp, &s3, &disk] {
        orbit.put_endpoint(destination, 4).await.unwrap();
    }
    let workers = orbit.start_workers(12);
    let start = Instant::now();
    let (to_sftp, to_s3, to_disk) = (
        copy(&orbit, &source, 2, &sftp).await,
        copy(&orbit, &source, 2, &s3).await,
        copy(&orbit, &source, 4, &disk).await,
    );
    let (disk_took, remote_took) = tokio::join!(took(&orbit, &to_disk, start), async {
        let sftp = took(&orbit, &to_sftp, start).await;
        sftp.max(took(&orbit, &to_s3, start).await)
    });
    workers.shutdown().await;
    // 24 MiB to the two remotes at 4 MiB/s together: 6 s.
    let ratio = (24 * MIB) as f64 / remote_took.as_secs_f64() / (4 * MIB) as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "the remotes moved {ratio:.3}× the service cap together"
    );
    assert!(
        disk_took < remote_took / 2,
        "the local copy took {disk_took:?}, the capped remote ones {remote_took:?}"
    );
}
