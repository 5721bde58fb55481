//! File Orbit's engine as a library: the in-process rclone client (`rclone`), typed
//! endpoints (`endpoint`), transfers (`transfer`) with destination path templates
//! (`path_template`), secrets that never print (`secret`) and the shared `error` type.

#[cfg(feature = "worker")]
pub mod agent;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod events;
pub mod notify;
pub mod path_template;
pub mod rclone;
pub mod secret;
pub mod serde_errors;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "service")]
pub mod service;
pub mod transfer;
#[cfg(feature = "worker")]
pub mod worker;

pub use error::{Error, ErrorKind, Result};
pub use secret::Secret;
