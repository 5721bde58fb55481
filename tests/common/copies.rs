//! Many one-file copy jobs at once, as the bandwidth tests run them: a local source of
//! numbered files (`f0.bin`, `f1.bin`, ...), their jobs, and the wait for all of them.

use super::{Kind, endpoint, local_root};
use file_orbit::endpoint::Endpoint;
use file_orbit::engine::{JobRequest, JobState, Orbit};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::time::{Duration, Instant};

/// A local endpoint named `name` holding `files` files of `size` bytes each.
pub fn numbered_source(name: &str, files: usize, size: u64) -> Endpoint {
    let source = endpoint(Kind::Local, name);
    let root = local_root(&source);
    for i in 0..files {
        let body: Vec<u8> = (0..size).map(|b| (b * 31 + i as u64) as u8).collect();
        std::fs::write(root.join(format!("f{i}.bin")), body).unwrap();
    }
    source
}

/// Submits one job per numbered file of `source` (the first `files`) into the root of
/// `destination`; their ids.
pub async fn copy_numbered(
    orbit: &Orbit,
    source: &str,
    files: usize,
    destination: &str,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..files {
        let template = PathTemplate::parse("{filename}").unwrap();
        let spec = TransferSpec::file(source, &format!("f{i}.bin"), destination, template);
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    ids
}

/// Waits for every job to succeed; the time from `start` until the last did.
pub async fn all_succeeded(orbit: &Orbit, ids: &[i64], start: Instant) -> Duration {
    for id in ids {
        let job = orbit.wait(*id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
    }
    start.elapsed()
}
