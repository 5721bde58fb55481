//! A leased job as the agent reads it and runs it: the wire shapes of AGENTS.md (a leased
//! job with its endpoints' secrets, each outcome), and one slot running real transfers
//! between local folders through rclone, within the limits, stopped before it starts and
//! midway (the source throttled by the shim so the stop lands while bytes move).

use super::protocol::{Ended, LeaseReply, Outcome, OutcomeError};
use super::slot::{Board, Stop, run_job};
use crate::endpoint::{EndpointConfig, SftpAuth};
use crate::engine::Limits;
use crate::error::{Error, ErrorKind};
use crate::rclone::Rclone;
use serde_json::json;
use std::path::Path;

fn leased(
    source_root: &Path,
    destination_root: &Path,
    spec: serde_json::Value,
) -> serde_json::Value {
    json!({"jobs": [{
        "slot": 1, "job_id": 7, "attempt": 2, "created_at": 1_796_688_000_000_i64,
        "spec": spec,
        "source": {"name": "in", "type": "local", "root": source_root},
        "destination": {"name": "out", "type": "local", "root": destination_root},
    }]})
}

#[test]
fn a_leased_job_reads_as_the_contract_writes_it_secrets_included() {
    let reply: LeaseReply = serde_json::from_value(json!({"jobs": [{
        "slot": 0, "job_id": 7, "attempt": 1, "created_at": 5,
        "spec": {"source": "in", "source_path": "a.txt", "destination": "box",
                 "destination_path": "{filename}"},
        "source": {"name": "in", "type": "local", "root": "/srv/in"},
        "destination": {"name": "box", "type": "sftp", "host": "h", "user": "u",
                        "root": "outbox", "bandwidth": "1M",
                        "auth": {"method": "password", "password": "hunter2"}},
    }]}))
    .unwrap();
    let job = &reply.jobs[0];
    assert_eq!(
        (job.slot, job.job_id, job.attempt, job.created_at),
        (0, 7, 1, 5)
    );
    match &job.destination.config {
        EndpointConfig::Sftp(sftp) => match &sftp.auth {
            SftpAuth::Password { password } => assert_eq!(password.expose(), "hunter2"),
            other => panic!("not a password: {other:?}"),
        },
        other => panic!("not sftp: {other:?}"),
    }
    assert!(job.destination.bandwidth.is_some());
}

#[test]
fn outcomes_are_written_as_the_contract_reads_them() {
    let outcome = |ended| {
        serde_json::to_value(Outcome {
            job_id: 7,
            slot: 1,
            ended,
        })
        .unwrap()
    };
    assert_eq!(
        outcome(Ended::Succeeded {
            bytes: 5,
            files: 1,
            warnings: vec!["w".into()]
        }),
        json!({"job_id": 7, "slot": 1, "outcome": "succeeded", "bytes": 5, "files": 1, "warnings": ["w"]})
    );
    let err = Error::new(ErrorKind::NotFound, "transfer", "no such file");
    assert_eq!(
        outcome(Ended::Failed {
            error: OutcomeError::from(&err)
        }),
        json!({"job_id": 7, "slot": 1, "outcome": "failed", "error": {
            "kind": "NotFound", "message": "transfer: no such file", "retryable": false}})
    );
    assert_eq!(
        outcome(Ended::Cancelled),
        json!({"job_id": 7, "slot": 1, "outcome": "cancelled"})
    );
    assert_eq!(
        outcome(Ended::Released),
        json!({"job_id": 7, "slot": 1, "outcome": "released"})
    );
    let back: Outcome = serde_json::from_value(outcome(Ended::Released)).unwrap();
    assert_eq!(back.ended, Ended::Released);
}

/// Runs the one job of `reply` in a slot of a fresh board, as the runner does.
async fn run_leased(reply: serde_json::Value, limits: Limits, stop: Option<Stop>) -> Option<Ended> {
    let rclone = tokio::task::spawn_blocking(Rclone::global)
        .await
        .unwrap()
        .unwrap();
    let mut reply: LeaseReply = serde_json::from_value(reply).unwrap();
    let job = reply.jobs.remove(0);
    let board = Board::default();
    let stopped = board.add(job.job_id, job.slot);
    let running = board.running(0);
    assert_eq!((running.len(), running[0].slot), (1, 1));
    assert!(
        running[0].progress.is_none(),
        "no progress before the transfer starts"
    );
    if let Some(why) = stop {
        board.stop(job.job_id, why);
    }
    run_job(rclone, &limits, &board, job, stopped).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_runs_its_transfer_and_reports_what_it_moved() {
    let (source, destination) = (folder(), folder());
    std::fs::create_dir(source.path().join("sub")).unwrap();
    std::fs::write(source.path().join("sub/a.txt"), "hello").unwrap();
    let spec = json!({"source": "in", "source_path": "sub/a.txt", "destination": "out",
                      "destination_path": "x/{filename}", "scope": "file"});
    let ended = run_leased(
        leased(source.path(), destination.path(), spec),
        Limits::default(),
        None,
    )
    .await;
    assert_eq!(
        ended,
        Some(Ended::Succeeded {
            bytes: 5,
            files: 1,
            warnings: Vec::new()
        })
    );
    let landed = std::fs::read_to_string(destination.path().join("x/a.txt")).unwrap();
    assert_eq!(landed, "hello");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_reports_failures_limits_and_stops() {
    let (source, destination) = (folder(), folder());
    std::fs::write(source.path().join("a.txt"), "hello").unwrap();
    let job = |spec| leased(source.path(), destination.path(), spec);
    let spec = json!({"source": "in", "source_path": "a.txt", "destination": "out",
                      "destination_path": "{filename}", "scope": "file"});
    let failed = |ended: Option<Ended>| match ended {
        Some(Ended::Failed { error }) => error,
        other => panic!("not a failure: {other:?}"),
    };
    // Above this agent's limits: refused here, for good.
    let mut wide = spec.clone();
    wide["parallelism"] = json!(65);
    let error = failed(run_leased(job(wide), Limits::default(), None).await);
    assert_eq!(
        (error.kind.as_str(), error.retryable),
        ("InvalidInput", false)
    );
    assert!(
        error.message.contains("limits.max_parallelism"),
        "{error:?}"
    );
    // A missing source is the transfer's own error.
    let mut missing = spec.clone();
    missing["source_path"] = json!("gone.txt");
    let error = failed(run_leased(job(missing), Limits::default(), None).await);
    assert_eq!(error.kind, "NotFound", "{error:?}");
    assert!(error.message.contains("gone.txt"), "{error:?}");
    // Stopped before it started: nothing moves; a lost lease reports nothing.
    for (why, expected) in [
        (Stop::Cancel, Some(Ended::Cancelled)),
        (Stop::Release, Some(Ended::Released)),
        (Stop::Lost, None),
    ] {
        assert_eq!(
            run_leased(job(spec.clone()), Limits::default(), Some(why)).await,
            expected
        );
    }
    assert!(!destination.path().join("a.txt").exists());
}

fn folder() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fo-agent")
        .tempdir()
        .unwrap()
}

/// Runs a 256 KiB copy from an endpoint whose bandwidth limit is 8 KiB/s (about half a
/// minute: the slot applies the leased endpoint's limit), stops it with `why` once it shows
/// progress, and gives what the slot reported.
async fn stopped_midway(name: &str, why: Stop) -> Option<Ended> {
    use crate::rclone::methods::OrbitBwLimit;
    let rclone = tokio::task::spawn_blocking(Rclone::global)
        .await
        .unwrap()
        .unwrap();
    let (source, destination) = (folder(), folder());
    std::fs::write(source.path().join("big.bin"), vec![7u8; 256 << 10]).unwrap();
    let mut reply: LeaseReply = serde_json::from_value(json!({"jobs": [{
        "slot": 0, "job_id": 9, "attempt": 1, "created_at": 0,
        "spec": {"source": name, "source_path": "big.bin", "destination": "out",
                 "destination_path": "{filename}", "scope": "file"},
        "source": {"name": name, "type": "local", "root": source.path(), "bandwidth": "8k"},
        "destination": {"name": "out", "type": "local", "root": destination.path()},
    }]}))
    .unwrap();
    let job = reply.jobs.remove(0);
    let board = Board::default();
    let stopped = board.add(job.job_id, job.slot);
    let limits = Limits::default();
    let slot = run_job(rclone, &limits, &board, job, stopped);
    tokio::pin!(slot);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    // Polls the board (as the reporter does) until the transfer has moved bytes.
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            ended = &mut slot => panic!("ended before it was stopped: {ended:?}"),
            _ = poll.tick() => {}
        }
        let moving = board.running(0)[0]
            .progress
            .as_ref()
            .is_some_and(|p| p.bytes > 0);
        if moving {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress within 20 s"
        );
    }
    board.stop(9, why);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), slot)
        .await
        .expect("the transfer stops within 10 s");
    let unthrottled = OrbitBwLimit {
        endpoint: Some(name.to_string()),
        upload: 0,
        download: 0,
    };
    rclone.call_async(&unthrottled).await.unwrap();
    assert!(
        !destination.path().join("big.bin").exists(),
        "no partial file where the transfer was going"
    );
    ended
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_transfer_stops_on_cancel_release_or_a_lost_lease() {
    assert_eq!(
        stopped_midway("slow-cancel", Stop::Cancel).await,
        Some(Ended::Cancelled)
    );
    assert_eq!(
        stopped_midway("slow-release", Stop::Release).await,
        Some(Ended::Released)
    );
    assert_eq!(stopped_midway("slow-lost", Stop::Lost).await, None);
}
