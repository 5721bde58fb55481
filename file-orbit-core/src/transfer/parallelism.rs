//! The default parallelism of a transfer whose spec leaves it open, per backend; it must
//! not override a parallelism the spec sets.

use crate::endpoint::{Endpoint, EndpointConfig};

/// Files transferred at once when the spec leaves it open and either side is remote: 32
/// (checkers twice it), or rclone's default (4) between two local endpoints. rclone's
/// defaults (4 transfers, 8 checkers) pay a round trip per file and per check four and
/// eight at a time; measured with 20 ms of added round trip (`benches/latency.rs`), a
/// tree of small files to S3 and SMB takes several times less with 32 at once, and to
/// SFTP 32 beat 16 (its transfers into one directory queue inside rclone, so only more
/// directories in flight help). Each SFTP transfer holds an SSH connection: a partner
/// server that caps sessions per user needs a lower `parallelism` on the spec.
const REMOTE_PARALLELISM: u32 = 32;

/// The parallelism of a spec between these endpoints that leaves it open.
pub fn default_for(source: &Endpoint, destination: &Endpoint) -> Option<u32> {
    let local = |endpoint: &Endpoint| matches!(endpoint.config, EndpointConfig::Local(_));
    (!local(source) || !local(destination)).then_some(REMOTE_PARALLELISM)
}
