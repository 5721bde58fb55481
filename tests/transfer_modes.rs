//! Transfer behaviour on the real servers: move removes the source, sync deletes extras,
//! filters select, templates place files, conflict policies keep or replace, and path
//! traversal is refused before anything moves.

mod common;

use chrono::{TimeZone, Utc};
use common::{Kind, endpoint, rclone};
use file_orbit::ErrorKind;
use file_orbit::endpoint::Endpoint;
use file_orbit::path_template::PathTemplate;
use file_orbit::rclone::methods::{List, ListOptions};
use file_orbit::transfer::{
    ConflictPolicy, Filters, Scope, TransferJob, TransferMode, TransferSpec,
};
use std::collections::BTreeMap;

fn spec(source: &Endpoint, path: &str, destination: &Endpoint, template: &str) -> TransferSpec {
    TransferSpec::tree(
        &source.name,
        path,
        &destination.name,
        PathTemplate::parse(template).unwrap(),
    )
}

async fn run(
    spec: &TransferSpec,
    source: &Endpoint,
    destination: &Endpoint,
) -> file_orbit::Result<String> {
    let now = Utc.with_ymd_and_hms(2026, 3, 7, 9, 5, 0).unwrap();
    let job = TransferJob::start(rclone(), spec, source, destination, now).await?;
    let path = job.destination_path.clone();
    job.wait().await?;
    Ok(path)
}

/// Files under `path` of `endpoint`: relative path → size.
fn files(endpoint: &Endpoint, path: &str) -> BTreeMap<String, i64> {
    let listed = rclone().call(&List {
        fs: endpoint.to_rclone(rclone(), path).unwrap(),
        remote: String::new(),
        opt: ListOptions {
            recurse: true,
            files_only: true,
            ..ListOptions::default()
        },
    });
    match listed {
        Ok(reply) => reply
            .list
            .into_iter()
            .map(|item| (item.path, item.size))
            .collect(),
        Err(err) if err.kind == ErrorKind::NotFound => BTreeMap::new(),
        Err(err) => panic!("listing {path}: {err}"),
    }
}

/// Puts `files` (path → body) into a new local endpoint.
fn local_with(files: &[(&str, &str)]) -> Endpoint {
    let source = endpoint(Kind::Local, "local-src");
    let file_orbit::endpoint::EndpointConfig::Local(local) = &source.config else {
        unreachable!()
    };
    for (path, body) in files {
        let path = local.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    source
}

fn names(map: &BTreeMap<String, i64>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn move_removes_the_source() {
    let source = local_with(&[("in/a.txt", "a"), ("in/sub/b.txt", "bb")]);
    let sftp = endpoint(Kind::Sftp, "sftp");
    let mut tree = spec(&source, "in", &sftp, "landed");
    tree.mode = TransferMode::Move;
    run(&tree, &source, &sftp).await.unwrap();
    assert_eq!(names(&files(&sftp, "landed")), ["a.txt", "sub/b.txt"]);
    assert!(files(&source, "in").is_empty());

    // A single file from SFTP on to S3, moved.
    let s3 = endpoint(Kind::S3, "s3");
    let mut file = spec(&sftp, "landed/sub/b.txt", &s3, "moved/{filename}");
    file.mode = TransferMode::Move;
    file.scope = Scope::File;
    run(&file, &sftp, &s3).await.unwrap();
    assert_eq!(files(&s3, "moved").get("b.txt"), Some(&2));
    assert_eq!(names(&files(&sftp, "landed")), ["a.txt"]);
}

#[tokio::test]
async fn sync_deletes_extras_copy_keeps_them() {
    let source = local_with(&[("d/keep.txt", "k")]);
    let s3 = endpoint(Kind::S3, "s3");
    let extra = local_with(&[("d/extra.txt", "x")]);
    run(&spec(&extra, "d", &s3, "mirror"), &extra, &s3)
        .await
        .unwrap();

    run(&spec(&source, "d", &s3, "mirror"), &source, &s3)
        .await
        .unwrap();
    assert_eq!(names(&files(&s3, "mirror")), ["extra.txt", "keep.txt"]);

    let mut sync = spec(&source, "d", &s3, "mirror");
    sync.mode = TransferMode::Sync;
    sync.verify = true;
    run(&sync, &source, &s3).await.unwrap();
    assert_eq!(names(&files(&s3, "mirror")), ["keep.txt"]);
}

#[tokio::test]
async fn filters_select_files() {
    let source = local_with(&[
        ("f/report.csv", "1,2,3,4,5,6,7,8,9"),
        ("f/tiny.csv", "1"),
        ("f/notes.txt", "text text text"),
        ("f/skip/old.csv", "1,2,3,4,5,6,7,8,9"),
    ]);
    let smb = endpoint(Kind::Smb, "smb");
    let mut filtered = spec(&source, "f", &smb, "filtered");
    filtered.filters = Filters {
        include: vec!["*.csv".into(), "skip/**".into()],
        exclude: vec!["skip/**".into()],
        min_size: Some("5B".into()),
        ..Filters::default()
    };
    run(&filtered, &source, &smb).await.unwrap();
    assert_eq!(names(&files(&smb, "filtered")), ["report.csv"]);
}

/// rclone 1.76's glob classes, as README documents them: `[!...]` negates a set (before
/// 1.76 it was the set of `!` and the rest), and a negated set, like `?` and `*`, never
/// matches `/` (before 1.76 `[^...]` did).
#[tokio::test]
async fn filter_globs_negate_sets_without_crossing_directories() {
    let source = local_with(&[
        ("g/a1.csv", "a"),
        ("g/b1.csv", "b"),
        ("g/!1.csv", "!"),
        ("g/xz1.csv", "xz"),
        ("g/x/1.csv", "x/"),
    ]);
    let local = endpoint(Kind::Local, "local-dst");
    let mut filtered = spec(&source, "g", &local, "globbed");
    filtered.filters = Filters {
        include: vec!["[!a!]1.csv".into(), "x[^y]1.csv".into()],
        ..Filters::default()
    };
    run(&filtered, &source, &local).await.unwrap();
    assert_eq!(names(&files(&local, "globbed")), ["b1.csv", "xz1.csv"]);
}

#[tokio::test]
async fn templates_place_single_files() {
    let source = local_with(&[("incoming/data file.tar.gz", "payload")]);
    let sftp = endpoint(Kind::Sftp, "sftp");
    let mut file = spec(
        &source,
        "incoming/data file.tar.gz",
        &sftp,
        "archive/{year}/{month}/{day}/{stem}-{date:%H%M}.{ext}",
    );
    file.scope = Scope::File;
    file.verify = true;
    let path = run(&file, &source, &sftp).await.unwrap();
    assert_eq!(path, "archive/2026/03/07/data file.tar-0905.gz");
    assert_eq!(
        names(&files(&sftp, "archive")),
        ["2026/03/07/data file.tar-0905.gz"]
    );
}

#[tokio::test]
async fn conflict_policies_keep_or_replace() {
    let smb = endpoint(Kind::Smb, "smb");
    let old = local_with(&[("c/f.txt", "old contents")]);
    run(&spec(&old, "c", &smb, "c"), &old, &smb).await.unwrap();

    let new = local_with(&[("c/f.txt", "new")]);
    let mut skip = spec(&new, "c", &smb, "c");
    skip.conflict = ConflictPolicy::SkipExisting;
    run(&skip, &new, &smb).await.unwrap();
    assert_eq!(
        files(&smb, "c")["f.txt"],
        12,
        "skip_existing replaced the file"
    );

    let mut overwrite = spec(&new, "c", &smb, "c");
    overwrite.conflict = ConflictPolicy::Overwrite;
    run(&overwrite, &new, &smb).await.unwrap();
    assert_eq!(files(&smb, "c")["f.txt"], 3, "overwrite kept the old file");

    // The destination is now newer than `old`'s file: newer_only keeps it.
    let mut newer = spec(&old, "c", &smb, "c");
    newer.conflict = ConflictPolicy::NewerOnly;
    let file_orbit::endpoint::EndpointConfig::Local(local) = &old.config else {
        unreachable!()
    };
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(local.root.join("c/f.txt"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    run(&newer, &old, &smb).await.unwrap();
    assert_eq!(
        files(&smb, "c")["f.txt"],
        3,
        "newer_only replaced a newer file"
    );
}

#[tokio::test]
async fn traversal_is_refused_before_anything_moves() {
    let source = local_with(&[("t/a.txt", "a"), ("..evil", "x")]);
    let sftp = endpoint(Kind::Sftp, "sftp");
    let mut bad_template = spec(&source, "t/a.txt", &sftp, "../outside/{filename}");
    bad_template.scope = Scope::File;
    let err = run(&bad_template, &source, &sftp).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");

    // A source path from an untrusted event, rendered through {relpath}.
    let mut from_event = spec(&source, "t/../../etc/passwd", &sftp, "in/{relpath}");
    from_event.scope = Scope::File;
    let err = run(&from_event, &source, &sftp).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("source_path"), "{err}");
    assert!(files(&sftp, "").is_empty(), "something was written");
}

#[tokio::test]
async fn contradictory_specs_name_the_field() {
    let source = local_with(&[("x/a.txt", "a")]);
    let other = endpoint(Kind::Local, "other");
    let mut sync_file = spec(&source, "x/a.txt", &other, "y");
    sync_file.scope = Scope::File;
    sync_file.mode = TransferMode::Sync;
    let err = run(&sync_file, &source, &other).await.unwrap_err();
    assert!(err.to_string().contains("mode"), "{err}");

    let mut verify_move = spec(&source, "x", &other, "y");
    verify_move.mode = TransferMode::Move;
    verify_move.verify = true;
    let err = run(&verify_move, &source, &other).await.unwrap_err();
    assert!(err.to_string().contains("verify"), "{err}");

    let wrong_name = spec(&other, "x", &other, "y");
    let err = run(&wrong_name, &source, &other).await.unwrap_err();
    assert!(err.to_string().contains("source"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transfer_stops_and_leaves_no_complete_file() {
    use tokio_stream::StreamExt;
    let source = local_with(&[]);
    let file_orbit::endpoint::EndpointConfig::Local(local) = &source.config else {
        unreachable!()
    };
    std::fs::create_dir_all(local.root.join("big")).unwrap();
    let size = 4 * 1024 * 1024 * 1024;
    std::fs::File::create(local.root.join("big/huge.bin"))
        .unwrap()
        .set_len(size)
        .unwrap();
    let sftp = endpoint(Kind::Sftp, "sftp");
    let tree = spec(&source, "big", &sftp, "big");
    let job = TransferJob::start(rclone(), &tree, &source, &sftp, Utc::now())
        .await
        .unwrap();
    let mut progress = job.progress();
    while let Some(update) = progress.next().await {
        if update.bytes > 0 {
            break;
        }
    }
    job.cancel().await.unwrap();
    let err = job.wait().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err}");
    let landed = files(&sftp, "big");
    assert_ne!(landed.get("huge.bin"), Some(&(size as i64)), "{landed:?}");
}

/// A symbolic link planted inside a local endpoint never redirects a transfer outside its
/// root: not as a destination directory, not as a destination file, not as a source file
/// or directory. Each is refused naming the link, and nothing is written outside.
#[tokio::test]
async fn symlinks_inside_a_local_root_are_never_followed() {
    use std::os::unix::fs::symlink;
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    let (src_root, dst_root) = (common::local_root(&src), common::local_root(&dst));
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(src_root.join("report.csv"), "data").unwrap();
    std::fs::write(elsewhere.path().join("secret.txt"), "outside").unwrap();
    symlink(elsewhere.path(), dst_root.join("linked")).unwrap();
    symlink(
        elsewhere.path().join("secret.txt"),
        dst_root.join("trap.csv"),
    )
    .unwrap();
    symlink(
        elsewhere.path().join("secret.txt"),
        src_root.join("leak.csv"),
    )
    .unwrap();
    symlink(elsewhere.path(), src_root.join("leakdir")).unwrap();

    let file = |path: &str, template: &str| TransferSpec {
        scope: Scope::File,
        ..spec(&src, path, &dst, template)
    };
    let cases = [
        (
            file("report.csv", "linked/{filename}"),
            "destination_path",
            "linked",
        ),
        (
            spec(&src, "", &dst, "linked/sub"),
            "destination_path",
            "linked",
        ),
        (
            file("report.csv", "trap.csv"),
            "destination_path",
            "trap.csv",
        ),
        (
            file("leak.csv", "out/{filename}"),
            "source_path",
            "leak.csv",
        ),
        (spec(&src, "leakdir", &dst, "out"), "source_path", "leakdir"),
    ];
    for (spec, field, link) in cases {
        let err = run(&spec, &src, &dst).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{spec:?}: {err}");
        let names_the_link = [&src_root, &dst_root].iter().any(|root| {
            let link = root.join(link);
            err.message
                .contains(&format!("symbolic link {}", link.display()))
        });
        assert!(
            err.field.as_deref() == Some(field) && names_the_link,
            "{spec:?}: {err}"
        );
    }
    let outside: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("secret.txt")).unwrap(),
        "outside"
    );
    assert!(!dst_root.join("out").exists());

    // A link deeper in the destination tree than the rendered path (rclone v1.76 writes
    // through it) is refused too.
    std::fs::create_dir_all(src_root.join("tree/sub")).unwrap();
    std::fs::write(src_root.join("tree/sub/planted.txt"), "new").unwrap();
    std::fs::create_dir_all(dst_root.join("deep")).unwrap();
    symlink(elsewhere.path(), dst_root.join("deep/sub")).unwrap();
    let err = run(&spec(&src, "tree", &dst, "deep"), &src, &dst)
        .await
        .unwrap_err();
    let link = dst_root.join("deep/sub");
    assert!(
        err.message
            .contains(&format!("holds the symbolic link {}", link.display())),
        "{err}"
    );
    assert!(!elsewhere.path().join("planted.txt").exists());
}

/// A missing source names the endpoint and the path, not only rclone's call.
#[tokio::test]
async fn a_missing_source_names_its_endpoint_and_path() {
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    let missing = TransferSpec {
        scope: Scope::File,
        ..spec(&src, "inbox/nothing.csv", &dst, "{filename}")
    };
    let err = run(&missing, &src, &dst).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("source file \"inbox/nothing.csv\" not found on endpoint \"src\""),
        "{text}"
    );
    assert!(!text.contains("operations/copyfile"), "{text}");
}
