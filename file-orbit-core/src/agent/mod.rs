//! Agent mode of the worker service (feature `worker`): a worker on another host that
//! talks to the control plane over HTTP(S) with its own credential, never to the store,
//! and holds no master key. The wire contract is issue #17's `AGENTS.md`.
//! `config` is the `[agent]` section, `client` the HTTP client with failover,
//! `credential` the credential file and enrolment, `protocol` the messages, `runner` the
//! service loop, `slot` one leased job, `cadence` hello, reports and outcomes.

mod cadence;
pub mod client;
pub mod config;
pub mod credential;
#[cfg(test)]
mod job_tests;
pub mod protocol;
mod runner;
mod slot;
#[cfg(test)]
mod tests;

pub use client::{AgentClient, is_credential_refused};
pub use config::{AgentConfig, ENROLMENT_TOKEN_ENV};
pub use runner::run;
