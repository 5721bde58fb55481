//! Raw ABI of librclone (rclone built as a C shared library by our Go shim in `go/`):
//! finding and loading the library once per process. No JSON, no policy: that is
//! `file_orbit_core::rclone`'s job.

#[allow(non_snake_case, unsafe_op_in_unsafe_fn, clippy::all)]
mod bindings;

pub use bindings::{LibRclone, RcloneLogFn, RcloneRPCResult};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The rclone release the shim pins (also in this crate's version build metadata).
pub const RCLONE_VERSION: &str = env!("FILE_ORBIT_RCLONE_VERSION");

/// Environment variable naming the librclone.so to load (and, at build time, to use
/// instead of building one).
pub const LIBRARY_PATH_ENV: &str = "FILE_ORBIT_LIBRCLONE";

/// The name the dynamic linker searches for when no path is known.
pub const SONAME: &str = "librclone.so";

/// Where the build script put librclone.so, if it built one.
pub fn built_library_path() -> Option<&'static Path> {
    let built = env!("FILE_ORBIT_LIBRCLONE_BUILT");
    (!built.is_empty()).then(|| Path::new(built))
}

/// librclone could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "librclone could not be loaded; tried {}. Build it by running cargo with Go \
         installed, or set {LIBRARY_PATH_ENV} to the path of a librclone.so",
        tried.iter().map(|(p, e)| format!("{p} ({e})")).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Each candidate with the reason it failed.
        tried: Vec<(String, String)>,
    },
    #[error(
        "librclone is already loaded from {loaded}; cannot also load {requested} (one Go runtime per process)"
    )]
    AlreadyLoaded { loaded: String, requested: String },
}

/// The loaded library and where it came from.
pub struct Loaded {
    pub library: LibRclone,
    pub path: String,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// Loads librclone once per process and keeps it forever.
///
/// Order: `explicit` → `$FILE_ORBIT_LIBRCLONE` → the path recorded at build → the soname.
/// A path the caller names (explicitly or by the env var) must load: no silent fallback.
/// Later calls return the library already loaded, or `AlreadyLoaded` when they name
/// another path.
pub fn load(explicit: Option<&Path>) -> Result<&'static Loaded, LoadError> {
    let _guard = LOADING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let candidates = candidates(explicit);
    if let Some(loaded) = LOADED.get() {
        return match explicit {
            Some(path) if path.display().to_string() != loaded.path => {
                Err(LoadError::AlreadyLoaded {
                    loaded: loaded.path.clone(),
                    requested: path.display().to_string(),
                })
            }
            _ => Ok(loaded),
        };
    }
    let mut tried = Vec::new();
    for candidate in candidates {
        let path = candidate.display().to_string();
        // SAFETY: loading runs the Go runtime's initialisers; this is the only place
        // the process loads librclone, guarded by LOADING and kept forever in LOADED.
        match unsafe { LibRclone::new(&candidate) } {
            Ok(library) => return Ok(LOADED.get_or_init(|| Loaded { library, path })),
            Err(err) => tried.push((path, err.to_string())),
        }
    }
    Err(LoadError::NotFound { tried })
}

fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    if let Some(path) = std::env::var_os(LIBRARY_PATH_ENV).filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    built_library_path()
        .map(Path::to_path_buf)
        .into_iter()
        .chain([PathBuf::from(SONAME)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_explicit_path_is_named_in_the_error_without_fallback() {
        let missing = Path::new("/nonexistent/dir/librclone.so");
        let Err(err) = load(Some(missing)) else {
            panic!("loaded a library from a path that does not exist");
        };
        let LoadError::NotFound { tried } = &err else {
            panic!("unexpected error: {err}");
        };
        assert_eq!(
            tried.len(),
            1,
            "an explicit path must not fall back: {tried:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/dir/librclone.so"),
            "{message}"
        );
        assert!(message.contains(LIBRARY_PATH_ENV), "{message}");
        assert!(LOADED.get().is_none(), "a failed load must not be kept");
    }

    #[test]
    fn the_build_recorded_a_library_and_the_pinned_version() {
        assert!(RCLONE_VERSION.starts_with("v1.76."), "{RCLONE_VERSION}");
        let built = built_library_path().expect("the build script recorded librclone.so");
        assert!(built.is_file(), "{} is not a file", built.display());
    }
}
