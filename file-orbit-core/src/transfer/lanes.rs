//! Lanes: separate rclone remotes for the concurrent one-file transfers of one SFTP
//! endpoint, so that they do not wait for each other inside rclone. It owns which lanes are
//! taken; it must not open connections itself (rclone does, per lane, on first use).
//!
//! rclone's SFTP backend (v1.76, `backend/sftp` `mkdir`) holds a lock per remote and
//! directory around a stat round trip before every upload and again before the rename of
//! the upload's partial name to the final one. Through one remote, one-file transfers into
//! the same directory therefore run one round trip at a time, twice per file: ~25 files/s
//! at 20 ms whatever the parallelism. Each running transfer takes the lowest free lane of
//! its endpoint; a lane is a remote of its own (the endpoint's config plus a `description`
//! naming the lane, which changes rclone's cache key and nothing else), kept warm in
//! rclone's cache with its own connection. With one transfer per lane at a time, an
//! endpoint never holds more SSH connections than it ran transfers at once.

use crate::rclone::methods::Fs;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// A remote: the SHA-256 of its JSON config (which holds its obscured password).
type RemoteKey = [u8; 32];

/// Remote → the lanes its running transfers hold.
static TAKEN: Mutex<BTreeMap<RemoteKey, BTreeSet<usize>>> = Mutex::new(BTreeMap::new());

fn taken() -> MutexGuard<'static, BTreeMap<RemoteKey, BTreeSet<usize>>> {
    TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A lane held by one running transfer; dropping it frees the lane.
pub(super) struct Lane {
    remote: RemoteKey,
    index: usize,
}

impl Lane {
    /// The lowest free lane of `fs` (a one-file transfer's remote), or None when its backend
    /// needs none.
    pub(super) fn take(fs: &Fs) -> Option<Lane> {
        let Fs::Config(config) = fs else {
            return None;
        };
        if config.get("type").and_then(|t| t.as_str()) != Some("sftp") {
            return None;
        }
        use sha2::Digest;
        let config = serde_json::Value::Object(config.clone()).to_string();
        let remote: RemoteKey = sha2::Sha256::digest(config.as_bytes()).into();
        let mut taken = taken();
        let lanes = taken.entry(remote).or_default();
        let index = (0..).find(|lane| !lanes.contains(lane)).unwrap_or(0);
        lanes.insert(index);
        Some(Lane { remote, index })
    }

    /// `fs` on this lane: lane 0 is the endpoint's own remote.
    pub(super) fn apply(&self, fs: &mut Fs) {
        if let (Fs::Config(config), 1..) = (fs, self.index) {
            config.insert(
                "description".into(),
                format!("file-orbit lane {}", self.index).into(),
            );
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut taken = taken();
        if let Some(held) = taken.get_mut(&self.remote) {
            held.remove(&self.index);
            if held.is_empty() {
                taken.remove(&self.remote);
            }
        }
    }
}
