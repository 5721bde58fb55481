//! The local folder watch (`events::local`): files that arrive in a watched local endpoint
//! become events and jobs only once complete — concurrent and slow writers, catch-up after
//! a restart without duplicates, ignored names, markers and rename-into-place, and a
//! watched directory deleted and re-created. A template mirrors everything (`**`) from the
//! watched endpoint `inbox` to `archive`, and in-process workers run the jobs.
//! SQLite throughout; the basic case also on the PostgreSQL test server.

mod common;

use common::{Kind, endpoint, local_root, orbit_options, postgres_url, read_tree, sqlite_url};
use file_orbit::ErrorKind;
use file_orbit::engine::{
    EventRecord, JobState, Matcher, Orbit, OrbitOptions, RetryPolicy, TransferTemplate, Workers,
};
use file_orbit::events::local::LocalWatch;
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Setup {
    orbit: Orbit,
    inbox: PathBuf,
    archive: PathBuf,
    workers: Workers,
}

/// An orbit with `inbox` and `archive`, the mirror template, and 4 workers.
async fn setup(options: OrbitOptions) -> Setup {
    let orbit = Orbit::open(options).await.unwrap();
    let inbox = endpoint(Kind::Local, "inbox");
    let archive = endpoint(Kind::Local, "archive");
    orbit.put_endpoint(&inbox, 8).await.unwrap();
    orbit.put_endpoint(&archive, 8).await.unwrap();
    orbit
        .put_template(&TransferTemplate {
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay_ms: 100,
                max_delay_ms: 1_000,
            },
            ..TransferTemplate::new(
                "mirror",
                Matcher::new("inbox", "**"),
                TransferSpec {
                    verify: true,
                    ..TransferSpec::file(
                        "inbox",
                        "",
                        "archive",
                        PathTemplate::parse("{relpath}").unwrap(),
                    )
                },
            )
        })
        .await
        .unwrap();
    let workers = orbit.start_workers(4);
    Setup {
        orbit,
        inbox: local_root(&inbox),
        archive: local_root(&archive),
        workers,
    }
}

fn watch(stable_for_ms: u64) -> LocalWatch {
    LocalWatch {
        stable_for: Duration::from_millis(stable_for_ms),
        ..LocalWatch::new("inbox")
    }
}

/// Polls `check` until it gives a value; fails after `timeout` with `what`.
async fn until<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn local_events(orbit: &Orbit) -> Vec<EventRecord> {
    let mut events = orbit.events(10_000).await.unwrap();
    events.retain(|event| event.source == "local-watch");
    events.reverse();
    events
}

fn path_of(event: &EventRecord) -> &str {
    event.payload["file"]["path"].as_str().unwrap()
}

fn trigger_of(event: &EventRecord) -> &str {
    event.payload["payload"]["trigger"].as_str().unwrap()
}

async fn jobs_in(orbit: &Orbit, state: JobState) -> i64 {
    orbit.store().job_counts().await.unwrap().get(state)
}

async fn all_jobs(orbit: &Orbit) -> i64 {
    orbit.store().job_counts().await.unwrap().total()
}

/// Waits until the events for exactly `paths` are stored and their jobs succeeded.
async fn until_transferred(setup: &Setup, paths: &[&str]) -> Vec<EventRecord> {
    let orbit = &setup.orbit;
    let what = format!("events and succeeded jobs for {paths:?}");
    until(&what, WAIT, async || {
        let events = local_events(orbit).await;
        let have = paths
            .iter()
            .all(|p| events.iter().any(|e| path_of(e) == *p));
        let jobs: Vec<i64> = events.iter().flat_map(|e| e.job_ids.clone()).collect();
        if !have || jobs.len() < paths.len() {
            return None;
        }
        for id in jobs {
            if orbit.job(id).await.unwrap().state != JobState::Succeeded {
                return None;
            }
        }
        Some(events)
    })
    .await
}

fn write(root: &Path, rel: &str, body: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

fn body(index: usize) -> Vec<u8> {
    let len = if index % 97 == 0 {
        0
    } else {
        (index * 7919) % 24_000 + 1
    };
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(index as u32) as u8
        })
        .collect()
}

/// A file written concurrently: what it holds and when its writer finished writing.
struct Written {
    rel: String,
    body: Vec<u8>,
    /// Taken after the last write, just before `close`.
    before_close_ms: i64,
    slow: bool,
}

/// Writes files `index` (of `threads` threads) into `root`: every third one slowly, in
/// chunks with pauses longer than the stability window, before it is closed.
fn writer(root: PathBuf, thread: usize, threads: usize, files: usize) -> Vec<Written> {
    let mut written = Vec::new();
    for index in (thread..files).step_by(threads) {
        let rel = format!("w{thread:02}/d{}/f{index:04}.bin", index % 4);
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = body(index);
        let slow = index % 3 == 0 && body.len() >= 4;
        let mut file = std::fs::File::create(&path).unwrap();
        if slow {
            let chunk = body.len().div_ceil(4);
            for (n, part) in body.chunks(chunk).enumerate() {
                if n > 0 {
                    // The scenario: a writer pausing longer than `stable_for` (10 ms).
                    std::thread::sleep(Duration::from_millis(12 + (index % 5) as u64));
                }
                file.write_all(part).unwrap();
                file.flush().unwrap();
            }
        } else {
            file.write_all(&body).unwrap();
        }
        let before_close_ms = now_ms();
        drop(file);
        written.push(Written {
            rel,
            body,
            before_close_ms,
            slow,
        });
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_files_make_one_event_and_job_each_after_close() {
    const FILES: usize = 1000;
    const THREADS: usize = 16;
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let watcher = setup
        .orbit
        .start_local_watch(LocalWatch {
            // Shorter than the writers' pauses: only their close may hand them over.
            stable_for: Duration::from_millis(10),
            // Rescans while files are open must neither hand them over nor duplicate.
            rescan_interval: Duration::from_millis(300),
            ..LocalWatch::new("inbox")
        })
        .await
        .unwrap();

    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let root = setup.inbox.clone();
            tokio::task::spawn_blocking(move || writer(root, thread, THREADS, FILES))
        })
        .collect();
    let mut written = Vec::new();
    for handle in writers {
        written.extend(handle.await.unwrap());
    }
    assert_eq!(written.len(), FILES);
    assert!(written.iter().filter(|w| w.slow).count() > 300);

    let orbit = &setup.orbit;
    until("1000 succeeded jobs", WAIT, async || {
        (jobs_in(orbit, JobState::Succeeded).await == FILES as i64).then_some(())
    })
    .await;
    let stats = watcher.stats();
    watcher.shutdown().await;

    let events = local_events(orbit).await;
    assert_eq!(events.len(), FILES, "exactly one event per file");
    assert_eq!(
        all_jobs(orbit).await,
        FILES as i64,
        "exactly one job per file"
    );
    assert_eq!((stats.stored, stats.failed), (FILES as u64, 0), "{stats:?}");
    assert!(stats.scans >= 2, "rescans ran meanwhile: {stats:?}");

    // None started before its file was complete: stored after its last write, with its
    // final size and mtime; its job's first attempt after that too.
    let by_path: HashMap<&str, &Written> = written.iter().map(|w| (w.rel.as_str(), w)).collect();
    let attempts = first_attempts(&url).await;
    for event in &events {
        let w = by_path[path_of(event)];
        assert!(
            event.created_at >= w.before_close_ms,
            "{} stored at {} before its writer finished at {}",
            w.rel,
            event.created_at,
            w.before_close_ms
        );
        assert_eq!(
            event.payload["file"]["size"].as_u64(),
            Some(w.body.len() as u64),
            "{}",
            w.rel
        );
        let mtime = std::fs::metadata(setup.inbox.join(&w.rel))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert_eq!(event.payload["payload"]["mtime_ns"].as_i64(), Some(mtime));
        // Closed while watched, or (the first files of a new directory, created before
        // inotify watched it) found by the directory's scan and stable since.
        assert!(
            ["close_write", "stable"].contains(&trigger_of(event)),
            "{}: {event:?}",
            w.rel
        );
        assert_eq!(event.job_ids.len(), 1);
        let started = attempts[&event.job_ids[0]];
        assert!(started >= w.before_close_ms, "{}", w.rel);
    }

    let stable = events.iter().filter(|e| trigger_of(e) == "stable").count();
    eprintln!("{stable} of {FILES} files were found by a directory scan, the rest on close");

    let expected: BTreeMap<String, Vec<u8>> = written
        .iter()
        .map(|w| (w.rel.clone(), w.body.clone()))
        .collect();
    assert!(read_tree(&setup.archive) == expected, "archive differs");
    setup.workers.shutdown().await;
}

/// Job id → when its first attempt started (ms), read from the SQLite store.
async fn first_attempts(url: &str) -> HashMap<i64, i64> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT job_id, MIN(started_at) FROM job_attempts GROUP BY job_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter().collect()
}

async fn files_arrive_and_are_transferred(options: OrbitOptions) {
    let setup = setup(options).await;
    let watcher = setup.orbit.start_local_watch(watch(0)).await.unwrap();
    write(&setup.inbox, "a.txt", b"alpha");
    write(&setup.inbox, "nested/deeper/b.csv", b"b,c\n1,2\n");
    // A slow writer with pauses: handed over on close only.
    let mut file = std::fs::File::create(setup.inbox.join("slow.log")).unwrap();
    for chunk in 0..5 {
        file.write_all(format!("chunk {chunk}\n").as_bytes())
            .unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let before_close = now_ms();
    drop(file);

    let events = until_transferred(&setup, &["a.txt", "nested/deeper/b.csv", "slow.log"]).await;
    assert_eq!(events.len(), 3, "{events:?}");
    let slow = events.iter().find(|e| path_of(e) == "slow.log").unwrap();
    assert!(slow.created_at >= before_close);
    assert_eq!(slow.payload["file"]["size"].as_u64(), Some(40));
    assert_eq!(
        slow.dedup_key.as_deref().unwrap(),
        format!(
            "local:inbox:slow.log:40:{}",
            slow.payload["payload"]["mtime_ns"]
        )
    );
    assert_eq!(
        std::fs::read(setup.archive.join("nested/deeper/b.csv")).unwrap(),
        b"b,c\n1,2\n"
    );
    watcher.shutdown().await;
    setup.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_arrive_and_are_transferred_sqlite() {
    let (url, _dir) = sqlite_url();
    files_arrive_and_are_transferred(orbit_options(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_arrive_and_are_transferred_postgres() {
    files_arrive_and_are_transferred(orbit_options(&postgres_url().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_while_stopped_are_caught_up_and_nothing_is_submitted_twice() {
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let watcher = setup.orbit.start_local_watch(watch(0)).await.unwrap();
    write(&setup.inbox, "first.txt", b"1");
    until_transferred(&setup, &["first.txt"]).await;
    watcher.shutdown().await;

    // Down: files arrive meanwhile.
    write(&setup.inbox, "second.txt", b"22");
    write(&setup.inbox, "later/third.txt", b"333");
    // A new process: a new Orbit on the same store.
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let watcher = orbit.start_local_watch(watch(0)).await.unwrap();
    until_transferred(&setup, &["first.txt", "second.txt", "later/third.txt"]).await;
    let stats = until("the catch-up scan's hand-overs", WAIT, async || {
        let stats = watcher.stats();
        (stats.stored + stats.duplicates >= 3).then_some(stats)
    })
    .await;
    assert_eq!((stats.stored, stats.duplicates), (2, 1), "{stats:?}");
    watcher.shutdown().await;

    // Once more: everything is a duplicate.
    let watcher = orbit.start_local_watch(watch(0)).await.unwrap();
    let stats = until("the second catch-up", WAIT, async || {
        let stats = watcher.stats();
        (stats.duplicates >= 3).then_some(stats)
    })
    .await;
    assert_eq!((stats.stored, stats.duplicates), (0, 3), "{stats:?}");
    watcher.shutdown().await;

    assert_eq!(local_events(&orbit).await.len(), 3);
    assert_eq!(all_jobs(&orbit).await, 3);
    assert_eq!(jobs_in(&orbit, JobState::Succeeded).await, 3);
    assert_eq!(
        std::fs::read(setup.archive.join("later/third.txt")).unwrap(),
        b"333"
    );
    setup.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partials_dotfiles_and_odd_names_are_ignored_and_renames_are_complete_at_once() {
    use std::os::unix::ffi::OsStrExt;
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let watcher = setup
        .orbit
        .start_local_watch(LocalWatch {
            stable_for: Duration::from_secs(30), // a close alone would wait this long
            rescan_interval: Duration::from_millis(200),
            ..LocalWatch::new("inbox")
        })
        .await
        .unwrap();
    let inbox = &setup.inbox;
    write(inbox, "report.csv.1a2b3c4d.partial", b"partial");
    write(inbox, ".hidden", b"dot");
    write(inbox, "x.tmp", b"tmp");
    write(inbox, ".staging/inner.txt", b"in a dot dir");
    std::fs::write(
        inbox.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt")),
        b"not utf-8",
    )
    .unwrap();

    // Rename into place from an ignored temp name, with a pause before the rename.
    let mut file = std::fs::File::create(inbox.join("upload.bin.partial")).unwrap();
    file.write_all(&[7; 5000]).unwrap();
    drop(file);
    std::fs::rename(inbox.join("upload.bin.partial"), inbox.join("upload.bin")).unwrap();
    // And from outside the watched tree.
    let outside = tempfile::tempdir_in(inbox.parent().unwrap()).unwrap();
    std::fs::write(outside.path().join("moved.txt"), b"moved in").unwrap();
    std::fs::rename(outside.path().join("moved.txt"), inbox.join("moved.txt")).unwrap();

    let events = until_transferred(&setup, &["upload.bin", "moved.txt"]).await;
    for event in &events {
        assert_eq!(trigger_of(event), "rename", "{event:?}");
    }
    // Several full rescans later, still nothing for the ignored and odd names.
    let scans = watcher.stats().scans;
    until("two more rescans", WAIT, async || {
        (watcher.stats().scans >= scans + 2).then_some(())
    })
    .await;
    let events = local_events(&setup.orbit).await;
    let mut paths: Vec<&str> = events.iter().map(path_of).collect();
    paths.sort();
    assert_eq!(paths, ["moved.txt", "upload.bin"]);
    assert_eq!(watcher.stats().skipped_names, 1);
    assert_eq!(
        std::fs::read(setup.archive.join("upload.bin")).unwrap(),
        [7; 5000]
    );
    watcher.shutdown().await;
    setup.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_file_hands_its_data_file_over() {
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let watcher = setup
        .orbit
        .start_local_watch(LocalWatch {
            marker_suffix: Some(".done".into()),
            ..watch(0)
        })
        .await
        .unwrap();
    let inbox = &setup.inbox;
    write(inbox, "in/data.csv", b"a,b\n");
    // Events are handled in order: once the sentinel (written later) is handed over,
    // data.csv's close has been seen and left waiting for its marker.
    write(inbox, "in/sentinel.csv", b"s");
    write(inbox, "in/sentinel.csv.done", b"");
    until_transferred(&setup, &["in/sentinel.csv"]).await;
    let events = local_events(&setup.orbit).await;
    assert_eq!(events.len(), 1, "data.csv has no marker yet: {events:?}");

    write(inbox, "in/data.csv.done", b"");
    let events = until_transferred(&setup, &["in/sentinel.csv", "in/data.csv"]).await;
    assert_eq!(events.len(), 2, "markers are never handed over: {events:?}");
    let data = events.iter().find(|e| path_of(e) == "in/data.csv").unwrap();
    assert_eq!(trigger_of(data), "marker");
    assert!(!setup.archive.join("in/data.csv.done").exists());
    watcher.shutdown().await;
    setup.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_directory_deleted_and_recreated_is_watched_again() {
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let dir = setup.inbox.join("drop");
    std::fs::create_dir(&dir).unwrap();
    let watcher = setup
        .orbit
        .start_local_watch(LocalWatch {
            sub_path: Some("drop".into()),
            ..watch(0)
        })
        .await
        .unwrap();
    write(&dir, "one.txt", b"1");
    until_transferred(&setup, &["drop/one.txt"]).await;

    std::fs::remove_dir_all(&dir).unwrap();
    until("the watch to notice", WAIT, async || {
        (!watcher.stats().watching).then_some(())
    })
    .await;
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "sub/two.txt", b"22");
    until_transferred(&setup, &["drop/one.txt", "drop/sub/two.txt"]).await;
    assert!(watcher.stats().reattached >= 1);

    // Deleted and re-created at once, a file written straight after.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "three.txt", b"333");
    let events = until_transferred(
        &setup,
        &["drop/one.txt", "drop/sub/two.txt", "drop/three.txt"],
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    // Still watching for events (not only scans): a close is handed over promptly.
    until("watching again", WAIT, async || {
        watcher.stats().watching.then_some(())
    })
    .await;
    write(&dir, "four.txt", b"4444");
    until_transferred(
        &setup,
        &[
            "drop/one.txt",
            "drop/sub/two.txt",
            "drop/three.txt",
            "drop/four.txt",
        ],
    )
    .await;
    let four = local_events(&setup.orbit).await;
    let four = four.iter().find(|e| path_of(e) == "drop/four.txt").unwrap();
    assert_eq!(trigger_of(four), "close_write");
    assert_eq!(
        std::fs::read(setup.archive.join("drop/three.txt")).unwrap(),
        b"333"
    );
    watcher.shutdown().await;
    setup.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_watches_are_refused_with_the_reason() {
    let (url, _dir) = sqlite_url();
    let setup = setup(orbit_options(&url)).await;
    let refused =
        async |watch: LocalWatch| setup.orbit.start_local_watch(watch).await.err().unwrap();
    let missing = refused(LocalWatch {
        sub_path: Some("not-there".into()),
        ..watch(0)
    })
    .await;
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    let escape = refused(LocalWatch {
        sub_path: Some("../elsewhere".into()),
        ..watch(0)
    })
    .await;
    assert_eq!(escape.field.as_deref(), Some("sub_path"), "{escape}");
    assert!(escape.message.contains("../elsewhere"), "{escape}");
    let unknown = refused(LocalWatch::new("nope")).await;
    assert_eq!(unknown.kind, ErrorKind::NotFound, "{unknown}");
    let glob = refused(LocalWatch {
        ignore: vec!["*.tmp".into(), "[".into()],
        ..watch(0)
    })
    .await;
    assert_eq!(glob.field.as_deref(), Some("ignore[1]"), "{glob}");
    assert!(glob.message.contains("ignore pattern \"[\""), "{glob}");
    setup.workers.shutdown().await;
}
