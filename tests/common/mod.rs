//! Shared by the integration tests: endpoints on the real test servers that
//! `scripts/test.sh` starts (their addresses and credentials come from its env file),
//! unique paths, and tree helpers.
#![allow(dead_code)] // each test binary uses a different part

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod console;
pub mod copies;
pub mod hosts;
pub mod latency;
pub mod moto;
#[cfg(feature = "server")]
pub mod process;
pub mod receivers;
pub mod relay;
#[cfg(feature = "server")]
pub mod server;

use file_orbit::Secret;
use file_orbit::endpoint::{
    AwsCredentials, Endpoint, EndpointConfig, HostKeyCheck, LocalConfig, S3Config, SftpAuth,
    SftpConfig, SmbConfig,
};
use file_orbit::rclone::Rclone;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn rclone() -> &'static Rclone {
    Rclone::global().expect("librclone loads")
}

/// A test-server setting; the servers and their env file come from `scripts/test.sh`.
pub fn env(name: &str) -> String {
    let key = format!("FILE_ORBIT_TEST_{name}");
    std::env::var(&key).unwrap_or_else(|_| {
        panic!("{key} is not set: run the tests with scripts/test.sh, which starts the servers")
    })
}

/// Every byte of `text` but letters and digits as `%XX`: a name in a URL path or query.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Sftp,
    Smb,
}

pub const KINDS: [Kind; 4] = [Kind::Local, Kind::S3, Kind::Sftp, Kind::Smb];

/// An endpoint of `kind` whose root is a fresh, unique directory (or prefix).
pub fn endpoint(kind: Kind, name: &str) -> Endpoint {
    let root = unique("fo");
    let config = match kind {
        Kind::Local => {
            let dir = std::env::temp_dir().join(&root);
            std::fs::create_dir_all(&dir).unwrap();
            EndpointConfig::Local(LocalConfig { root: dir })
        }
        Kind::S3 => EndpointConfig::S3(moto_s3("fo-tests", &root)),
        Kind::Sftp => EndpointConfig::Sftp(sftp_config(&root)),
        Kind::Smb => EndpointConfig::Smb(smb_config(&root)),
    };
    let endpoint = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.to_string(),
        config,
    };
    if kind == Kind::S3 {
        ensure_bucket(&endpoint);
    }
    mkdir(&endpoint, "");
    endpoint
}

/// moto's S3 over plain http, with the default provider (`Other`, for an endpoint_url).
pub fn moto_s3(bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        provider: None,
        bucket: bucket.into(),
        prefix: prefix.into(),
        region: Some(env("MOTO_REGION")),
        endpoint_url: Some(env("MOTO_ENDPOINT")),
        credentials: AwsCredentials::new(
            env("MOTO_ACCESS_KEY_ID"),
            Secret::new(env("MOTO_SECRET_ACCESS_KEY")),
        ),
        force_path_style: Some(true),
        storage_class: None,
        server_side_encryption: None,
    }
}

/// Creates `path` (and its parents) inside the endpoint.
pub fn mkdir(endpoint: &Endpoint, path: &str) {
    let fs = endpoint.to_rclone(rclone(), path).unwrap();
    rclone()
        .rpc(
            "operations/mkdir",
            &serde_json::json!({"fs": fs, "remote": ""}),
        )
        .unwrap();
}

/// Creates the endpoint's bucket (idempotent).
pub fn ensure_bucket(endpoint: &Endpoint) {
    let EndpointConfig::S3(s3) = &endpoint.config else {
        return;
    };
    let bucket_only = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: endpoint.name.clone(),
        config: EndpointConfig::S3(S3Config {
            prefix: String::new(),
            ..s3.clone()
        }),
    };
    let fs = bucket_only.to_rclone(rclone(), "").unwrap();
    rclone()
        .rpc(
            "operations/mkdir",
            &serde_json::json!({"fs": fs, "remote": ""}),
        )
        .unwrap();
}

pub fn sftp_config(root: &str) -> SftpConfig {
    SftpConfig {
        host: env("SFTP_HOST"),
        port: env("SFTP_PORT").parse().unwrap(),
        user: env("SFTP_USER"),
        auth: SftpAuth::Password {
            password: Secret::new(env("SFTP_PASSWORD")),
        },
        host_key: HostKeyCheck::KnownHostsFile {
            path: PathBuf::from(env("SFTP_KNOWN_HOSTS")),
        },
        root: root.into(),
        server_hashes: false,
    }
}

pub fn smb_config(root: &str) -> SmbConfig {
    SmbConfig {
        host: env("SMB_HOST"),
        port: env("SMB_PORT").parse().unwrap(),
        user: env("SMB_USER"),
        password: Secret::new(env("SMB_PASSWORD")),
        domain: "WORKGROUP".into(),
        share: env("SMB_SHARE"),
        root: root.into(),
    }
}

/// Relative path → bytes of every file under `root`.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Writes the standard test tree: nested dirs, an empty file, a 20 MiB file, and names
/// with spaces, unicode and `#%&`.
pub fn write_test_tree(root: &Path) {
    let files: [(&str, Vec<u8>); 6] = [
        ("top.txt", b"top level\n".to_vec()),
        ("empty.dat", Vec::new()),
        ("nested/deeper/deepest/leaf.txt", b"leaf\n".to_vec()),
        ("with space/name with space.txt", b"spaces\n".to_vec()),
        (
            "unicode ü/ünïcødé 文件.txt",
            "ünïcødé\n".as_bytes().to_vec(),
        ),
        ("odd/odd #%&.txt", b"odd\n".to_vec()),
    ];
    for (path, body) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let big: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("nested/big 20MiB.bin"), big).unwrap();
}

/// The directory of a local endpoint (panics for any other kind).
pub fn local_root(endpoint: &Endpoint) -> PathBuf {
    match &endpoint.config {
        EndpointConfig::Local(local) => local.root.clone(),
        other => panic!("not a local endpoint: {other:?}"),
    }
}

/// A fresh SQLite store URL in its own temp dir (kept alive by the returned guard).
pub fn sqlite_url() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("orbit.db").display());
    (url, dir)
}

/// A fresh, empty PostgreSQL database on the test server; returns its URL.
pub async fn postgres_url() -> String {
    use sqlx::Connection;
    let base = env("POSTGRES_URL");
    let name = unique("fo").replace('-', "_");
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// Options for an `Orbit` on `store_url` with a fixed test master key and short timings.
pub fn orbit_options(store_url: &str) -> file_orbit::engine::OrbitOptions {
    file_orbit::engine::OrbitOptions {
        store_url: store_url.to_string(),
        master_key: Some(file_orbit::Secret::new(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )),
        lease: std::time::Duration::from_secs(3),
        poll_interval: std::time::Duration::from_millis(20),
        ..Default::default()
    }
}

/// Polls `check` every 100 ms until it gives a value; panics naming `what` after `deadline`.
pub async fn until<T>(
    what: &str,
    deadline: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
