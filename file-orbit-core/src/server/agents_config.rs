//! The server's `[agents]` section: how long an enrolment token stays usable and how long
//! an agent's lease request may wait.

use serde::{Deserialize, Serialize};

/// Agents: how long an enrolment token stays usable, how long a lease request may wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Seconds an enrolment token stays usable (60 to 2,592,000 = 30 days; default a day).
    pub enrolment_ttl_secs: u64,
    /// The longest an agent's lease request waits for work (1 to 60 s; default 20); the
    /// agent protocol's routes get this on top of `request_timeout_secs`.
    pub lease_wait_max_secs: u64,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            enrolment_ttl_secs: 24 * 3600,
            lease_wait_max_secs: 20,
        }
    }
}
