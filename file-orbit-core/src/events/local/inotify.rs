//! The notify (inotify) watcher of a local watch: (re)attaching it to the watched
//! directory, and errors that name the inotify limit (and the sysctl raising it).

use crate::error::{Error, ErrorKind};
use crate::events::lock;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The error for a failed watch, naming the inotify limit when one was hit.
pub(super) fn watch_error(context: &str, root: &Path, err: notify::Error) -> Error {
    let message = match limit_hint(&err) {
        Some(hint) => format!("watching {}: {hint}", root.display()),
        None => format!("watching {}: {err}", root.display()),
    };
    Error::new(ErrorKind::Remote, context, message).with_source(err)
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What to tell an operator when `err` is an inotify limit.
pub(super) fn limit_hint(err: &notify::Error) -> Option<String> {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => Some(format!(
            "the inotify watch limit is reached (fs.inotify.max_user_watches = {}; one watch \
             per directory, shared by all of this user's processes): raise it with \
             `sysctl -w fs.inotify.max_user_watches=524288` and persist it in \
             /etc/sysctl.d/90-inotify.conf",
            sysctl("max_user_watches")
        )),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc_emfile()) => Some(format!(
            "too many inotify instances or open files (fs.inotify.max_user_instances = {}): \
             raise it with `sysctl -w fs.inotify.max_user_instances=1024` (persist it in \
             /etc/sysctl.d/90-inotify.conf), or the process's open-files limit (`ulimit -n`)",
            sysctl("max_user_instances")
        )),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc_enospc()) => Some(format!(
            "no space left for inotify watches (fs.inotify.max_user_watches = {}): raise it \
             with `sysctl -w fs.inotify.max_user_watches=524288` and persist it in \
             /etc/sysctl.d/90-inotify.conf",
            sysctl("max_user_watches")
        )),
        _ => None,
    }
}

/// EMFILE and ENOSPC on Linux (and the other Unixes notify supports).
const fn libc_emfile() -> i32 {
    24
}

const fn libc_enospc() -> i32 {
    28
}

pub(super) type SharedWatcher = Arc<Mutex<Option<RecommendedWatcher>>>;

/// (Re)watches `root` recursively; returns its identity (device, inode).
pub(super) fn attach(watcher: &SharedWatcher, root: &Path) -> notify::Result<(u64, u64)> {
    let mut guard = lock(watcher);
    let Some(watcher) = guard.as_mut() else {
        return Err(notify::Error::generic("the watch is shutting down"));
    };
    // A stale watch (a directory moved away keeps its inode watch) would report events
    // under the old path: drop it first.
    let _ = watcher.unwatch(root);
    let id = dir_id(root).map_err(notify::Error::io)?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(id)
}

pub(super) fn dir_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_limits_name_the_sysctl() {
        let watches = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        );
        assert!(
            watches.message.contains("fs.inotify.max_user_watches")
                && watches.message.contains("sysctl -w"),
            "{watches}"
        );
        let instances = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::io(std::io::Error::from_raw_os_error(libc_emfile())),
        );
        assert!(
            instances.message.contains("fs.inotify.max_user_instances"),
            "{instances}"
        );
        let enospc = watch_error(
            "ctx",
            Path::new("/x"),
            notify::Error::io(std::io::Error::from_raw_os_error(libc_enospc())),
        );
        assert!(enospc.message.contains("max_user_watches"), "{enospc}");
    }
}
