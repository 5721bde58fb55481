//! File Orbit: managed file transfer with rclone embedded in-process. This facade only
//! re-exports `file_orbit_core`; see the README for what it does.
pub use file_orbit_core::*;
