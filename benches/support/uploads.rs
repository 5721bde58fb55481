//! For the S3 → SQS → destination benches: 1 KiB objects written to a staging folder and
//! uploaded to a moto bucket with rclone, whether one has arrived at a local destination,
//! and the benches' numeric env settings.

use file_orbit::endpoint::Endpoint;
use file_orbit::rclone::Rclone;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The size of every object.
pub const OBJECT_BYTES: usize = 1024;

/// Uploads objects from `staging` to the root of one S3 endpoint.
pub struct Uploader {
    rclone: &'static Rclone,
    bucket_fs: Value,
    staging: PathBuf,
}

impl Uploader {
    pub fn new(rclone: &'static Rclone, s3: &Endpoint, staging: PathBuf) -> Uploader {
        std::fs::create_dir_all(&staging).unwrap();
        let bucket_fs = json!(s3.to_rclone(rclone, "").unwrap());
        Uploader {
            rclone,
            bucket_fs,
            staging,
        }
    }

    /// Uploads a 1 KiB object `name` (the future returns once it is in the bucket).
    pub fn upload(&self, name: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        std::fs::write(self.staging.join(name), [b'x'; OBJECT_BYTES]).unwrap();
        let input = json!({
            "srcFs": self.staging.display().to_string(), "srcRemote": name,
            "dstFs": self.bucket_fs, "dstRemote": name,
        });
        let rclone = self.rclone;
        async move {
            rclone
                .rpc_async("operations/copyfile", input)
                .await
                .unwrap();
        }
    }
}

/// The object is at `path` with its full size.
pub fn arrived(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.len() == OBJECT_BYTES as u64)
}

/// The number in env `name`, else `default`.
pub fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}"))
        })
        .unwrap_or(default)
}
