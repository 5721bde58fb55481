//! The `TestServer` fixture of the server tests: a store (a fresh SQLite file in a temp
//! dir, or a given URL such as a fresh PostgreSQL database), the `Orbit` on it, a server
//! on a free loopback port with one API key per role, and an `Api` client on its base URL;
//! `shutdown` stops it cleanly. Plus the endpoints, request bodies and event the tests
//! share, and the canary password that must never come back.

use super::api::{Api, Keys, Reply, config_with_keys, wait_state};
use super::{Kind, endpoint, local_root, orbit_options, sftp_config, sqlite_url};
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::engine::{JobRequest, Orbit, OrbitOptions, RetryPolicy};
use file_orbit::events::IncomingEvent;
use file_orbit::path_template::PathTemplate;
use file_orbit::server::{Server, ServerConfig};
use file_orbit::service::logs::{self, LogConfig};
use file_orbit::transfer::TransferSpec;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a `TestServer` starts with; edit the public fields, then `start`.
pub struct Setup {
    /// The server's configuration: `config_with_keys(workers)` to begin with.
    pub config: ServerConfig,
    pub keys: Keys,
    /// How the orbit is opened (`orbit_options(store_url)` to begin with), unless `orbit`
    /// opened it already.
    pub options: OrbitOptions,
    orbit: Option<Orbit>,
    store_dir: Option<tempfile::TempDir>,
}

impl Setup {
    /// The store URL the server will use.
    pub fn store_url(&self) -> &str {
        &self.options.store_url
    }

    /// The orbit the server will run on, opened now (to put endpoints or rows in the
    /// store before the server starts).
    pub async fn orbit(&mut self) -> Orbit {
        if self.orbit.is_none() {
            self.orbit = Some(Orbit::open(self.options.clone()).await.unwrap());
        }
        self.orbit.clone().unwrap()
    }

    /// Logs of this test process go (at debug for the core) to one directory the server's
    /// `GET /api/v1/logs` reads; the first call in a process sets logging up.
    pub fn log_to_file(mut self) -> Setup {
        self.config.log = LogConfig {
            dir: Some(process_log_dir().to_path_buf()),
            level: LOG_LEVEL.into(),
            ..LogConfig::default()
        };
        self
    }

    pub async fn start(mut self) -> TestServer {
        let orbit = self.orbit().await;
        let server = Server::start(orbit.clone(), self.config.clone())
            .await
            .unwrap();
        let api = Api::new(server.local_addr());
        TestServer {
            orbit,
            api,
            keys: self.keys,
            config: self.config,
            store_url: self.options.store_url,
            server: Some(server),
            _store_dir: self.store_dir,
        }
    }
}

const LOG_LEVEL: &str = "info,file_orbit_core=debug";

/// This process's log directory, with logging set up into it on the first call.
pub fn process_log_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = LogConfig {
            dir: Some(dir.clone()),
            level: LOG_LEVEL.into(),
            ..LogConfig::default()
        };
        logs::init("server", &config).unwrap();
        dir
    })
}

/// A running server with its store, keys and client.
pub struct TestServer {
    pub orbit: Orbit,
    pub api: Api,
    pub keys: Keys,
    /// The configuration it was started with (keys' hashes included).
    pub config: ServerConfig,
    pub store_url: String,
    /// None once shut down.
    server: Option<Server>,
    _store_dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A setup on a fresh SQLite store with `workers` in-process workers.
    pub fn setup(workers: usize) -> Setup {
        let (url, dir) = sqlite_url();
        let mut setup = TestServer::setup_on(&url, workers);
        setup.store_dir = Some(dir);
        setup
    }

    /// A setup on the store at `url` (e.g. `postgres_url()`, or a relay in front of it).
    pub fn setup_on(url: &str, workers: usize) -> Setup {
        let (config, keys) = config_with_keys(workers);
        Setup {
            config,
            keys,
            options: orbit_options(url),
            orbit: None,
            store_dir: None,
        }
    }

    /// A server on a fresh SQLite store with `workers` in-process workers.
    pub async fn start(workers: usize) -> TestServer {
        TestServer::setup(workers).start().await
    }

    /// Another node on the same store, with the same configuration and keys, its own orbit.
    pub fn another_node(&self) -> Setup {
        let mut setup = TestServer::setup_on(&self.store_url, self.config.workers);
        setup.config = self.config.clone();
        setup.keys = self.keys.clone();
        setup
    }

    /// Local endpoints `src` and `dst` (fresh directories), stored with `max_concurrent`.
    pub async fn local_pair(&self, max_concurrent: u32) -> (Endpoint, Endpoint) {
        let src = endpoint(Kind::Local, "src");
        let dst = endpoint(Kind::Local, "dst");
        self.orbit.put_endpoint(&src, max_concurrent).await.unwrap();
        self.orbit.put_endpoint(&dst, max_concurrent).await.unwrap();
        (src, dst)
    }

    /// Submits one job request as an operator (201); its id.
    /// `PUT /api/v1/endpoints/{name}` of `endpoint` (with `secret` as its password) as
    /// admin: the answer, whatever its status.
    pub async fn put_endpoint(&self, endpoint: &Endpoint, secret: Option<&str>) -> Reply {
        self.api
            .put(
                &format!("/api/v1/endpoints/{}", endpoint.name),
                &self.keys.admin,
                endpoint_body(endpoint, secret),
            )
            .await
    }

    pub async fn submit(&self, request: Value) -> i64 {
        let reply = self
            .api
            .post("/api/v1/jobs", &self.keys.operator, Some(request))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()["id"].as_i64().unwrap()
    }

    /// Creates agent `name` with `labels` through the admin API (201): its enrolment token.
    pub async fn create_agent(&self, name: &str, labels: &[&str]) -> String {
        let reply = self
            .api
            .post(
                "/api/v1/agents",
                &self.keys.admin,
                Some(json!({"name": name, "labels": labels})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let token = reply.json()["enrolment_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(token.starts_with("foe_"), "{token}");
        token
    }

    /// Stops taking requests and jobs and lets running transfers finish within the
    /// grace period; true when everything finished in time. The store, the orbit and
    /// the keys stay usable.
    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("the server runs").local_addr()
    }

    pub async fn shutdown(&mut self) -> bool {
        let server = self.server.take().expect("the server runs");
        server.shutdown().await
    }
}

/// The JSON body of `PUT /api/v1/endpoints/{name}`: the endpoint with its real secrets
/// (which only ever go in) plus `max_concurrent`.
pub fn endpoint_body(endpoint: &Endpoint, secret: Option<&str>) -> Value {
    let mut body = serde_json::to_value(endpoint).unwrap();
    if let Some(secret) = secret {
        body["auth"]["password"] = json!(secret);
    }
    body["max_concurrent"] = json!(2);
    body
}

/// A verified one-file job `source:path` -> `destination:out/{filename}`, retried up to
/// `max_attempts` with short delays.
pub fn file_request(source: &str, path: &str, destination: &str, max_attempts: u32) -> Value {
    let spec = TransferSpec {
        verify: true,
        ..TransferSpec::file(
            source,
            path,
            destination,
            PathTemplate::parse("out/{filename}").unwrap(),
        )
    };
    let mut request = JobRequest::new(spec);
    request.retry = RetryPolicy {
        max_attempts,
        base_delay_ms: 100,
        max_delay_ms: 200,
    };
    serde_json::to_value(request).unwrap()
}

/// A password that must never appear in a response or a log line.
pub const CANARY: &str = "canary-pw-7Qx9vLr2Zt";

/// The canary endpoint: the real SFTP server with the canary as its (wrong) password.
pub fn canary_endpoint() -> Endpoint {
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "canary".into(),
        config: EndpointConfig::Sftp(sftp_config("")),
    }
}

/// Endpoints through the API: local `src` (holding `a.txt`) and `dst`, the real SFTP
/// server with its password, and the canary; each answered 201.
pub async fn put_four_endpoints(ts: &TestServer) -> (Endpoint, Endpoint) {
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    for ep in [&src, &dst] {
        let reply = ts.put_endpoint(ep, None).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let sftp = endpoint(Kind::Sftp, "sftp");
    let sftp_password = super::env("SFTP_PASSWORD");
    let reply = ts.put_endpoint(&sftp, Some(&sftp_password)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = ts.put_endpoint(&canary_endpoint(), Some(CANARY)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    (src, dst)
}

/// Stores the template `nightly` (src:a.txt -> dst) through the API (200; listed), makes
/// an event from it and waits for its jobs; the event's id.
pub async fn event_from_a_template(ts: &TestServer) -> i64 {
    let (api, keys) = (&ts.api, &ts.keys);
    let template = json!({
        "name": "nightly",
        "matcher": {"source": "src", "path_glob": "*.txt"},
        "spec": file_request("src", "a.txt", "dst", 3)["spec"],
    });
    let reply = api
        .put("/api/v1/templates/nightly", &keys.admin, template)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        api.get("/api/v1/templates", &keys.viewer)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ingested = ts
        .orbit
        .ingest(&IncomingEvent {
            source: "manual".into(),
            dedup_key: None,
            file: None,
            template: Some("nightly".into()),
            payload: json!({"why": "test"}),
        })
        .await
        .unwrap();
    for job in &ingested.record().job_ids {
        wait_state(api, &keys.viewer, *job, "succeeded").await;
    }
    ingested.record().id
}
