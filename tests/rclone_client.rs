//! The in-process rclone client against the real librclone: round trips, versions,
//! concurrency, error mapping without secrets, async jobs with progress and cancellation.

use file_orbit::ErrorKind;
use file_orbit::rclone::methods::{
    Check, CoreObscure, CoreVersion, DeleteFile, Fs, FsPath, List, ListOptions, Noop, SyncCopy,
    TreeTransfer,
};
use file_orbit::rclone::{JobOptions, PINNED_RCLONE_VERSION, Rclone};
use serde_json::{Map, Value, json};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

fn rclone() -> &'static Rclone {
    Rclone::global().expect("librclone loads and initialises")
}

#[test]
fn noop_echoes_its_parameters() {
    let input = json!({"text": "héllo #%& wörld", "n": 42, "nested": {"list": [1, 2, 3]}});
    let reply = rclone().rpc("rc/noop", &input).unwrap();
    assert_eq!(reply, input);
}

#[test]
fn core_version_reports_the_pinned_release() {
    let version = rclone().call(&CoreVersion {}).unwrap();
    assert_eq!(version.version, PINNED_RCLONE_VERSION);
    assert!(version.decomposed.as_slice() >= [1, 75, 0].as_slice());
    assert_eq!(version.linking, "dynamic");
}

#[test]
fn user_rclone_config_is_not_used() {
    let paths = rclone().rpc("config/paths", &json!({})).unwrap();
    assert_eq!(
        paths["config"], "",
        "config path must be in-memory: {paths}"
    );
    let remotes = rclone().rpc("config/listremotes", &json!({})).unwrap();
    assert_eq!(remotes["remotes"], json!([]), "{remotes}");
}

#[test]
fn a_thousand_concurrent_calls_from_eight_threads_all_return_their_own_reply() {
    let client = rclone();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            std::thread::spawn(move || {
                for call in 0..125 {
                    let mut params = Map::new();
                    params.insert("thread".into(), thread.into());
                    params.insert("call".into(), call.into());
                    params.insert("payload".into(), "x".repeat(call * 8).into());
                    let reply = client.call(&Noop(params.clone())).unwrap();
                    assert_eq!(reply, params);
                }
                125
            })
        })
        .collect();
    let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(done, 1000);
}

#[test]
fn per_call_options_apply_on_the_fast_and_the_job_path() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a.txt"), "a").unwrap();
    let copy = |extra: Value| {
        let mut input = json!({"srcFs": src.path(), "srcRemote": "a.txt",
                               "dstFs": dst.path(), "dstRemote": "a.txt"});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        rclone().rpc("operations/copyfile", &input).unwrap();
        dst.path().join("a.txt").exists()
    };
    // rclone accepts config options nested in `_config` and flat at the top level.
    assert!(!copy(json!({"_config": {"DryRun": true}})));
    assert!(!copy(json!({"dry_run": true})));
    assert!(copy(json!({})));
}

const CANARY: &str = "canary-Pa55w0rd-8d1f";

fn assert_no_secret(err: &file_orbit::Error, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "secret {secret} leaked: {shown}");
    }
}

#[test]
fn unknown_method_is_not_found_and_does_not_echo_input() {
    let err = rclone()
        .rpc("no/such/method", &json!({"pass": CANARY}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(!err.retryable);
    assert!(err.message.contains("no/such/method"), "{err}");
    assert_no_secret(&err, &[CANARY]);
}

#[test]
fn bad_parameters_are_invalid_input_without_secrets() {
    // operations/list without its `remote` parameter; the fs carries a password.
    let err = rclone()
        .rpc(
            "operations/list",
            &json!({"fs": {"type": "local", "_root": "/tmp", "pass": CANARY}}),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.contains("remote"), "{err}");
    assert_no_secret(&err, &[CANARY]);
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = rclone()
        .call(&DeleteFile(FsPath {
            fs: Fs::local(dir.path()),
            remote: "absent.txt".into(),
        }))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[test]
fn connection_failure_is_retryable_and_hides_passwords() {
    let client = rclone();
    let obscured = client
        .call(&CoreObscure {
            clear: CANARY.into(),
        })
        .unwrap()
        .obscured;
    // Port 1 on loopback refuses: rclone fails while building the sftp file system and
    // quotes the connection string (with `pass=`) in its error.
    let err = client
        .rpc(
            "operations/list",
            &json!({
                "fs": {"type": "sftp", "host": "127.0.0.1", "port": "1", "user": "u",
                       "pass": obscured, "_root": "/"},
                "remote": "",
                "_config": {"LowLevelRetries": 1},
            }),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err}");
    assert!(err.retryable);
    assert!(err.message.contains("connection refused"), "{err}");
    assert_no_secret(&err, &[CANARY, &obscured]);
}

/// Writes `count` files of varied sizes in nested directories; returns their total size.
fn write_tree(root: &Path, count: usize, size: usize) -> u64 {
    let mut total = 0;
    for i in 0..count {
        let dir = root
            .join(format!("d{}", i % 7))
            .join(format!("sub {}", i % 3));
        fs::create_dir_all(&dir).unwrap();
        let len = size + i * 13;
        let body: Vec<u8> = (0..len).map(|b| ((b * 31 + i) % 251) as u8).collect();
        fs::write(dir.join(format!("file #{i} ü.bin")), body).unwrap();
        total += len as u64;
    }
    total
}

fn job_config(config: Value) -> JobOptions {
    JobOptions {
        config: config.as_object().cloned(),
        poll_interval: Duration::from_millis(20),
        ..JobOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tree_copy_reports_progress_and_verifies() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let total = write_tree(src.path(), 200, 256 * 1024);
    let client = rclone();

    // A per-file limit stretches the copy over about a second, so progress is visible.
    let request = SyncCopy(TreeTransfer {
        src_fs: Fs::local(src.path()),
        dst_fs: Fs::local(dst.path()),
        create_empty_src_dirs: true,
    });
    let options = job_config(json!({"Transfers": 4, "BwLimitFile": "16M", "CheckSum": true}));
    let job = client.start(&request, options).await.unwrap();
    let mut progress = job.progress();
    let mut seen = Vec::new();
    let watcher = tokio::spawn(async move {
        while let Some(update) = progress.next().await {
            seen.push(update);
        }
        seen
    });
    job.wait().await.unwrap();
    let seen = watcher.await.unwrap();

    let bytes: Vec<u64> = seen.iter().map(|p| p.bytes).collect();
    assert!(
        bytes.iter().filter(|&&b| b > 0 && b < total).count() >= 2,
        "expected intermediate progress, saw {bytes:?}"
    );
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{bytes:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.bytes, last.files), (total, 200), "{last:?}");

    let check = client
        .call_async(&Check::new(Fs::local(src.path()), Fs::local(dst.path())))
        .await
        .unwrap();
    assert!(check.success, "{check:?}");
    assert_eq!(check.hash_type.as_deref(), Some("md5"));
    assert!(
        check.differ.is_empty() && check.missing_on_dst.is_empty(),
        "{check:?}"
    );

    let listed = client
        .call(&List {
            fs: Fs::local(dst.path()),
            remote: String::new(),
            opt: ListOptions {
                recurse: true,
                files_only: true,
                ..ListOptions::default()
            },
        })
        .unwrap();
    assert_eq!(listed.list.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_large_copy_stops_it_within_a_second() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let size = 512 * 1024 * 1024;
    let big = fs::File::create(src.path().join("big.bin")).unwrap();
    big.set_len(size).unwrap();
    drop(big);
    let client = rclone();

    // 512 MiB at 32 MiB/s would take 16 s.
    let request = SyncCopy(TreeTransfer {
        src_fs: Fs::local(src.path()),
        dst_fs: Fs::local(dst.path()),
        create_empty_src_dirs: false,
    });
    let job = client
        .start(&request, job_config(json!({"BwLimitFile": "32M"})))
        .await
        .unwrap();
    let mut progress = job.progress();
    while let Some(update) = progress.next().await {
        if update.bytes > 0 {
            break;
        }
    }

    let asked = Instant::now();
    job.cancel().await.unwrap();
    let err = job.wait().await.unwrap_err();
    let took = asked.elapsed();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    let copied = fs::metadata(dst.path().join("big.bin")).map_or(0, |m| m.len());
    assert!(copied < size, "the copy completed despite the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_copy_cancelled_before_its_first_byte_ends_cancelled_not_succeeded() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    for i in 0..200 {
        fs::write(src.path().join(format!("f{i:03}.txt")), b"x").unwrap();
    }
    let client = rclone();
    let request = SyncCopy(TreeTransfer {
        src_fs: Fs::local(src.path()),
        dst_fs: Fs::local(dst.path()),
        create_empty_src_dirs: false,
    });
    // Stopped at once: rclone's copy may return without an error, having copied nothing.
    let job = client
        .start(&request, job_config(json!({"BwLimitFile": "1k"})))
        .await
        .unwrap();
    job.cancel().await.unwrap();
    let err = job.wait().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");

    // Cancelling a job that has already finished changes nothing: its result stands.
    let job = client.start(&request, job_config(json!({}))).await.unwrap();
    let canceller = job.canceller();
    job.wait().await.unwrap();
    canceller.cancel().await.unwrap();
    assert_eq!(fs::read_dir(dst.path()).unwrap().count(), 200);
}
