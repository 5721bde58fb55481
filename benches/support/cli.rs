//! For the benches that run the rclone CLI beside File Orbit: the connection string of
//! the very remote rclone builds in-process, and what a command prints first.
#![allow(dead_code)] // each bench uses a different part

use file_orbit::rclone::methods::Fs;
use serde_json::Value;
use std::process::Command;

/// rclone's connection string for a JSON-object remote, built exactly as rclone's rc does
/// in-process (`fs/rc/cache.go`: sorted keys, values in single quotes with `'` doubled), so
/// the CLI opens the very same remote.
pub fn connection_string(fs: &Fs) -> String {
    let Fs::Config(map) = fs else {
        panic!("expected a JSON-object remote, got {fs:?}")
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut params: Vec<(&String, String)> = map
        .iter()
        // `orbit_endpoint` names the bandwidth limiter of our shim; the CLI has none.
        .filter(|(k, _)| !["type", "_root", "orbit_endpoint"].contains(&k.as_str()))
        .map(|(k, v)| (k, text(v)))
        .collect();
    params.sort();
    let mut out = format!(":{}", text(&map["type"]));
    for (key, value) in params {
        out.push_str(&format!(",{key}='{}'", value.replace('\'', "''")));
    }
    out.push(':');
    out.push_str(&text(&map["_root"]));
    out
}

/// The first line `program arg` prints (its version, say), or why it could not run.
pub fn first_line(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|err| format!("cannot run {program}: {err}"))
}
