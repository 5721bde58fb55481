//! Two server processes (the example server started as a user starts it, nodes `node-a`
//! and `node-b`) on one PostgreSQL store with the same `[[sources]]`: an SQS source of a
//! moto bucket's notifications and a remote poll of a local folder. Each source runs on
//! exactly one node (both nodes' `GET /api/v1/sources` agree, and the lease names the
//! owner's process). Objects are uploaded while the SQS source's owner is killed with
//! SIGKILL: the survivor takes every source over within the lease plus a few seconds, and
//! in the end every object has arrived once — N files with their content, N jobs (all
//! succeeded), N events of the SQS source with one job each, nothing dead.

mod common;

use common::moto::{moto_s3_endpoint_toml, moto_sqs_source_toml, notified_bucket};
use common::process::{ServerProcess, shared_master_key};
use common::{env, postgres_url, rclone};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TEST: &str = "sources_handover";
/// Objects uploaded; the owner is killed after a third of them.
const OBJECTS: usize = 40;
/// Between two uploads, so uploads go on before, during and after the handover.
const UPLOAD_EVERY: Duration = Duration::from_millis(200);
/// `[source_runner] lease_secs`: short, so the handover is quick.
const LEASE_SECS: u64 = 3;
/// The handover may take the lease plus this (the survivor's next check, a slow start).
const HANDOVER_SLACK: Duration = Duration::from_secs(5);
/// Any other wait (start, the kill point, the last file; a job the killed node held comes
/// back after the engine's 30 s job lease).
const DEADLINE: Duration = Duration::from_secs(150);
const SQS_SOURCE: &str = "uploads";
const POLL_SOURCE: &str = "inbox-poll";
/// The environment variable the TOML names for moto's secret key.
const SECRET_ENV: &str = "FO_HANDOVER_MOTO_SECRET";

fn content(index: usize) -> Vec<u8> {
    format!("handover object {index}\n")
        .repeat(index + 1)
        .into_bytes()
}

fn object_name(index: usize) -> String {
    format!("obj-{index:03}.bin")
}

/// The configuration both servers share, apart from the node's name.
fn config(node: &str, store_url: &str, bucket: &str, queue_url: &str, dirs: [&Path; 2]) -> String {
    let [destination, inbox] = dirs.map(|dir| dir.display().to_string());
    format!(
        r#"store_url = "{store_url}"
workers = 2

[rate_limit]
per_second = 1000.0
burst = 1000

[node]
name = "{node}"

[source_runner]
lease_secs = {LEASE_SECS}

{s3}
[[endpoints]]
name = "dst"
type = "local"
root = "{destination}"
max_concurrent = 16

[[endpoints]]
name = "inbox"
type = "local"
root = "{inbox}"

[[templates]]
name = "s3-to-dst"
matcher = {{ source = "s3in", path_glob = "**" }}
spec = {{ source = "s3in", source_path = "", destination = "dst", destination_path = "{{filename}}", scope = "file" }}

{sqs}
[[sources]]
name = "{POLL_SOURCE}"
kind = "remote_poll"
spec = {{ endpoint = "inbox", path = "", interval_ms = 500 }}
"#,
        s3 = moto_s3_endpoint_toml("s3in", bucket, SECRET_ENV, 16),
        sqs = moto_sqs_source_toml(
            SQS_SOURCE,
            queue_url,
            "s3in",
            SECRET_ENV,
            "wait_time_seconds = 1, visibility_timeout_seconds = 5"
        ),
    )
}

/// Source name → (owner node, owner process, state) as one server lists them.
async fn owners(
    server: &ServerProcess,
) -> BTreeMap<String, (Option<String>, Option<String>, String)> {
    let reply = server.api.get("/api/v1/sources", &server.admin).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|source| {
            let text = |field: &str| source[field].as_str().map(str::to_string);
            (
                text("name").unwrap(),
                (text("owner_node"), text("owner"), text("state").unwrap()),
            )
        })
        .collect()
}

/// Files at the destination with their full content.
fn arrived(destination: &Path) -> usize {
    (0..OBJECTS)
        .filter(|&index| {
            std::fs::read(destination.join(object_name(index)))
                .is_ok_and(|bytes| bytes == content(index))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_s_sources_move_to_the_other_node_and_no_event_is_lost_or_doubled() {
    let store_url = postgres_url().await;
    let (s3, bucket, queue_url) = notified_bucket("fo-handover", "s3in").await;
    let (destination, inbox, staging) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let master_key = shared_master_key();
    let secret = env("MOTO_SECRET_ACCESS_KEY");
    let environment = [
        ("FILE_ORBIT_MASTER_KEY", master_key.expose()),
        (SECRET_ENV, secret.as_str()),
    ];
    let nodes = ["node-a", "node-b"];
    let data_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // One after the other: the first stores the declarations, the second finds them equal.
    let mut servers: Vec<ServerProcess> = nodes
        .iter()
        .zip(&data_dirs)
        .map(|(node, dir)| {
            let text = config(
                node,
                &store_url,
                &bucket,
                &queue_url,
                [destination.path(), inbox.path()],
            );
            ServerProcess::start(dir.path(), &text, &environment)
        })
        .collect();

    // Each source runs on exactly one node: both nodes list the same running owner, and
    // the lease's process (`node/pid/n`) is that node's server.
    let started = Instant::now();
    let owned = loop {
        let views = [owners(&servers[0]).await, owners(&servers[1]).await];
        let settled = views[0] == views[1]
            && views[0].len() == 2
            && views[0].values().all(|(node, owner, state)| {
                node.is_some() && owner.is_some() && state == "running"
            });
        if settled {
            break views[0].clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the sources did not settle on one owner each: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let node_index = |node: &str| nodes.iter().position(|n| *n == node).unwrap();
    for (source, (node, owner, _)) in &owned {
        let node = node.as_deref().unwrap();
        let pid = servers[node_index(node)].pid();
        assert!(
            owner
                .as_deref()
                .unwrap()
                .starts_with(&format!("{node}/{pid}/")),
            "{source}: lease held by {owner:?}, not by {node}'s process {pid}"
        );
    }
    println!("{TEST}: owners before the kill: {owned:?}");
    let victim = node_index(owned[SQS_SOURCE].0.as_deref().unwrap());
    let survivor = 1 - victim;

    // Uploads in the background, one every UPLOAD_EVERY.
    let uploaded = Arc::new(AtomicUsize::new(0));
    let uploads = {
        let uploaded = uploaded.clone();
        let staging = staging.path().to_path_buf();
        let bucket_fs = s3.to_rclone(rclone(), "").unwrap();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPLOAD_EVERY);
            for index in 0..OBJECTS {
                every.tick().await;
                let name = object_name(index);
                std::fs::write(staging.join(&name), content(index)).unwrap();
                let input = json!({
                    "srcFs": staging.display().to_string(), "srcRemote": name,
                    "dstFs": bucket_fs, "dstRemote": name,
                });
                rclone()
                    .rpc_async("operations/copyfile", input)
                    .await
                    .unwrap();
                uploaded.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // The kill: once a third of the objects are uploaded and the owner has delivered one.
    // Until then the owners stay where they are.
    while uploaded.load(Ordering::SeqCst) < OBJECTS / 3 || arrived(destination.path()) == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "no file arrived before the kill point"
        );
        assert_eq!(
            owners(&servers[survivor]).await,
            owned,
            "an owner changed before the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = Instant::now();
    servers[victim].kill();
    let (at_kill, files_at_kill) = (uploaded.load(Ordering::SeqCst), arrived(destination.path()));
    println!(
        "{TEST}: killed {} (owner of {SQS_SOURCE}) after {at_kill} uploads, {files_at_kill} files arrived",
        nodes[victim]
    );

    // The survivor takes every source over.
    let survivor_node = nodes[survivor];
    let survivor_pid = servers[survivor].pid();
    loop {
        let view = owners(&servers[survivor]).await;
        let taken = view.values().all(|(node, owner, state)| {
            node.as_deref() == Some(survivor_node)
                && owner.as_deref().is_some_and(|owner| {
                    owner.starts_with(&format!("{survivor_node}/{survivor_pid}/"))
                })
                && state == "running"
        });
        if taken {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(LEASE_SECS) + HANDOVER_SLACK,
            "{survivor_node} did not take the sources over within {LEASE_SECS} s + {HANDOVER_SLACK:?}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handover = killed_at.elapsed();
    println!(
        "{TEST}: {survivor_node} runs every source {:.2} s after the kill (lease {LEASE_SECS} s)",
        handover.as_secs_f64()
    );

    // Every object arrives, once.
    tokio::time::timeout(DEADLINE, uploads)
        .await
        .expect("the uploads hang")
        .unwrap();
    while arrived(destination.path()) < OBJECTS {
        assert!(
            started.elapsed() < DEADLINE,
            "{} of {OBJECTS} files arrived",
            arrived(destination.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = std::fs::read_dir(destination.path()).unwrap().count();
    assert_eq!(files, OBJECTS, "files at the destination");
    let server = &servers[survivor];
    let jobs = loop {
        let reply = server
            .api
            .get("/api/v1/jobs?limit=1000", &server.admin)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let jobs = reply.json().as_array().unwrap().clone();
        if jobs.len() >= OBJECTS && jobs.iter().all(|job| job["state"] == "succeeded") {
            break jobs;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the jobs did not all succeed: {:?}",
            jobs.iter()
                .map(|job| (&job["id"], &job["state"]))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(jobs.len(), OBJECTS, "one job per object");
    let job_ids: BTreeSet<i64> = jobs.iter().map(|job| job["id"].as_i64().unwrap()).collect();
    let reply = server
        .api
        .get("/api/v1/events?limit=1000", &server.admin)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events: Vec<Value> = reply.json().as_array().unwrap().clone();
    assert!(
        events.iter().all(|event| event["state"] == "processed"),
        "{events:?}"
    );
    let from_sqs: Vec<&Value> = events
        .iter()
        .filter(|event| event["source_name"] == SQS_SOURCE)
        .collect();
    assert_eq!(
        from_sqs.len(),
        OBJECTS,
        "events of {SQS_SOURCE}: {events:?}"
    );
    let mut event_jobs = BTreeSet::new();
    for event in &from_sqs {
        let ids = event["job_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 1, "an event with other than one job: {event}");
        assert!(
            event_jobs.insert(ids[0].as_i64().unwrap()),
            "two events, one job: {event}"
        );
    }
    assert_eq!(event_jobs, job_ids, "the events' jobs are the jobs");
    let reply = server
        .api
        .get(&format!("/api/v1/sources/{SQS_SOURCE}"), &server.admin)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let status = reply.json();
    assert_eq!(status["counters"]["dead"], 0, "{status}");
    println!(
        "{TEST}: {OBJECTS} files, {} jobs, {} events of {SQS_SOURCE}; its counters after the handover: {}",
        jobs.len(),
        from_sqs.len(),
        status["counters"]
    );
}
