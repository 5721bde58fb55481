//! For the benches that drive the REST server: the store's master key, numeric env
//! settings and the HTTP client.

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
