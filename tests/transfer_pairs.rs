//! Every ordered pair of {local, S3, SFTP, SMB} against the real servers: a tree with
//! nested dirs, an empty file, a 20 MiB file and names with spaces, unicode and `#%&`
//! is copied with verification, then read back and compared byte for byte.

mod common;

use chrono::Utc;
use common::{KINDS, Kind, endpoint, rclone, read_tree, write_test_tree};
use file_orbit::endpoint::Endpoint;
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::JobOptions;
use file_orbit::rclone::methods::{Fs, SyncCopy, TreeTransfer};
use file_orbit::transfer::{TransferJob, TransferSpec};

/// Copies a local tree to `path` inside `endpoint` with a plain rclone copy.
async fn upload(local: &std::path::Path, endpoint: &Endpoint, path: &str) {
    let request = SyncCopy(TreeTransfer {
        src_fs: Fs::local(local),
        dst_fs: endpoint.to_rclone(rclone(), path).unwrap(),
        create_empty_src_dirs: true,
    });
    let job = rclone()
        .start(&request, JobOptions::default())
        .await
        .unwrap();
    job.wait().await.unwrap();
}

/// Reads `path` inside `endpoint` back into a fresh local directory.
async fn download(endpoint: &Endpoint, path: &str) -> tempfile::TempDir {
    let local = tempfile::tempdir().unwrap();
    let request = SyncCopy(TreeTransfer {
        src_fs: endpoint.to_rclone(rclone(), path).unwrap(),
        dst_fs: Fs::local(local.path()),
        create_empty_src_dirs: false,
    });
    let job = rclone()
        .start(&request, JobOptions::default())
        .await
        .unwrap();
    job.wait().await.unwrap();
    local
}

fn spec(source: &Endpoint, destination: &Endpoint, template: &str) -> TransferSpec {
    TransferSpec {
        verify: true,
        parallelism: Some(4),
        ..TransferSpec::tree(
            &source.name,
            "tree",
            &destination.name,
            PathTemplate::parse(template).unwrap(),
        )
    }
}

/// Seeds the test tree on a `from` endpoint, copies it to every kind, compares each copy.
async fn copy_from(from: Kind) {
    let original = tempfile::tempdir().unwrap();
    write_test_tree(original.path());
    let expected = read_tree(original.path());
    let source = endpoint(from, "source");
    upload(original.path(), &source, "tree").await;

    for to in KINDS {
        let destination = endpoint(to, "destination");
        let spec = spec(&source, &destination, "copies/{source}");
        let job = TransferJob::start(rclone(), &spec, &source, &destination, Utc::now())
            .await
            .unwrap_or_else(|err| panic!("{from:?} → {to:?}: {err}"));
        assert_eq!(job.destination_path, "copies/source");
        let progress = job
            .wait()
            .await
            .unwrap_or_else(|err| panic!("{from:?} → {to:?}: {err}"));
        assert_eq!(progress.files, expected.len() as u64, "{from:?} → {to:?}");

        let copied = download(&destination, "copies/source").await;
        let actual = read_tree(copied.path());
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{from:?} → {to:?}: file names differ"
        );
        for (name, body) in &expected {
            assert!(actual[name] == *body, "{from:?} → {to:?}: {name} differs");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_local_to_every_kind() {
    copy_from(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_s3_to_every_kind() {
    copy_from(Kind::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_sftp_to_every_kind() {
    copy_from(Kind::Sftp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_smb_to_every_kind() {
    copy_from(Kind::Smb).await;
}
