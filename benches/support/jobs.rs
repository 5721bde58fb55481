//! For the benches that drive the job store: env settings, a job that is never run, and
//! latency formatting.

use file_orbit::engine::JobRequest;
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::time::Duration;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A local→local single-file copy from `source` to `destination`; never executed.
pub fn noop_request(index: usize, source: &str, destination: &str) -> JobRequest {
    JobRequest::new(TransferSpec::file(
        source,
        &format!("incoming/file-{index}.csv"),
        destination,
        PathTemplate::parse("archive/{filename}").unwrap(),
    ))
}

/// The `p` quantile (0..=1) of sorted latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
