//! Calls per second and latency of in-process `rc/noop` through File Orbit's client against
//! the same rclone release as `rclone rcd` over HTTP on loopback (keep-alive), in one run.
//! Needs the rclone CLI of librclone's release in `FILE_ORBIT_RCLONE_CLI` or on PATH
//! (`scripts/bench.sh` builds it with `go install` and sets the variable); another release
//! is refused. Prints a markdown table.

#[path = "support/cli.rs"]
mod cli;
use cli::first_line;
use file_orbit::rclone::Rclone;
use serde_json::json;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const THREADS: [usize; 2] = [1, 8];

struct Sample {
    calls: usize,
    total: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.total.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }
}

/// Runs `calls` calls on each of `threads` threads after a warm-up; `call` is one call.
fn measure(threads: usize, calls: usize, call: impl Fn() + Sync) -> Sample {
    for _ in 0..calls / 10 {
        call();
    }
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    (0..calls)
                        .map(|_| {
                            let t = Instant::now();
                            call();
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let total = started.elapsed();
    latencies.sort();
    Sample {
        calls: threads * calls,
        total,
        latencies,
    }
}

/// `rclone rcd` on a free loopback port, killed on drop.
struct Rcd {
    child: Child,
    url: String,
}

impl Drop for Rcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_rcd(cli: &str) -> Rcd {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(cli)
        .args(["rcd", "--rc-no-auth", "--config", "", "--rc-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {cli} (scripts/bench.sh builds it): {err}"));
    let rcd = Rcd {
        child,
        url: format!("http://{addr}/rc/noop"),
    };
    // Bounded wait for the listener: at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "rclone rcd did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rcd
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let cli = std::env::var("FILE_ORBIT_RCLONE_CLI").unwrap_or_else(|_| "rclone".into());
    let client = Rclone::global().expect("librclone loads");
    let cli_version = first_line(&cli, "version");
    assert!(
        !cli_version.starts_with("cannot run"),
        "{cli_version} (scripts/bench.sh builds it)"
    );
    assert_eq!(
        cli_version,
        format!("rclone {}", client.version().version),
        "{cli} must be librclone's release (scripts/bench.sh builds it)"
    );
    println!(
        "in-process: rclone {} ({}); rcd: {cli_version}\n",
        client.version().version,
        client.library_path()
    );

    let rcd = start_rcd(&cli);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let body = json!({"n": 1}).to_string();

    println!("| client | threads | calls | calls/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for threads in THREADS {
        let input = json!({"n": 1});
        let in_process = measure(threads, 20_000, || {
            client.rpc("rc/noop", &input).unwrap();
        });
        let over_http = measure(threads, 1_000, || {
            agent
                .post(&rcd.url)
                .content_type("application/json")
                .send(&body)
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap();
        });
        for (name, sample) in [
            ("File Orbit in-process", &in_process),
            ("rclone rcd HTTP", &over_http),
        ] {
            println!(
                "| {name} | {threads} | {} | {:.0} | {} | {} |",
                sample.calls,
                sample.per_second(),
                micros(sample.percentile(0.5)),
                micros(sample.percentile(0.99)),
            );
        }
        ratios.push((threads, in_process.per_second() / over_http.per_second()));
    }
    println!();
    for (threads, ratio) in ratios {
        println!("in-process / rcd calls/s with {threads} thread(s): {ratio:.1}×");
    }
}
