//! Builds librclone.so from our Go shim (go/) when Go is present, caching it by the hash
//! of the shim's sources, and records its path for the run-time loader. Setting
//! FILE_ORBIT_LIBRCLONE at build time skips the Go build and records that path instead.

use sha2::{Digest, Sha256};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM_SOURCES: [&str; 4] = ["go/main.go", "go/bwlimit.go", "go/go.mod", "go/go.sum"];

fn main() {
    println!("cargo:rerun-if-env-changed=FILE_ORBIT_LIBRCLONE");
    println!("cargo:rerun-if-env-changed=FILE_ORBIT_LIBRCLONE_CACHE");
    println!("cargo:rerun-if-env-changed=GO");
    for source in SHIM_SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rclone_version = pinned_rclone_version(&manifest_dir);
    println!("cargo:rustc-env=FILE_ORBIT_RCLONE_VERSION={rclone_version}");

    let built = match env::var("FILE_ORBIT_LIBRCLONE") {
        Ok(prebuilt) if !prebuilt.is_empty() => Some(PathBuf::from(prebuilt)),
        _ => build_shim(&manifest_dir, &rclone_version),
    };
    let built = built.map(|p| p.display().to_string()).unwrap_or_default();
    println!("cargo:rustc-env=FILE_ORBIT_LIBRCLONE_BUILT={built}");
}

/// The rclone version pinned in go.mod; it must match the crate's build metadata.
fn pinned_rclone_version(manifest_dir: &Path) -> String {
    let go_mod = fs::read_to_string(manifest_dir.join("go/go.mod")).expect("read go/go.mod");
    let version = go_mod
        .lines()
        .map(|line| line.trim().trim_start_matches("require").trim_start())
        .find_map(|line| line.strip_prefix("github.com/rclone/rclone "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("go/go.mod requires github.com/rclone/rclone")
        .to_string();
    let metadata = env::var("CARGO_PKG_VERSION").expect("set by cargo");
    assert!(
        metadata.ends_with(&format!("+rclone-{version}")),
        "librclone-sys version {metadata} must end in +rclone-{version} (the version go/go.mod pins)"
    );
    version
}

/// Builds the shim into a cache keyed by its sources; None (with a warning) without Go.
fn build_shim(manifest_dir: &Path, rclone_version: &str) -> Option<PathBuf> {
    let go = env::var("GO").unwrap_or_else(|_| "go".to_string());
    if Command::new(&go).arg("version").output().is_err() {
        println!(
            "cargo:warning=Go not found ({go}): librclone.so was not built; \
             set FILE_ORBIT_LIBRCLONE to a prebuilt librclone.so at run time"
        );
        return None;
    }

    let mut hasher = Sha256::new();
    hasher.update(rclone_version);
    for source in SHIM_SOURCES {
        hasher.update(fs::read(manifest_dir.join(source)).expect("read shim source"));
    }
    let key: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_root().join(key);
    let library = dir.join("librclone.so");
    if library.is_file() {
        return Some(library);
    }

    fs::create_dir_all(&dir).expect("create librclone cache dir");
    // Build to a private name, then rename: parallel builds never see half a library.
    let partial = dir.join(format!("librclone.{}.so.partial", std::process::id()));
    let output = Command::new(&go)
        .current_dir(manifest_dir.join("go"))
        .env("CGO_ENABLED", "1")
        .args(["build", "-buildmode=c-shared", "-trimpath", "-mod=readonly"])
        .arg(format!(
            "-ldflags=-s -X github.com/rclone/rclone/fs.Version={rclone_version}"
        ))
        .arg("-o")
        .arg(&partial)
        .arg(".")
        .output()
        .expect("run go build");
    assert!(
        output.status.success(),
        "go build of librclone failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::rename(&partial, &library).expect("move librclone.so into the cache");
    let _ = fs::remove_file(partial.with_extension("h"));
    Some(library)
}

/// `FILE_ORBIT_LIBRCLONE_CACHE`, else `<target dir>/librclone` (outlives `cargo clean -p`).
fn cache_root() -> PathBuf {
    if let Ok(dir) = env::var("FILE_ORBIT_LIBRCLONE_CACHE") {
        return PathBuf::from(dir);
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("librclone")
}
