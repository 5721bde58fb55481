//! The multi-host harness itself (`scripts/test-hosts.sh`, `tests/common/hosts.rs`): hosts B
//! and C reach A's bridge address and nothing of A's loopback (PostgreSQL included), a
//! private sshd on B answers B only, and a process on B runs in B's namespace and is gone,
//! with its children, after `kill9`.

mod common;

use common::hosts::{
    Host, free_port_on, listen_on, on_host, reachable_from, run_on, spawn_on, start_sshd_on,
    wait_tcp_from,
};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `check` every 20 ms; panics naming `what` after `DEADLINE`.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The peer address of the next connection `listener` accepts within `DEADLINE`.
fn accepted_peer(listener: &TcpListener) -> IpAddr {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((_, peer)) => return peer.ip(),
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < DEADLINE, "no connection accepted");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("accept: {err}"),
        }
    }
}

#[test]
fn b_and_c_reach_a_listener_on_a_bridge_address() {
    let listener = listen_on(Host::A);
    let addr = listener.local_addr().unwrap();
    for host in [Host::B, Host::C] {
        assert!(
            wait_tcp_from(host, addr, DEADLINE),
            "host {host:?} cannot reach A's listener on {addr}"
        );
        assert_eq!(
            accepted_peer(&listener),
            host.address(),
            "the connection from host {host:?} came from another address"
        );
    }
    // B reaches C directly over the bridge as well.
    let on_c = on_host(Host::C, || {
        TcpListener::bind((Host::C.address(), 0)).unwrap()
    });
    let addr = on_c.local_addr().unwrap();
    assert!(reachable_from(Host::B, addr), "B cannot reach C on {addr}");
    assert_eq!(accepted_peer(&on_c), Host::B.address());
}

#[test]
fn b_and_c_cannot_reach_postgresql_of_a() {
    let pg_port: u16 = common::env("POSTGRES_PORT").parse().unwrap();
    let pg = SocketAddr::from((Ipv4Addr::LOCALHOST, pg_port));
    assert!(
        reachable_from(Host::A, pg),
        "PostgreSQL of scripts/test-servers.sh does not answer on {pg} in host A: \
         the rest of this test would prove nothing"
    );
    let url = common::env("POSTGRES_URL");
    assert!(connects_to_postgres(Host::A, &url).is_ok());
    for host in [Host::B, Host::C] {
        for addr in [pg, SocketAddr::new(Host::A.address(), pg_port)] {
            assert!(
                !reachable_from(host, addr),
                "host {host:?} reaches {addr}, PostgreSQL's port"
            );
        }
        // The URL every test uses, as a client on B or C would use it.
        let refused = connects_to_postgres(host, &url)
            .expect_err(&format!("host {host:?} connected to PostgreSQL"));
        assert!(
            refused.contains("refused") || refused.contains("timed out"),
            "host {host:?}: {refused}"
        );
    }
}

/// A PostgreSQL connection to `url` from inside `host`, given up after 5 s.
fn connects_to_postgres(host: Host, url: &str) -> Result<(), String> {
    use sqlx::Connection;
    on_host(host, || {
        // A single-threaded runtime: its sockets are opened on this thread, in the host.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url))
                .await
            {
                Ok(Ok(conn)) => {
                    conn.close().await.unwrap();
                    Ok(())
                }
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("timed out".to_string()),
            }
        })
    })
}

#[test]
fn an_sshd_on_b_answers_b_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_on(Host::B);
    let sshd = start_sshd_on(Host::B, port, dir.path());
    assert!(reachable_from(Host::B, sshd.address()));
    for host in [Host::A, Host::C] {
        for addr in [sshd.address(), SocketAddr::new(Host::B.address(), port)] {
            assert!(
                !reachable_from(host, addr),
                "host {host:?} reaches B's sshd on {addr}"
            );
        }
    }
    // The test user logs in on B with the test servers' client key, and B's sshd has the
    // host key its known_hosts file names.
    let login = run_on(
        Host::B,
        "ssh",
        [
            "-p",
            &port.to_string(),
            "-i",
            &common::env("SFTP_KEY_FILE"),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", sshd.known_hosts.display()),
            &format!("{}@127.0.0.1", common::env("SFTP_USER")),
            "echo logged-in",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&login.stdout).trim(),
        "logged-in",
        "ssh on B: {}; sshd's log: {}",
        String::from_utf8_lossy(&login.stderr),
        sshd.process.log()
    );
    let addr = sshd.address();
    drop(sshd);
    assert!(
        !reachable_from(Host::B, addr),
        "B's sshd outlived its guard"
    );
}

/// The inode of `path`'s network namespace (`/proc/<pid>/ns/net`, `/run/netns/<name>`).
fn netns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.ino())
}

/// The process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn a_process_on_b_runs_in_b_and_kill9_ends_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn_on(
        Host::B,
        dir.path(),
        "bash",
        ["-c", "sleep 300 & echo \"child $!\"; wait"],
        &[("FO_HOSTS_TEST", "on-b")],
    );
    let mut child = 0;
    until("the child's pid in the log", || {
        child = process
            .log()
            .lines()
            .find_map(|line| line.strip_prefix("child ")?.parse().ok())
            .unwrap_or(0);
        child != 0
    });
    let b = netns_inode(Path::new("/run/netns/fo-b"));
    assert!(b.is_some());
    assert_ne!(b, netns_inode(Path::new("/proc/self/ns/net")));
    for pid in [process.pid(), child] {
        assert_eq!(
            netns_inode(Path::new(&format!("/proc/{pid}/ns/net"))),
            b,
            "process {pid} is not in B's network namespace"
        );
    }
    let environ = std::fs::read(format!("/proc/{}/environ", process.pid())).unwrap();
    assert!(
        environ
            .split(|&byte| byte == 0)
            .any(|entry| entry == b"FO_HOSTS_TEST=on-b"),
        "the environment given was not passed"
    );
    assert!(process.try_wait().is_none());
    let status = process.kill9();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(
        !Path::new(&format!("/proc/{}", process.pid())).exists(),
        "the process was not reaped"
    );
    until("the child of the killed process to end", || !alive(child));
}
