//! File Orbit's engine as a library. Today: the in-process rclone client (`rclone`) and the
//! error type every layer shares (`error`). Endpoints, transfers and the engine grow here.

pub mod error;
pub mod rclone;

pub use error::{Error, ErrorKind, Result};
