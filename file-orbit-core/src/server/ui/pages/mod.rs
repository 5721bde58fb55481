//! The console's pages, one file per navigation section: each reads through the
//! caller's `Orbit` and renders its template.

pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod dashboard;
pub(crate) mod endpoints;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod transfer;
