//! Agents on other hosts, as Linux network namespaces (`scripts/test-hosts.sh up`): host A
//! (this namespace) runs two control-plane replicas (the example server, over HTTPS with a
//! test CA) on one PostgreSQL that listens on A's loopback only; hosts B and C run agents
//! (the example worker in agent mode), which reach nothing of A but the API port. A job from
//! B's folder to an SFTP server only B reaches runs on B; a job placed on C never runs on B;
//! an agent killed with SIGKILL mid-job runs it again when it returns, the file intact; a
//! replica killed with SIGKILL leaves the agents working through the other, no job lost or
//! doubled; a revoked agent gets nothing more.

mod common;

use common::hosts::{Host, HostProcess, require_hosts, spawn_on, start_sshd_on};
use common::{Kind, endpoint, env, postgres_url, sftp_config};
use file_orbit::endpoint::{Endpoint, EndpointConfig, EndpointPlacement, HostKeyCheck};
use file_orbit::server::{Role, generate_api_key};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --all-features` builds it",
        binary.display()
    );
    binary
}

/// A test CA and a certificate it signed for A's address.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "File Orbit hosts CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![Host::A.address().to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// The control plane: replicas on A, an HTTPS client trusting the test CA, an admin key.
struct ControlPlane {
    /// The test CA's certificate (agents trust it).
    ca: PathBuf,
    replicas: Vec<Option<HostProcess>>,
    urls: Vec<String>,
    client: reqwest::Client,
    admin: String,
}

impl ControlPlane {
    async fn start(dir: &Path, replicas: usize) -> ControlPlane {
        let (ca, cert, key) = pki(dir);
        let store_url = postgres_url().await;
        let (admin, entry) = generate_api_key("admin", Role::Admin);
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut plane = ControlPlane {
            ca: ca.clone(),
            replicas: Vec::new(),
            urls: Vec::new(),
            client,
            admin: admin.expose().to_string(),
        };
        for n in 0..replicas {
            let data = dir.join(format!("replica-{n}"));
            std::fs::create_dir_all(&data).unwrap();
            let port = common::hosts::free_port_on(Host::A);
            let listen = SocketAddr::from((Host::A.address(), port));
            let config = format!(
                "listen = \"{listen}\"\nstore_url = \"{store_url}\"\nworkers = 1\nlease_secs = 5\n\
                 [tls]\ncert_path = \"{}\"\nkey_path = \"{}\"\n\
                 [[api_keys]]\nname = \"{}\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
                cert.display(),
                key.display(),
                entry.name,
                entry.sha256
            );
            let path = data.join("file-orbit-server.toml");
            std::fs::write(&path, config).unwrap();
            let data_dir = data.display().to_string();
            let process = spawn_on(
                Host::A,
                dir,
                binary("server"),
                ["--config", path.to_str().unwrap()],
                &[
                    ("FILE_ORBIT_DATA_DIR", &data_dir),
                    ("FILE_ORBIT_MASTER_KEY", MASTER_KEY),
                ],
            );
            plane.replicas.push(Some(process));
            plane.urls.push(format!("https://{listen}"));
            plane.until_healthy(n).await;
        }
        plane
    }

    async fn until_healthy(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(reply) = self
                .client
                .get(format!("{}/health", self.urls[n]))
                .send()
                .await
            {
                if reply.status().is_success() {
                    return;
                }
            }
            let log = self.replicas[n]
                .as_ref()
                .map(HostProcess::log)
                .unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "replica {n} did not answer: {log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A call to the first live replica as admin: (status, JSON body).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let n = self.replicas.iter().position(Option::is_some).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.urls[n]))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let reply = request.send().await.unwrap();
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn put_endpoint(&self, endpoint: &Endpoint) {
        let password = match &endpoint.config {
            EndpointConfig::Sftp(_) => Some(env("SFTP_PASSWORD")),
            _ => None,
        };
        let body = common::server::endpoint_body(endpoint, password.as_deref());
        let (status, answer) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/endpoints/{}", endpoint.name),
                Some(body),
            )
            .await;
        assert!(status == 201 || status == 200, "{answer}");
    }

    async fn submit(&self, source: &str, path: &str, destination: &str) -> i64 {
        let request = common::server::file_request(source, path, destination, 5);
        let (status, answer) = self
            .call(reqwest::Method::POST, "/api/v1/jobs", Some(request))
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_i64().unwrap()
    }

    async fn job(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/jobs/{id}")).await
    }

    /// Waits until job `id` is in a final state; fails when it is not `succeeded`.
    async fn succeeded(&self, id: i64, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            match job["state"].as_str().unwrap() {
                "succeeded" => return job,
                "dead" | "cancelled" => panic!("job {id} ended {job}"),
                _ => assert!(start.elapsed() < deadline, "job {id} still {job}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The workers that started an attempt of job `id` (its `job.started` audit records).
    async fn attempt_workers(&self, id: i64) -> Vec<String> {
        let records = self
            .get(&format!("/api/v1/audit?subject=job/{id}&limit=100"))
            .await;
        records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["subject"] == format!("job/{id}") && r["action"] == "job.started")
            .map(|r| r["actor"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn kill(&mut self, n: usize) {
        if let Some(mut replica) = self.replicas[n].take() {
            replica.kill9();
        }
    }

    async fn create_agent(&self, name: &str, labels: &[&str]) -> String {
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/agents",
                Some(json!({"name": name, "labels": labels})),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["enrolment_token"].as_str().unwrap().to_string()
    }

    async fn until_agent(&self, name: &str, status: &str) {
        let start = Instant::now();
        loop {
            let agent = self.get(&format!("/api/v1/agents/{name}")).await;
            if agent["status"] == status {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "agent {name}: {agent}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts the agent `name` on `host` (the example worker in agent mode) with both replicas'
/// URLs, the test CA and its enrolment token (used only while it has no credential file).
fn start_agent(
    plane: &ControlPlane,
    host: Host,
    name: &str,
    token: Option<&str>,
    dir: &Path,
) -> HostProcess {
    let urls: Vec<String> = plane.urls.iter().map(|url| format!("\"{url}\"")).collect();
    let config = format!(
        "workers = 2\nshutdown_grace_secs = 5\n[agent]\ncontrol_plane = [{}]\nca_file = \"{}\"\n\
         credential_file = \"{}\"\nwait_secs = 5\n{}",
        urls.join(", "),
        plane.ca.display(),
        dir.join(format!("{name}.credential")).display(),
        token.map_or(String::new(), |token| format!(
            "enrolment_token = \"{token}\"\n"
        ))
    );
    let path = dir.join(format!("agent-{name}.toml"));
    std::fs::write(&path, config).unwrap();
    spawn_on(
        host,
        dir,
        binary("worker"),
        ["--config", path.to_str().unwrap()],
        &[],
    )
}

fn placed(mut endpoint: Endpoint, agents: &[&str], labels: &[&str]) -> Endpoint {
    endpoint.placement = EndpointPlacement {
        agents: agents.iter().map(|a| a.to_string()).collect(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    endpoint
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

/// `len` pseudo-random bytes (not compressible, not all equal).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_hosts_b_and_c_run_their_jobs_through_the_replicas() {
    require_hosts();
    // Kept: the processes' logs explain a failure.
    let dir = tempfile::tempdir().unwrap().keep();
    let dir = dir.as_path();
    eprintln!("logs in {}", dir.display());
    let mut plane = ControlPlane::start(dir, 2).await;

    // B and C reach only the API port of A: never its PostgreSQL.
    let pg_port: u16 = env("POSTGRES_PORT").parse().unwrap();
    for host in [Host::B, Host::C] {
        for pg in [
            SocketAddr::from(([127, 0, 0, 1], pg_port)),
            SocketAddr::from((Host::A.address(), pg_port)),
        ] {
            assert!(
                !common::hosts::reachable_from(host, pg),
                "{host:?} reaches PostgreSQL at {pg}"
            );
        }
    }

    let token_b = plane.create_agent("b", &["dmz"]).await;
    let token_c = plane.create_agent("c", &[]).await;
    let mut agent_b = start_agent(&plane, Host::B, "b", Some(&token_b), dir);
    let agent_c = start_agent(&plane, Host::C, "c", Some(&token_c), dir);
    plane.until_agent("b", "online").await;
    plane.until_agent("c", "online").await;
    // The credential is on B's disk, for B only (written right after the enrolment).
    use std::os::unix::fs::PermissionsExt;
    let credential = dir.join("b.credential");
    let start = Instant::now();
    while !credential.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no credential file: {}",
            agent_b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mode = std::fs::metadata(&credential).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the credential file's mode");

    // B's folder, an SFTP server only B reaches (the DMZ), C's folders.
    let sshd = start_sshd_on(Host::B, common::hosts::free_port_on(Host::B), dir);
    let b_files = placed(endpoint(Kind::Local, "b-files"), &["b"], &[]);
    let sftp_root = common::unique("fo-dmz");
    let mut dmz_config = sftp_config(&sftp_root);
    dmz_config.host = "127.0.0.1".into();
    dmz_config.port = sshd.port;
    dmz_config.host_key = HostKeyCheck::KnownHostsFile {
        path: sshd.known_hosts.clone(),
    };
    let dmz = placed(
        Endpoint {
            name: "dmz-sftp".into(),
            bandwidth: None,
            placement: Default::default(),
            config: EndpointConfig::Sftp(dmz_config),
        },
        &[],
        &["dmz"],
    );
    let c_files = placed(endpoint(Kind::Local, "c-files"), &["c"], &[]);
    let c_out = placed(endpoint(Kind::Local, "c-out"), &["c"], &[]);
    for ep in [&b_files, &dmz, &c_files, &c_out] {
        plane.put_endpoint(ep).await;
    }
    let b_root = common::local_root(&b_files);
    let dmz_root = PathBuf::from(env("SFTP_HOME")).join(&sftp_root);

    // B's folder to the DMZ's SFTP server: runs on B.
    std::fs::write(b_root.join("report.csv"), payload(1 << 20, 1)).unwrap();
    let id = plane.submit("b-files", "report.csv", "dmz-sftp").await;
    plane.succeeded(id, Duration::from_secs(60)).await;
    assert_eq!(
        sha256_of(&dmz_root.join("out/report.csv")),
        sha256_of(&b_root.join("report.csv"))
    );
    let workers = plane.attempt_workers(id).await;
    assert!(
        !workers.is_empty() && workers.iter().all(|w| w.starts_with("agent:b/")),
        "{workers:?}"
    );

    // Placed on C: runs on C, never on B.
    std::fs::write(common::local_root(&c_files).join("c.txt"), payload(4096, 2)).unwrap();
    let id = plane.submit("c-files", "c.txt", "c-out").await;
    plane.succeeded(id, Duration::from_secs(60)).await;
    let workers = plane.attempt_workers(id).await;
    assert!(
        !workers.is_empty() && workers.iter().all(|w| w.starts_with("agent:c/")),
        "{workers:?}"
    );
    assert!(common::local_root(&c_out).join("out/c.txt").exists());

    // B killed with SIGKILL mid-job: the job runs again when B returns, the file intact.
    let slow = placed(endpoint(Kind::Local, "b-slow"), &["b"], &[]);
    let mut slow = slow;
    slow.bandwidth = Some("4M".parse().unwrap());
    plane.put_endpoint(&slow).await;
    let slow_root = common::local_root(&slow);
    std::fs::write(slow_root.join("big.bin"), payload(24 << 20, 3)).unwrap();
    let id = plane.submit("b-slow", "big.bin", "dmz-sftp").await;
    let start = Instant::now();
    loop {
        let job = plane.job(id).await;
        if job["progress"]["bytes"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent_b.kill9();
    assert_ne!(
        plane.job(id).await["state"],
        "succeeded",
        "the job must still be running when B dies"
    );
    let agent_b = start_agent(&plane, Host::B, "b", None, dir);
    plane.succeeded(id, Duration::from_secs(120)).await;
    assert_eq!(
        sha256_of(&dmz_root.join("out/big.bin")),
        sha256_of(&slow_root.join("big.bin"))
    );
    let workers = plane.attempt_workers(id).await;
    assert!(
        workers.len() >= 2 && workers.iter().all(|w| w.starts_with("agent:b/")),
        "{workers:?}"
    );

    // A cancel reaches the running transfer on B through its next report (about a second),
    // not through the lease's expiry (5 s).
    std::fs::write(slow_root.join("big2.bin"), payload(24 << 20, 4)).unwrap();
    let id = plane.submit("b-slow", "big2.bin", "dmz-sftp").await;
    let start = Instant::now();
    while plane.job(id).await["progress"]["bytes"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, answer) = plane
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            None,
        )
        .await;
    assert!(status < 300, "{answer}");
    let asked = Instant::now();
    loop {
        let job = plane.job(id).await;
        if job["state"] == "cancelled" {
            break;
        }
        assert!(job["state"] == "leased", "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = asked.elapsed();
    eprintln!("cancel to cancelled on B: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "the cancel waited for the lease: {took:?}"
    );
    assert!(
        !dmz_root.join("out/big2.bin").exists(),
        "a cancelled copy left its file"
    );

    // The first replica killed with SIGKILL: the agents carry on through the second.
    plane.kill(0);
    let killed = Instant::now();
    let mut ids = Vec::new();
    for n in 0..10 {
        std::fs::write(b_root.join(format!("f{n}.txt")), payload(8192, 10 + n)).unwrap();
        ids.push(
            plane
                .submit("b-files", &format!("f{n}.txt"), "dmz-sftp")
                .await,
        );
    }
    for (n, id) in ids.iter().enumerate() {
        let job = plane.succeeded(*id, Duration::from_secs(60)).await;
        assert_eq!(job["attempts"], 1, "job {id} ran more than once: {job}");
        let name = format!("f{n}.txt");
        assert_eq!(
            sha256_of(&dmz_root.join("out").join(&name)),
            sha256_of(&b_root.join(&name))
        );
    }
    eprintln!(
        "10 jobs through the second replica after the first was killed: {:?}",
        killed.elapsed()
    );

    // A revoked agent gets nothing more: its calls are refused, and nothing can be placed on
    // it alone.
    let (status, answer) = plane
        .call(reqwest::Method::DELETE, "/api/v1/agents/c", None)
        .await;
    assert_eq!(status, 204, "{answer}");
    plane.until_agent("c", "revoked").await;
    let (status, answer) = plane
        .call(
            reqwest::Method::POST,
            "/api/v1/jobs",
            Some(common::server::file_request("c-files", "c.txt", "c-out", 1)),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let start = Instant::now();
    while !agent_c.log().contains("credential refused") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "agent C was not refused: {}",
            agent_c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((agent_b, agent_c, sshd));
    for finished in [dir.to_path_buf(), dmz_root] {
        let _ = std::fs::remove_dir_all(finished);
    }
}
