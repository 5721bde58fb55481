//! After rclone has copied a file, SIGTERM still reaches the host program's own handler:
//! rclone must not install its handler (which would exit the process). The test re-runs
//! its own binary as the host process and signals it.

use file_orbit::rclone::Rclone;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "FILE_ORBIT_SIGNAL_TEST_CHILD";
const TEST_NAME: &str = "sigterm_reaches_the_host_handler_after_a_copy";

#[test]
fn sigterm_reaches_the_host_handler_after_a_copy() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return run_host_process();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut output = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test <name> ... " on the same line first.
            if line.ends_with("READY") {
                let _ = ready_tx.send(());
            }
            output.push(line);
        }
        let _ = done_tx.send((output, child.wait()));
    });
    let bounded = Duration::from_secs(30);
    let ready = ready_rx.recv_timeout(bounded);
    if ready.is_ok() {
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }
    let Ok((output, status)) = done_rx.recv_timeout(bounded) else {
        // SAFETY: as above; the child is stuck, end it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the host process did not exit within {bounded:?} (ready: {ready:?})");
    };
    let status = status.unwrap();
    assert!(
        ready.is_ok(),
        "the host process ended before it was ready: {output:?}"
    );
    assert!(
        output.iter().any(|line| line.ends_with("HANDLED SIGTERM")),
        "the host's handler never ran; output {output:?}, status {status}"
    );
    assert!(status.success(), "host process status {status}");
}

/// The host: its own SIGTERM handler first, then rclone does a copy, then wait for SIGTERM.
fn run_host_process() {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM]).unwrap();
    let client = Rclone::global().unwrap();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), "payload").unwrap();
    client
        .rpc(
            "operations/copyfile",
            &json!({"srcFs": src.path(), "srcRemote": "a.txt",
                    "dstFs": dst.path(), "dstRemote": "a.txt"}),
        )
        .unwrap();
    assert_eq!(std::fs::read(dst.path().join("a.txt")).unwrap(), b"payload");
    println!("READY");
    let signal = signals.forever().next();
    assert_eq!(signal, Some(libc::SIGTERM));
    println!("HANDLED SIGTERM");
}
