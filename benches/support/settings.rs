//! The benches' settings from the environment: a value or its default, a list.
#![allow(dead_code)] // each bench uses a different part

/// `name` parsed as `T`, or `default` when unset; a value that does not parse stops the bench.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not valid")),
        Err(_) => default,
    }
}

/// `name` (or `default`) split at commas, blanks dropped.
pub fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
