//! For the benches that drive the REST server: the store's master key, numeric env
//! settings, the HTTP client and a server without workers or rate limits.

use file_orbit::engine::Orbit;
use file_orbit::server::{RateLimit, Role, Server, ServerConfig, generate_api_key};
use std::time::Duration;

pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `$name` as a number, `default` when unset.
pub fn env_num(name: &str, default: usize) -> usize {
    super::jobs::env_or(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a number"))
}

/// An HTTP client that reads error statuses as answers and gives up after two minutes.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// A server over `orbit` on a free loopback port, with no workers and no rate limit, and
/// one operator key: (the server, its base URL, the `Authorization` header value).
pub async fn start_server(orbit: &Orbit) -> (Server, String, String) {
    start_server_as(orbit, Role::Operator).await
}

/// As `start_server`, with one key of `role` (an admin key creates agents).
pub async fn start_server_as(orbit: &Orbit, role: Role) -> (Server, String, String) {
    let (key, entry) = generate_api_key("bench", role);
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        workers: 0,
        rate_limit: RateLimit {
            per_second: 1e9,
            burst: u32::MAX,
        },
        api_keys: vec![entry],
        ..ServerConfig::default()
    };
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let auth = format!("Bearer {}", key.expose());
    (server, base, auth)
}
