//! The bounds on every number a caller can put into a job or template (parallelism,
//! priority, retries, chain length), on the number of stored sources, and on how often a job may lose its worker, so that no
//! single request or stored job can exhaust a process or stall the queue. Configurable;
//! checked at submission (a whole request: `queue/checks.rs`) and again before a stored
//! job runs (its spec: `check_spec`).

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::transfer::{TransferSpec, default_parallelism};
use serde::{Deserialize, Serialize};

/// Upper bounds for jobs and templates; the defaults suit a node with a few cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The most files one transfer moves at once (rclone `Transfers`; checkers are twice it).
    pub max_parallelism: u32,
    /// The largest priority, up or down (`-max_priority..=max_priority`).
    pub max_priority: i64,
    /// The most attempts a retry policy may ask for.
    pub max_attempts: u32,
    /// The longest delay between two attempts, in milliseconds.
    pub max_retry_delay_ms: u64,
    /// The most next hops one chain may have.
    pub max_next_hops: usize,
    /// A job whose worker is lost (crashed, killed, cut off) this many times is dead:
    /// it may be what kills its workers.
    pub max_lost_attempts: u32,
    /// The most stored event sources (each runs on some node: a task, a queue poller or an
    /// inotify watch).
    pub max_sources: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parallelism: 64,
            max_priority: 1_000_000,
            max_attempts: 100,
            max_retry_delay_ms: 24 * 3600 * 1000,
            max_next_hops: 32,
            max_lost_attempts: 3,
            max_sources: 256,
        }
    }
}

pub(super) fn invalid(field: &str, why: String) -> Error {
    Error::invalid_field("job request", field, why)
}

impl Limits {
    /// Checks the limits themselves (from a config file); errors name the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("limits.max_parallelism", self.max_parallelism as u64),
            ("limits.max_attempts", self.max_attempts as u64),
            ("limits.max_lost_attempts", self.max_lost_attempts as u64),
            ("limits.max_sources", self.max_sources as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(invalid(field, "must be at least 1".into()));
            }
        }
        if self.max_priority < 0 {
            return Err(invalid(
                "limits.max_priority",
                "must not be negative".into(),
            ));
        }
        Ok(())
    }

    /// Checks `spec`'s numbers; `at` prefixes the field names (`spec`, `next_hops[2]`).
    pub fn check_spec(&self, spec: &TransferSpec, at: &str) -> Result<()> {
        if let Some(parallelism) = spec.parallelism {
            if parallelism > self.max_parallelism {
                return Err(invalid(
                    &format!("{at}.parallelism"),
                    format!(
                        "{parallelism} is above the maximum of {} (limits.max_parallelism)",
                        self.max_parallelism
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `spec` with `max_parallelism` when it leaves parallelism open and the backends'
    /// default between `source` and `destination` is above it; None when it runs as it is.
    pub fn bound_default_parallelism(
        &self,
        spec: &TransferSpec,
        source: &Endpoint,
        destination: &Endpoint,
    ) -> Option<TransferSpec> {
        let default = default_parallelism(source, destination)?;
        (spec.parallelism.is_none() && default > self.max_parallelism).then(|| TransferSpec {
            parallelism: Some(self.max_parallelism),
            ..spec.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{EndpointConfig, LocalConfig, SmbConfig};
    use crate::secret::Secret;

    #[test]
    fn an_open_parallelism_gets_the_default_only_up_to_the_limit() {
        let local = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "disk".into(),
            config: EndpointConfig::Local(LocalConfig {
                root: "/srv".into(),
            }),
        };
        let smb = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "share".into(),
            config: EndpointConfig::Smb(
                SmbConfig::from_unc("//files/data", "u", Secret::new("p")).unwrap(),
            ),
        };
        let spec = TransferSpec::tree("disk", "", "share", "x".parse().unwrap());
        let low = Limits {
            max_parallelism: 8,
            ..Limits::default()
        };
        let bounded = low.bound_default_parallelism(&spec, &local, &smb).unwrap();
        assert_eq!(bounded.parallelism, Some(8));
        assert!(
            Limits::default()
                .bound_default_parallelism(&spec, &local, &smb)
                .is_none()
        );
        assert!(
            low.bound_default_parallelism(&spec, &local, &local)
                .is_none(),
            "4 < 8"
        );
        let set = TransferSpec {
            parallelism: Some(2),
            ..spec
        };
        assert!(low.bound_default_parallelism(&set, &local, &smb).is_none());
    }
}
