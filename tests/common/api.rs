//! A small blocking HTTP client for the server tests (run off the runtime's workers):
//! JSON requests with a bearer key, live progress followed to its end, and every body
//! kept (per client) for the canary check.

use file_orbit::Secret;
use file_orbit::server::{RateLimit, Role, ServerConfig, generate_api_key};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server at one address (clones share the agent and the bodies kept).
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
    /// Every response body (and live-progress event) this client received.
    bodies: Arc<Mutex<Vec<String>>>,
}

/// A response: status, body, and `Retry-After` if any.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// The API error of this reply (`{"kind", "message", "field"?}`), after checking the
    /// reply has `status`.
    pub fn error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.json()["error"].clone()
    }
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Api {
            base: format!("http://{addr}"),
            agent,
            bodies: Arc::default(),
        }
    }

    /// The server's base URL (`http://127.0.0.1:port`), for a request that reads headers.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every body this client received so far (checked for the canary).
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// One request (blocking; run it off the runtime's workers).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        self.try_call(method, path, key, body)
            .await
            .unwrap_or_else(|err| panic!("{method} {url}: {err}"))
    }

    /// One request; Err when the transport failed.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let agent = self.agent.clone();
        let method = method.to_string();
        let key = key.map(str::to_string);
        let body = body.map(str::to_string);
        let bodies = self.bodies.clone();
        tokio::task::spawn_blocking(move || {
            let auth = key.map(|k| format!("Bearer {k}"));
            let result = match method.as_str() {
                "GET" | "DELETE" => {
                    let mut req = if method == "GET" {
                        agent.get(&url)
                    } else {
                        agent.delete(&url)
                    };
                    if let Some(auth) = &auth {
                        req = req.header("Authorization", auth);
                    }
                    req.call()
                }
                _ => {
                    let mut req = match method.as_str() {
                        "POST" => agent.post(&url),
                        "PUT" => agent.put(&url),
                        other => panic!("method {other}"),
                    };
                    if let Some(auth) = &auth {
                        req = req.header("Authorization", auth);
                    }
                    match body {
                        Some(body) => req.content_type("application/json").send(body.as_str()),
                        None => req.send_empty(),
                    }
                }
            };
            let mut response = result.map_err(|err| err.to_string())?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .unwrap();
            bodies.lock().unwrap().push(body.clone());
            Ok(Reply {
                status,
                body,
                retry_after,
            })
        })
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call("GET", path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.call("POST", path, Some(key), body.as_deref()).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(key), Some(&body.to_string()))
            .await
    }

    /// Follows `GET /api/v1/jobs/{id}/events` to its `end` event; returns every
    /// (event, data) pair.
    pub async fn follow(&self, id: i64, key: &str) -> Vec<(String, Value)> {
        let url = format!("{}/api/v1/jobs/{id}/events", self.base);
        let agent = self.agent.clone();
        let auth = format!("Bearer {key}");
        let bodies = self.bodies.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let response = agent
                .get(&url)
                .header("Authorization", &auth)
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let content_type = response
                .headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                content_type.starts_with("text/event-stream"),
                "{content_type}"
            );
            let reader = std::io::BufReader::new(response.into_body().into_reader());
            let mut events = Vec::new();
            let mut name = String::new();
            for line in reader.lines() {
                let line = line.unwrap();
                if let Some(event) = line.strip_prefix("event: ") {
                    name = event.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    bodies.lock().unwrap().push(data.to_string());
                    events.push((name.clone(), serde_json::from_str(data).unwrap()));
                    if name == "end" {
                        break;
                    }
                }
            }
            events
        })
        .await
        .unwrap()
    }
}

/// Keys of each role (`config_with_keys` makes them with the config holding their hashes).
#[derive(Clone)]
pub struct Keys {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

/// A server config on a free loopback port with `workers`, generous rate limits, a small
/// body limit, a JWT secret and one API key per role.
pub fn config_with_keys(workers: usize) -> (ServerConfig, Keys) {
    let (admin, admin_entry) = generate_api_key("admin", Role::Admin);
    let (operator, operator_entry) = generate_api_key("operator", Role::Operator);
    let (viewer, viewer_entry) = generate_api_key("viewer", Role::Viewer);
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        workers,
        shutdown_grace_secs: 30,
        rate_limit: RateLimit {
            per_second: 1000.0,
            burst: 1000,
        },
        // Every test client is on loopback: let them fail authentication freely.
        failed_auth_limit: RateLimit {
            per_second: 1000.0,
            burst: 1000,
        },
        // Small, so a too-large body fits in the socket buffers and the client reads 413.
        max_body_bytes: 64 * 1024,
        jwt_secret: Some(Secret::new("jwt-test-secret")),
        api_keys: vec![admin_entry, operator_entry, viewer_entry],
        ..Default::default()
    };
    let keys = Keys {
        admin: admin.expose().to_string(),
        operator: operator.expose().to_string(),
        viewer: viewer.expose().to_string(),
    };
    (config, keys)
}

/// Polls `GET /api/v1/jobs/{id}` (bounded: a minute) until `done` holds for the job;
/// `what` names the wait in the failure.
pub async fn job_until(
    api: &Api,
    key: &str,
    id: i64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = api.get(&format!("/api/v1/jobs/{id}"), key).await.json();
        if done(&job) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} never {what}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls job `id` until it is in state `want` (bounded).
pub async fn wait_state(api: &Api, key: &str, id: i64, want: &str) -> Value {
    job_until(api, key, id, want, |job| job["state"] == want).await
}
