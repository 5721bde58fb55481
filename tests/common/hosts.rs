//! The hosts of the multi-host tests: A is this process's own network namespace (the
//! control plane, PostgreSQL and the other loopback-only test servers), B and C the network
//! namespaces `fo-b` and `fo-c` that `scripts/test-hosts.sh up` makes, joined to A by the
//! bridge `fo-br0` (10.231.0.0/24). Runs code, processes and a private sshd on a host,
//! and probes what a host can reach. It never creates or changes the namespaces: when they
//! are missing the test fails and says how to make them.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one connection attempt of [`reachable_from`] waits.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How often [`wait_tcp_from`] and the sshd start-up poll.
const POLL: Duration = Duration::from_millis(50);
/// How long a private sshd may take to answer.
const SSHD_START: Duration = Duration::from_secs(20);

/// One host of the test network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    A,
    B,
    C,
}

impl Host {
    pub const ALL: [Host; 3] = [Host::A, Host::B, Host::C];

    /// The host's address on the bridge: the one the other hosts reach it on.
    pub fn address(self) -> IpAddr {
        IpAddr::V4(match self {
            Host::A => Ipv4Addr::new(10, 231, 0, 1),
            Host::B => Ipv4Addr::new(10, 231, 0, 2),
            Host::C => Ipv4Addr::new(10, 231, 0, 3),
        })
    }

    /// The name of its network namespace; `None` for A, this process's own.
    pub fn netns(self) -> Option<&'static str> {
        match self {
            Host::A => None,
            Host::B => Some("fo-b"),
            Host::C => Some("fo-c"),
        }
    }

    /// "a", "b" or "c": for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Host::A => "a",
            Host::B => "b",
            Host::C => "c",
        }
    }

    fn netns_path(self) -> Option<PathBuf> {
        self.netns().map(|ns| Path::new("/run/netns").join(ns))
    }
}

/// Fails the test, saying how to make them, unless hosts B and C and the bridge exist.
pub fn require_hosts() {
    for host in [Host::B, Host::C] {
        let path = host.netns_path().unwrap();
        assert!(
            path.exists(),
            "host {host:?} (network namespace {}) does not exist: run scripts/test-hosts.sh up \
             (as root) before the multi-host tests",
            path.display()
        );
    }
    assert!(
        Path::new("/sys/class/net/fo-br0").exists(),
        "the bridge fo-br0 of host A does not exist: run scripts/test-hosts.sh up (as root) \
         before the multi-host tests"
    );
}

/// Runs `work` on a thread inside `host`'s network namespace (directly for A): every socket
/// it opens is one of that host, and stays so when returned and used from other threads
/// (a listener, a connection). The namespace's own `lo` answers its 127.0.0.1. Async work
/// runs here on a current-thread runtime built inside `work`.
pub fn on_host<T: Send>(host: Host, work: impl FnOnce() -> T + Send) -> T {
    let Some(path) = host.netns_path() else {
        return work();
    };
    require_hosts();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let netns = File::open(&path)
                    .unwrap_or_else(|err| panic!("opening {}: {err}", path.display()));
                // A thread's network namespace is its own: only this thread moves, and it
                // ends with `work`.
                let entered = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&netns), libc::CLONE_NEWNET)
                };
                assert_eq!(
                    entered,
                    0,
                    "setns into {}: {} (the tests run as root)",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One TCP connection attempt from inside `host` to `addr`, given up after half a second.
pub fn reachable_from(host: Host, addr: SocketAddr) -> bool {
    on_host(host, || {
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
    })
}

/// Polls until a TCP connection from inside `host` to `addr` succeeds (true) or `deadline`
/// has passed (false).
pub fn wait_tcp_from(host: Host, addr: SocketAddr, deadline: Duration) -> bool {
    let start = Instant::now();
    loop {
        if reachable_from(host, addr) {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// A listener on `host`'s bridge address (a free port), which the other hosts reach.
pub fn listen_on(host: Host) -> TcpListener {
    require_hosts();
    on_host(host, || {
        TcpListener::bind((host.address(), 0))
            .unwrap_or_else(|err| panic!("listening on host {host:?}'s {}: {err}", host.address()))
    })
}

/// A TCP port that nothing listens on, on `host`'s 127.0.0.1 nor on A's: for a server of
/// that host that the other hosts must not reach by accident.
pub fn free_port_on(host: Host) -> u16 {
    loop {
        let port = on_host(host, || {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        if host == Host::A || TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// The command that runs `program` on `host`: `ip netns exec <ns> program` (which execs in
/// place: the child's pid is the program's), or `program` itself on A.
fn command_on(host: Host, program: &OsStr) -> Command {
    match host.netns() {
        None => Command::new(program),
        Some(ns) => {
            require_hosts();
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(program);
            command
        }
    }
}

/// Runs `program` with `args` on `host` to completion; its output.
pub fn run_on(
    host: Host,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Output {
    let program = program.as_ref();
    command_on(host, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("running {program:?} on host {host:?}: {err}"))
}

/// A process running on a host, in its own process group, its stdout and stderr in one log
/// file. Dropping it kills the whole group with SIGKILL and reaps the process.
pub struct HostProcess {
    child: Child,
    host: Host,
    log_path: PathBuf,
    /// Set once it has been reaped.
    status: Option<ExitStatus>,
}

/// Starts `program` with `args` and the extra environment `env` on `host`, in a new process
/// group, stdout and stderr appended to `<log_dir>/<program>-<host>-<n>.log`.
pub fn spawn_on(
    host: Host,
    log_dir: &Path,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    env: &[(&str, &str)],
) -> HostProcess {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let program = program.as_ref();
    let stem = Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy()
        .into_owned();
    let log_path = log_dir.join(format!(
        "{stem}-{}-{}.log",
        host.name(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|err| panic!("creating {}: {err}", log_path.display()));
    let mut command = command_on(host, program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("starting {program:?} on host {host:?}: {err}"));
    HostProcess {
        child,
        host,
        log_path,
        status: None,
    }
}

impl HostProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn host(&self) -> Host {
        self.host
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything it wrote so far (stdout and stderr): for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Its exit status once it has ended, `None` while it runs. What is left of its group
    /// is killed before it is reaped.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // Looks without reaping (WNOWAIT): while the child is unreaped its pid, the
            // group's id, cannot be reused (pid_max is 32768 here), so killing the group
            // cannot hit another one.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let looked = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.child.id(),
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            assert_eq!(looked, 0, "waitid: {}", std::io::Error::last_os_error());
            if unsafe { info.si_pid() } != 0 {
                self.kill9();
            }
        }
        self.status
    }

    /// SIGKILL to its whole process group (no shutdown, no lease released), then reaps it;
    /// its exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        if self.status.is_none() {
            unsafe {
                libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
            }
            self.status = Some(self.child.wait().expect("reaping a child"));
        }
        self.status.unwrap()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private OpenSSH sshd on one host, bound to that host's 127.0.0.1 only: the SFTP server
/// only that host reaches. It has the host key, the test user and the settings of the sshd
/// of `scripts/test-servers.sh`; killed on drop.
pub struct HostSshd {
    pub host: Host,
    pub port: u16,
    /// A known_hosts file for `[127.0.0.1]:port` with its host key.
    pub known_hosts: PathBuf,
    pub process: HostProcess,
}

impl HostSshd {
    /// Where the host it runs on reaches it.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Starts an sshd on `host`'s 127.0.0.1:`port` with its configuration, log and known_hosts
/// file in `dir`; returns once it answers (its SSH banner) from that host.
pub fn start_sshd_on(host: Host, port: u16, dir: &Path) -> HostSshd {
    let servers = PathBuf::from(super::env("SERVERS_DIR"));
    let template_path = servers.join("sshd").join("sshd_config");
    let template = std::fs::read_to_string(&template_path).unwrap_or_else(|err| {
        panic!(
            "reading {} (scripts/test-servers.sh start writes it): {err}",
            template_path.display()
        )
    });
    let mut replaced = Vec::new();
    let mut config = String::new();
    for line in template.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let line = match key {
            "Port" => format!("Port {port}"),
            "ListenAddress" => "ListenAddress 127.0.0.1".to_string(),
            "PidFile" => "PidFile none".to_string(),
            _ => line.to_string(),
        };
        if ["Port", "ListenAddress", "PidFile"].contains(&key) {
            replaced.push(key);
        }
        config.push_str(&line);
        config.push('\n');
    }
    assert_eq!(
        replaced,
        ["Port", "ListenAddress", "PidFile"],
        "{} lacks one of Port, ListenAddress, PidFile",
        template_path.display()
    );
    let config_path = dir.join(format!("sshd_config.{}.{port}", host.name()));
    std::fs::write(&config_path, config).unwrap();
    let public_key = std::fs::read_to_string(servers.join("sshd/ssh_host_ed25519_key.pub"))
        .expect("the test sshd's host key (scripts/test-servers.sh start makes it)");
    let mut key_fields = public_key.split_whitespace();
    let (kind, key) = (key_fields.next().unwrap(), key_fields.next().unwrap());
    let known_hosts = dir.join(format!("known_hosts.{}.{port}", host.name()));
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();

    let mut process = spawn_on(
        host,
        dir,
        "/usr/sbin/sshd",
        [OsStr::new("-D"), OsStr::new("-e"), OsStr::new("-f")]
            .into_iter()
            .chain([config_path.as_os_str()]),
        &[],
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    while !on_host(host, || ssh_banner(addr)) {
        if let Some(status) = process.try_wait() {
            panic!(
                "sshd on host {host:?} port {port} exited ({status}): {}",
                process.log()
            );
        }
        assert!(
            start.elapsed() < SSHD_START,
            "sshd on host {host:?} port {port} did not answer within {SSHD_START:?}: {}",
            process.log()
        );
        std::thread::sleep(POLL);
    }
    HostSshd {
        host,
        port,
        known_hosts,
        process,
    }
}

/// The server at `addr` answers with an SSH banner.
fn ssh_banner(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
        return false;
    };
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0-")
}
