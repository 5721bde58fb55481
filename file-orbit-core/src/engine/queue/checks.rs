//! What a job request may ask for: its priority, retry policy, chain length and every
//! spec's numbers against the engine's `Limits`, and each spec's own validation; errors
//! name the field (`spec.parallelism`, `next_hops[1].filters.include[0]`, `priority`).

use super::{JobRequest, RetryPolicy};
use crate::engine::Limits;
use crate::engine::limits::invalid;
use crate::error::Result;

impl Limits {
    /// Checks a priority and a retry policy; errors name `priority` and `retry.*`.
    pub fn check_priority_and_retry(&self, priority: i64, retry: &RetryPolicy) -> Result<()> {
        if priority.unsigned_abs() > self.max_priority.unsigned_abs() {
            return Err(invalid(
                "priority",
                format!(
                    "{priority} is outside -{max}..={max} (limits.max_priority)",
                    max = self.max_priority
                ),
            ));
        }
        if retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1".into()));
        }
        if retry.max_attempts > self.max_attempts {
            return Err(invalid(
                "retry.max_attempts",
                format!(
                    "{} is above the maximum of {} (limits.max_attempts)",
                    retry.max_attempts, self.max_attempts
                ),
            ));
        }
        for (field, delay) in [
            ("retry.base_delay_ms", retry.base_delay_ms),
            ("retry.max_delay_ms", retry.max_delay_ms),
        ] {
            if delay > self.max_retry_delay_ms {
                return Err(invalid(
                    field,
                    format!(
                        "{delay} is above the maximum of {} (limits.max_retry_delay_ms)",
                        self.max_retry_delay_ms
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every number of `request` and the shape of its specs; errors name the field
    /// (`spec.parallelism`, `next_hops[1].filters.include[0]`, `priority`).
    pub fn check_request(&self, request: &JobRequest) -> Result<()> {
        self.check_priority_and_retry(request.priority, &request.retry)?;
        if request.next_hops.len() > self.max_next_hops {
            return Err(invalid(
                "next_hops",
                format!(
                    "{} hops is above the maximum of {} (limits.max_next_hops)",
                    request.next_hops.len(),
                    self.max_next_hops
                ),
            ));
        }
        for (at, spec) in request.named_specs() {
            spec.validate().map_err(|err| err.within(&at))?;
            self.check_spec(spec, &at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::path_template::PathTemplate;
    use crate::transfer::TransferSpec;

    fn request() -> JobRequest {
        let spec = TransferSpec::tree("a", "in", "b", PathTemplate::parse("out").unwrap());
        JobRequest::new(spec)
    }

    fn field_of(err: Error) -> String {
        err.field.unwrap_or_default()
    }

    #[test]
    fn numbers_above_the_limits_are_refused_naming_the_field() {
        let limits = Limits::default();
        let mut huge = request();
        huge.spec.parallelism = Some(50_000_000);
        assert_eq!(
            field_of(limits.check_request(&huge).unwrap_err()),
            "spec.parallelism"
        );
        let mut hop = request();
        hop.next_hops.push(huge.spec.clone());
        assert_eq!(
            field_of(limits.check_request(&hop).unwrap_err()),
            "next_hops[0].parallelism"
        );
        for priority in [i64::MAX, i64::MIN, 1_000_001] {
            let mut urgent = request();
            urgent.priority = priority;
            assert_eq!(
                field_of(limits.check_request(&urgent).unwrap_err()),
                "priority"
            );
        }
        let mut patient = request();
        patient.retry.max_attempts = u32::MAX;
        assert_eq!(
            field_of(limits.check_request(&patient).unwrap_err()),
            "retry.max_attempts"
        );
        patient.retry = RetryPolicy {
            max_delay_ms: u64::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(
            field_of(limits.check_request(&patient).unwrap_err()),
            "retry.max_delay_ms"
        );
        let mut long = request();
        long.next_hops = vec![long.spec.clone(); 33];
        assert_eq!(
            field_of(limits.check_request(&long).unwrap_err()),
            "next_hops"
        );
        let mut fine = request();
        fine.spec.parallelism = Some(64);
        fine.priority = -1_000_000;
        limits.check_request(&fine).unwrap();
    }

    #[test]
    fn a_spec_error_is_named_under_the_spec_or_hop_it_is_in() {
        let limits = Limits::default();
        let mut zero = request();
        zero.spec.parallelism = Some(0);
        let err = limits.check_request(&zero).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.parallelism"));
        assert_eq!(
            err.to_string(),
            "transfer spec: spec.parallelism: must be at least 1"
        );
        let mut filtered = request();
        let mut hop = filtered.spec.clone();
        hop.filters.include = vec!["*.csv".into(), "[abc".into()];
        filtered.next_hops = vec![filtered.spec.clone(), hop];
        assert_eq!(
            field_of(limits.check_request(&filtered).unwrap_err()),
            "next_hops[1].filters.include[1]"
        );
    }

    #[test]
    fn limits_are_configurable() {
        let limits = Limits {
            max_parallelism: 1000,
            ..Limits::default()
        };
        let mut wide = request();
        wide.spec.parallelism = Some(1000);
        limits.check_request(&wide).unwrap();
        assert!(
            Limits {
                max_parallelism: 0,
                ..Limits::default()
            }
            .validate()
            .is_err()
        );
    }
}
