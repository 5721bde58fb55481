//! Stored sources end to end through the server process started as a user starts it (the
//! example server with a `file-orbit-server.toml` in its data directory): an SQS source
//! on moto (its secret given as `{ env = ... }`, a canary), a local folder watch and a
//! poll of an SFTP folder, each with a template, all declared in the TOML. An object
//! uploaded to the bucket lands on the SFTP server, a file dropped in the watched folder
//! lands on the SFTP server, a file put in the polled SFTP folder lands in a local folder;
//! each job and event is visible through the API with the source's name, `GET
//! /api/v1/sources` shows every source running on this node with its counters, and the
//! canary appears in no API answer, metric or log line.

#![cfg(feature = "server")]

mod common;

use common::api::wait_state;
use common::moto::{moto_s3_endpoint_toml, moto_sqs_source_toml, notified_bucket};
use common::process::ServerProcess;
use common::{env, rclone, sftp_config, unique, until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Any wait of the test (the server's start, a file's arrival, a job's end).
const DEADLINE: Duration = Duration::from_secs(90);

fn sftp_home_path(root: &str) -> PathBuf {
    Path::new(&env("SFTP_HOME")).join(root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_the_sqs_watch_and_poll_sources_its_toml_declares() {
    let data = tempfile::tempdir().unwrap();
    let canary = unique("canary-sqs-secret");
    // The bucket, its queue, the folders.
    let (s3, bucket, queue_url) = notified_bucket("fo-e2e", "bucket").await;
    let watched = data.path().join("drop");
    let pulled = data.path().join("pulled");
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::create_dir_all(&pulled).unwrap();
    let partner_root = unique("fo-e2e-partner");
    let outbox_root = unique("fo-e2e-outbox");
    for root in [&partner_root, &outbox_root] {
        common::mkdir(
            &file_orbit::endpoint::Endpoint {
                placement: Default::default(),
                bandwidth: None,
                name: "sftp".into(),
                config: file_orbit::endpoint::EndpointConfig::Sftp(sftp_config(root)),
            },
            "",
        );
    }

    let sftp = |name: &str, root: &str| {
        format!(
            r#"
[[endpoints]]
name = "{name}"
type = "sftp"
host = "{host}"
port = {port}
user = "{user}"
root = "{root}"
auth = {{ method = "password", password = {{ env = "FO_E2E_SFTP_PASSWORD" }} }}
host_key = {{ check = "known_hosts_file", path = "{known_hosts}" }}
"#,
            host = env("SFTP_HOST"),
            port = env("SFTP_PORT"),
            user = env("SFTP_USER"),
            known_hosts = env("SFTP_KNOWN_HOSTS"),
        )
    };
    let template = |name: &str, source: &str, destination: &str, path: &str| {
        format!(
            r#"
[[templates]]
name = "{name}"
matcher = {{ source = "{source}", path_glob = "**" }}
spec = {{ source = "{source}", source_path = "", destination = "{destination}", destination_path = "{path}", scope = "file", verify = true }}
retry = {{ max_attempts = 3, base_delay_ms = 200, max_delay_ms = 1000 }}
"#
        )
    };
    let config = format!(
        r#"
workers = 2

[node]
name = "node-e2e"
labels = {{ site = "test" }}

{s3}
[[endpoints]]
name = "drop"
type = "local"
root = "{watched}"

[[endpoints]]
name = "pulled"
type = "local"
root = "{pulled}"
{partner}{outbox}{t1}{t2}{t3}
{sqs}
[[sources]]
name = "drop-folder"
kind = "local_watch"
spec = {{ endpoint = "drop", stable_for_ms = 200 }}
placement = {{ node = "node-e2e", labels = {{ site = "test" }} }}

[[sources]]
name = "partner-outbox"
kind = "remote_poll"
spec = {{ endpoint = "outbox", interval_ms = 300 }}
"#,
        watched = watched.display(),
        pulled = pulled.display(),
        partner = sftp("partner", &partner_root),
        outbox = sftp("outbox", &outbox_root),
        t1 = template("s3-to-partner", "uploads", "partner", "s3/{relpath}"),
        t2 = template("drop-to-partner", "drop", "partner", "drop/{relpath}"),
        t3 = template("outbox-to-pulled", "outbox", "pulled", "{relpath}"),
        s3 = moto_s3_endpoint_toml("uploads", &bucket, "FO_E2E_S3_SECRET", 4),
        sqs = moto_sqs_source_toml(
            "s3-uploads",
            &queue_url,
            "uploads",
            "FO_E2E_SQS_SECRET",
            "wait_time_seconds = 1"
        ),
    );
    let server = ServerProcess::start(
        data.path(),
        &config,
        &[
            ("FO_E2E_SFTP_PASSWORD", &env("SFTP_PASSWORD")),
            ("FO_E2E_S3_SECRET", &env("MOTO_SECRET_ACCESS_KEY")),
            // moto checks no signature: the canary works as the SQS secret.
            ("FO_E2E_SQS_SECRET", &canary),
        ],
    );
    let (api, key) = (&server.api, server.admin.as_str());

    // Every source runs here.
    let sources: Vec<Value> = until("three running sources", DEADLINE, async || {
        let list = api.get("/api/v1/sources", key).await.json();
        let list = list.as_array()?.clone();
        (list.len() == 3 && list.iter().all(|s| s["state"] == "running")).then_some(list)
    })
    .await;
    for source in &sources {
        assert_eq!(source["owner_node"], "node-e2e", "{source}");
    }

    // S3 → SQS → SFTP.
    let staging = tempfile::tempdir().unwrap();
    std::fs::write(staging.path().join("report.csv"), b"a,b\n1,2\n").unwrap();
    rclone()
        .rpc_async(
            "operations/copyfile",
            json!({"srcFs": staging.path(), "srcRemote": "report.csv",
                   "dstFs": s3.to_rclone(rclone(), "").unwrap(), "dstRemote": "in/report.csv"}),
        )
        .await
        .unwrap();
    // A local drop → SFTP.
    std::fs::write(watched.join("invoice.pdf"), b"%PDF-1.7 invoice").unwrap();
    // An SFTP outbox → a local folder.
    std::fs::write(
        sftp_home_path(&outbox_root).join("statement.txt"),
        b"statement",
    )
    .unwrap();

    let partner = sftp_home_path(&partner_root);
    for (path, bytes) in [
        (partner.join("s3/in/report.csv"), &b"a,b\n1,2\n"[..]),
        (partner.join("drop/invoice.pdf"), &b"%PDF-1.7 invoice"[..]),
        (pulled.join("statement.txt"), &b"statement"[..]),
    ] {
        until(&format!("{}", path.display()), DEADLINE, async || {
            (std::fs::read(&path).ok().as_deref() == Some(bytes)).then_some(())
        })
        .await;
    }

    // The jobs and events, with the sources' names.
    let events = until("three processed events", DEADLINE, async || {
        let events = api.get("/api/v1/events", key).await.json();
        let events = events.as_array()?.clone();
        (events.len() == 3 && events.iter().all(|e| e["state"] == "processed")).then_some(events)
    })
    .await;
    let mut named: Vec<(String, String)> = events
        .iter()
        .map(|event| {
            let template = event["matched_templates"][0].as_str().unwrap().to_string();
            (event["source_name"].as_str().unwrap().to_string(), template)
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("drop-folder".to_string(), "drop-to-partner".to_string()),
            ("partner-outbox".into(), "outbox-to-pulled".into()),
            ("s3-uploads".into(), "s3-to-partner".into()),
        ]
    );
    for event in &events {
        let id = event["job_ids"][0].as_i64().unwrap();
        wait_state(api, key, id, "succeeded").await;
    }
    let sources = until("the counters", DEADLINE, async || {
        let list = api.get("/api/v1/sources", key).await.json();
        let list = list.as_array()?.clone();
        list.iter()
            .all(|s| s["counters"]["ingested"] == 1 && s["last_event_at"].is_i64())
            .then_some(list)
    })
    .await;
    let sqs_source = sources.iter().find(|s| s["name"] == "s3-uploads").unwrap();
    assert_eq!(
        sqs_source["spec"]["secret_access_key"], "***",
        "{sqs_source}"
    );
    assert!(sqs_source["counters"]["received"].as_u64().unwrap() >= 1);

    // The canary: in no answer, metric or log line.
    let metrics = api.call("GET", "/metrics", Some(key), None).await.body;
    assert!(
        metrics.contains("s3-uploads"),
        "per-source metrics are missing: {metrics}"
    );
    let audit = api.get("/api/v1/audit?limit=1000", key).await.body;
    let logs = api.get("/api/v1/logs?limit=1000", key).await.body;
    let mut seen = api.bodies();
    seen.extend([metrics, audit, logs, server.log_text()]);
    for text in &seen {
        assert!(!text.contains(&canary), "the canary leaked: {text}");
    }
    assert!(
        !std::fs::read_to_string(data.path().join("file-orbit-server.toml"))
            .unwrap()
            .contains(&canary)
    );
}
