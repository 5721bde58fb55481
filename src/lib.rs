//! File Orbit: managed file transfer with rclone embedded in-process. This facade only
//! re-exports `file_orbit_core`; the README below is its documentation, and its Rust
//! examples compile as doc tests.
#![doc = include_str!("../README.md")]
pub use file_orbit_core::*;
