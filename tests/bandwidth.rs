//! Per-endpoint bandwidth limits against the real servers: several jobs on each capped
//! endpoint share its cap while an uncapped endpoint runs free, a lowered cap reaches a
//! running transfer within a second (and cancelling it does not wait for tokens), and a
//! timetable switches at its boundary (the governor's clock is shifted to put one near).

mod common;

use common::copies::{all_succeeded, copy_numbered, numbered_source};

use chrono::{Local, TimeDelta, Timelike};
use common::{Kind, endpoint, local_root, orbit_options, sqlite_url, unique, until};
use file_orbit::endpoint::{Bandwidth, Endpoint};
use file_orbit::engine::{JobState, Orbit, OrbitOptions};
use file_orbit::rclone::methods::OrbitBwStats;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn limited(mut endpoint: Endpoint, bandwidth: &str) -> Endpoint {
    endpoint.bandwidth = Some(bandwidth.parse::<Bandwidth>().unwrap());
    endpoint
}

async fn open(options: OrbitOptions) -> Orbit {
    Orbit::open(options).await.unwrap()
}

fn assert_near(what: &str, measured: f64, cap: f64) {
    let ratio = measured / cap;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: {:.2} MiB/s against a cap of {:.2} MiB/s ({ratio:.3}×)",
        measured / MIB as f64,
        cap / MIB as f64
    );
}

/// This process's upload byte counter of `endpoint`, read from the shim now.
fn uploaded(orbit: &Orbit, endpoint: &str) -> u64 {
    let stats = orbit.rclone().call(&OrbitBwStats {}).unwrap();
    stats.endpoints.get(endpoint).map_or(0, |m| m.upload_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_endpoint_holds_its_own_cap_while_an_uncapped_one_runs_free() {
    let (url, _dir) = sqlite_url();
    let orbit = open(orbit_options(&url)).await;
    let source = numbered_source(&unique("bw-src"), 3, 6 * MIB);
    let sftp = limited(endpoint(Kind::Sftp, &unique("bw-sftp")), "2M");
    let s3 = limited(endpoint(Kind::S3, &unique("bw-s3")), "3M:off");
    let smb = limited(endpoint(Kind::Smb, &unique("bw-smb")), "1.5M");
    let free = endpoint(Kind::Local, &unique("bw-free"));
    // The source serves all ten jobs at once; each destination takes its own.
    orbit.put_endpoint(&source, 16).await.unwrap();
    for endpoint in [&sftp, &s3, &smb, &free] {
        orbit.put_endpoint(endpoint, 4).await.unwrap();
    }
    let workers = orbit.start_workers(12);
    // Submitted before the clock starts: jobs wait for the governor's first pass, which
    // the workers' start triggers, only by the time of one store read.
    let start = Instant::now();
    let (sftp_ids, s3_ids, smb_ids, free_ids) = (
        copy_numbered(&orbit, &source.name, 2, &sftp.name).await,
        copy_numbered(&orbit, &source.name, 3, &s3.name).await,
        copy_numbered(&orbit, &source.name, 2, &smb.name).await,
        copy_numbered(&orbit, &source.name, 3, &free.name).await,
    );
    let (sftp_took, s3_took, smb_took, free_took) = tokio::join!(
        all_succeeded(&orbit, &sftp_ids, start),
        all_succeeded(&orbit, &s3_ids, start),
        all_succeeded(&orbit, &smb_ids, start),
        all_succeeded(&orbit, &free_ids, start),
    );
    workers.shutdown().await;
    for took in [sftp_took, s3_took, smb_took] {
        assert!(
            took >= Duration::from_secs(5),
            "measured over {took:?} only"
        );
    }
    assert_near(
        "sftp, 2 jobs",
        (12 * MIB) as f64 / sftp_took.as_secs_f64(),
        (2 * MIB) as f64,
    );
    assert_near(
        "s3, 3 jobs",
        (18 * MIB) as f64 / s3_took.as_secs_f64(),
        (3 * MIB) as f64,
    );
    assert_near(
        "smb, 2 jobs",
        (12 * MIB) as f64 / smb_took.as_secs_f64(),
        1.5 * MIB as f64,
    );
    // Meanwhile the uncapped endpoint finishes long before the capped ones.
    let free_rate = (18 * MIB) as f64 / free_took.as_secs_f64();
    assert!(
        free_rate > (12 * MIB) as f64,
        "the uncapped endpoint moved only {:.1} MiB/s",
        free_rate / MIB as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lowered_cap_reaches_a_running_transfer_and_cancelling_does_not_wait() {
    let (url, _dir) = sqlite_url();
    let orbit = open(orbit_options(&url)).await;
    let source = numbered_source(&unique("bw-src"), 1, 40 * MIB);
    let sftp = limited(endpoint(Kind::Sftp, &unique("bw-sftp")), "4M");
    orbit.put_endpoint(&source, 4).await.unwrap();
    orbit.put_endpoint(&sftp, 4).await.unwrap();
    let workers = orbit.start_workers(2);
    let id = copy_numbered(&orbit, &source.name, 1, &sftp.name).await[0];
    until(
        "the transfer to move 4 MiB",
        Duration::from_secs(20),
        async || (uploaded(&orbit, &sftp.name) > 4 * MIB).then_some(()),
    )
    .await;

    orbit
        .put_endpoint(&limited(sftp.clone(), "1M"), 4)
        .await
        .unwrap();
    let listed = orbit.endpoints().await.unwrap();
    let shown = listed.iter().find(|e| e.name == sftp.name).unwrap();
    assert_eq!(shown.bandwidth.as_deref(), Some("1M"));
    assert_eq!(shown.bandwidth_now.upload, Some(MIB));
    assert!(shown.bandwidth_next.is_none());

    tokio::time::sleep(Duration::from_secs(1)).await; // the allowance for the change
    let (from, at) = (uploaded(&orbit, &sftp.name), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await; // the measuring window
    let rate = (uploaded(&orbit, &sftp.name) - from) as f64 / at.elapsed().as_secs_f64();
    assert_near("after lowering to 1M", rate, MIB as f64);
    let usage = orbit.bandwidth_usage();
    let sftp_usage = usage
        .iter()
        .find(|u| u.endpoint.as_deref() == Some(sftp.name.as_str()))
        .unwrap();
    assert_eq!(sftp_usage.limit.upload, Some(MIB));

    // About 20 MiB are left at 1 MiB/s: a cancel that waited for tokens would take 20 s.
    let asked = Instant::now();
    orbit.cancel(id).await.unwrap();
    let job = orbit.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "cancel took {:?}",
        asked.elapsed()
    );
    workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timetable_switches_at_its_boundary() {
    let (url, _dir) = sqlite_url();
    let source = numbered_source(&unique("bw-src"), 1, 24 * MIB);
    let local = endpoint(Kind::Local, &unique("bw-local"));
    // The governor's clock reads `LEAD` before a full minute when the orbit opens.
    const LEAD: Duration = Duration::from_secs(6);
    let now = Local::now();
    let boundary = (now + TimeDelta::minutes(2))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let mut options = orbit_options(&url);
    options.bandwidth.clock_offset = boundary - TimeDelta::from_std(LEAD).unwrap() - now;
    let at_boundary = Instant::now() + LEAD;
    let table = format!(
        "{},1M {},3M",
        (boundary - TimeDelta::minutes(1)).format("%H:%M"),
        boundary.format("%H:%M")
    );
    let orbit = open(options).await;
    let local = limited(local, &table);
    orbit.put_endpoint(&source, 4).await.unwrap();
    orbit.put_endpoint(&local, 4).await.unwrap();
    let listed = orbit.endpoints().await.unwrap();
    let shown = listed.iter().find(|e| e.name == local.name).unwrap();
    assert_eq!(shown.bandwidth.as_deref(), Some(table.as_str()));
    let next = shown.bandwidth_next.as_ref().expect("a next change");
    assert_eq!(next.rates.upload, Some(3 * MIB));

    let workers = orbit.start_workers(2);
    copy_numbered(&orbit, &source.name, 1, &local.name).await;
    until(
        "the transfer to start",
        Duration::from_secs(10),
        async || (uploaded(&orbit, &local.name) > 0).then_some(()),
    )
    .await;
    // Before the boundary: 1 MiB/s.
    let (from, at) = (uploaded(&orbit, &local.name), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slow = (uploaded(&orbit, &local.name) - from) as f64 / at.elapsed().as_secs_f64();
    assert!(
        Instant::now() + Duration::from_millis(300) < at_boundary,
        "the transfer started too late to measure before the boundary"
    );
    // After it (plus the governor's half second): 3 MiB/s.
    tokio::time::sleep_until((at_boundary + Duration::from_secs(1)).into()).await;
    let (from, at) = (uploaded(&orbit, &local.name), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fast = (uploaded(&orbit, &local.name) - from) as f64 / at.elapsed().as_secs_f64();
    workers.shutdown().await;
    assert_near("before the boundary", slow, MIB as f64);
    assert_near("after the boundary", fast, (3 * MIB) as f64);
    let _ = std::fs::remove_dir_all(local_root(&local));
}
