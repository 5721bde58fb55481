//! The service-wide cap (its own test binary: it is one per process): transfers to two
//! uncapped remote endpoints together stay within it, while a copy between local disks,
//! which it does not charge, runs free.

mod common;

use common::copies::{all_succeeded, copy_numbered, numbered_source};

use common::{Kind, endpoint, orbit_options, sqlite_url, unique};
use file_orbit::engine::Orbit;
use std::time::Instant;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_endpoints_together_stay_within_the_service_cap() {
    let (url, _dir) = sqlite_url();
    let mut options = orbit_options(&url);
    options.bandwidth.service = Some("4M".parse().unwrap());
    let orbit = Orbit::open(options).await.unwrap();
    let source = numbered_source(&unique("svc-src"), 4, 6 * MIB);
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
        copy_numbered(&orbit, &source.name, 2, &sftp.name).await,
        copy_numbered(&orbit, &source.name, 2, &s3.name).await,
        copy_numbered(&orbit, &source.name, 4, &disk.name).await,
    );
    let (disk_took, remote_took) = tokio::join!(all_succeeded(&orbit, &to_disk, start), async {
        let sftp = all_succeeded(&orbit, &to_sftp, start).await;
        sftp.max(all_succeeded(&orbit, &to_s3, start).await)
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
