//! Operating the REST server over real HTTP on loopback (feature `server`): the audit
//! log, health (details for callers with a key), metrics, the log viewer, secrets that
//! never come back, a store outage, short disks, lapsed workers, PostgreSQL, and what a
//! run in the clone leaves behind.

mod common;

use common::api::wait_state;
use common::relay::relayed_postgres;
use common::server::*;
use common::{Kind, endpoint, local_root, postgres_url};
use serde_json::json;
use std::time::Duration;

/// Submits a job whose source is missing (one attempt) and waits for it to be dead; its id.
async fn dead_job(ts: &TestServer) -> i64 {
    let dead = ts
        .submit(file_request("src", "missing.txt", "dst", 1))
        .await;
    let job = wait_state(&ts.api, &ts.keys.viewer, dead, "dead").await;
    assert!(job["last_error"].is_string(), "{job}");
    dead
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_each_caller_and_stays_intact() {
    let mut ts = TestServer::start(1).await;
    put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let reply = ts.put_endpoint(&canary_endpoint(), Some(CANARY)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let dead = dead_job(&ts).await;
    let reply = api
        .post(&format!("/api/v1/jobs/{dead}/retry"), &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_state(api, &keys.viewer, dead, "dead").await;

    let audit = api
        .get("/api/v1/audit?limit=500", &keys.viewer)
        .await
        .json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "endpoint.created",
        "endpoint.edited",
        "job.submitted",
        "job.retried",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // Each change names the API caller who made it.
    let actor_of = |action: &str| -> Vec<&str> {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["actor"].as_str().unwrap())
            .collect()
    };
    let created = actor_of("endpoint.created");
    assert!(created.contains(&"key:admin"), "{created:?}");
    let retried = actor_of("job.retried");
    assert!(retried.iter().all(|a| *a == "key:operator"), "{retried:?}");
    let submitted = actor_of("job.submitted");
    assert!(submitted.contains(&"key:operator"), "{submitted:?}");
    let verify = api.get("/api/v1/audit/verify", &keys.viewer).await.json();
    assert_eq!(verify["intact"], true, "{verify}");
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_the_store_rclone_workers_and_disks_to_a_viewer() {
    let mut ts = TestServer::setup(2).log_to_file().start().await;
    ts.local_pair(2).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let health = api.get("/health", &keys.viewer).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let health = health.json();
    assert_eq!(health["database"]["ok"], true);
    assert!(
        health["rclone"]["version"]
            .as_str()
            .unwrap()
            .starts_with('v'),
        "{health}"
    );
    assert_eq!(health["workers"]["count"], 2);
    assert_eq!(health["workers"]["cluster"]["alive"], 1, "{health}");
    let nodes = api.get("/api/v1/workers", &keys.viewer).await.json();
    let node = &nodes[0];
    assert_eq!(
        (&node["alive"], &node["slots"], &node["pid"]),
        (&json!(true), &json!(2), &json!(std::process::id())),
        "{nodes}"
    );
    let disks = health["disks"].as_array().unwrap();
    for what in ["log_dir", "endpoint:src", "endpoint:dst"] {
        let disk = disks.iter().find(|d| d["what"] == what).expect(what);
        assert!(
            disk["ok"] == true && disk["free_bytes"].as_u64().unwrap() > 0,
            "{disk}"
        );
    }
    assert!(ts.shutdown().await, "clean shutdown");
}

/// Four jobs succeeded (two submitted, one made by an event, one by its replay) and one
/// dead (retried once): what `/metrics` counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_transfers_attempts_events_and_workers() {
    let mut ts = TestServer::start(2).await;
    let (src, _) = ts.local_pair(2).await;
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    let (api, keys) = (&ts.api, &ts.keys);
    for _ in 0..2 {
        let id = ts.submit(file_request("src", "a.txt", "dst", 3)).await;
        wait_state(api, &keys.viewer, id, "succeeded").await;
    }
    let dead = dead_job(&ts).await;
    let reply = api
        .post(&format!("/api/v1/jobs/{dead}/retry"), &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_state(api, &keys.viewer, dead, "dead").await;
    let event_id = event_from_a_template(&ts).await;
    let reply = api
        .post(
            &format!("/api/v1/events/{event_id}/replay"),
            &keys.operator,
            None,
        )
        .await;
    let replayed = reply.json()["job_ids"][0].as_i64().unwrap();
    wait_state(api, &keys.viewer, replayed, "succeeded").await;

    let metrics = api.get("/metrics", &keys.viewer).await;
    assert_eq!(metrics.status, 200);
    let succeeded = api
        .get("/api/v1/jobs?state=succeeded", &keys.viewer)
        .await
        .json();
    assert_eq!(succeeded.as_array().unwrap().len(), 4, "{succeeded}");
    assert!(
        metrics
            .body
            .contains("file_orbit_transfers_total{outcome=\"succeeded\"} 4"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("file_orbit_transfers_total{outcome=\"dead\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("file_orbit_events_received_total{state=\"processed\"} 1"),
        "{}",
        metrics.body
    );
    for expected in [
        "file_orbit_endpoint_transfers_total{endpoint=\"dst\",side=\"destination\",outcome=\"succeeded\"}",
        "file_orbit_endpoint_bytes_total{endpoint=\"src\",side=\"source\"}",
        "file_orbit_attempts_total{outcome=\"failed\"}",
        "file_orbit_attempt_duration_seconds_sum{outcome=\"succeeded\"}",
        "file_orbit_attempt_duration_seconds_bucket{le=\"0.1\",outcome=\"succeeded\"}",
        "file_orbit_dead_letters 1",
        "file_orbit_worker_processes 1",
        "file_orbit_worker_slots 2",
        "file_orbit_retries_total ",
        "# EOF",
    ] {
        assert!(
            metrics.body.contains(expected),
            "{expected} in {}",
            metrics.body
        );
    }
    // Every finished attempt falls in the +Inf bucket: as many as the attempts counted.
    let value_of = |series: &str| -> u64 {
        let line = metrics
            .body
            .lines()
            .find(|line| line.starts_with(series))
            .unwrap_or_else(|| panic!("{series} in {}", metrics.body));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let succeeded_attempts = value_of("file_orbit_attempts_total{outcome=\"succeeded\"}");
    assert!(succeeded_attempts >= 4);
    assert_eq!(
        value_of("file_orbit_attempt_duration_seconds_bucket{le=\"+Inf\",outcome=\"succeeded\"}"),
        succeeded_attempts
    );
    assert_eq!(
        value_of("file_orbit_attempt_duration_seconds_count{outcome=\"succeeded\"}"),
        succeeded_attempts
    );
    assert!(
        metrics
            .body
            .contains("file_orbit_queue_depth{state=\"queued\"} 0"),
        "{}",
        metrics.body
    );
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_viewer_finds_a_failed_transfers_lines_by_job() {
    let mut ts = TestServer::setup(1).log_to_file().start().await;
    ts.local_pair(1).await;
    let dead = dead_job(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let reply = api
        .get(
            &format!("/api/v1/logs?job={dead}&level=info"),
            &keys.operator,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let lines = reply.json();
    assert!(
        lines
            .as_array()
            .is_some_and(|lines| !lines.is_empty() && lines.iter().all(|line| line["job"] == dead)),
        "{lines}"
    );
    let reply = api.get("/api/v1/logs", &keys.viewer).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(ts.shutdown().await, "clean shutdown");
}

/// The canary password and the real SFTP password never come back in any response (the
/// endpoints written, edited, listed, read and diagnosed, a transfer to SFTP followed, a
/// failed one, the audit log, health, metrics, the logs) nor go into the log file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_come_back_in_responses_or_logs() {
    let mut ts = TestServer::setup(2).log_to_file().start().await;
    put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let sftp_password = common::env("SFTP_PASSWORD");
    let reply = ts.put_endpoint(&canary_endpoint(), Some(CANARY)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    api.get("/api/v1/endpoints", &keys.viewer).await;
    for name in ["sftp", "canary"] {
        api.get(&format!("/api/v1/endpoints/{name}"), &keys.viewer)
            .await;
        api.post(
            &format!("/api/v1/endpoints/{name}/test"),
            &keys.operator,
            None,
        )
        .await;
    }
    let id = ts.submit(file_request("src", "a.txt", "sftp", 3)).await;
    let events = api.follow(id, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "succeeded", "{events:?}");
    let dead = dead_job(&ts).await;
    for path in [
        "/api/v1/jobs",
        "/api/v1/audit?limit=500",
        "/health",
        "/metrics",
        &format!("/api/v1/logs?job={dead}"),
        "/api/v1/logs?level=debug&limit=1000",
    ] {
        let reply = api.get(path, &keys.admin).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    assert!(ts.shutdown().await, "clean shutdown");

    let mut logged = String::new();
    for entry in std::fs::read_dir(common::server::process_log_dir()).unwrap() {
        logged.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(logged.contains("transfer failed"), "{logged}");
    assert!(!logged.contains(CANARY), "canary logged");
    assert!(!logged.contains(&sftp_password), "password logged");
    let bodies = ts.api.bodies();
    assert!(bodies.len() > 20);
    for body in bodies.iter() {
        assert!(!body.contains(CANARY), "canary leaked: {body}");
        assert!(!body.contains(&sftp_password), "password leaked: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_details_only_to_authenticated_callers() {
    let mut setup = TestServer::setup(1);
    let orbit = setup.orbit().await;
    let outbox = endpoint(Kind::Local, "partner-outbox");
    let root = local_root(&outbox).display().to_string();
    orbit.put_endpoint(&outbox, 1).await.unwrap();
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);

    // Anyone: ok or not per component, nothing about what the node holds.
    let anonymous = api.call("GET", "/health", None, None).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert_eq!(
        anonymous.json(),
        json!({"status": "ok", "database": {"ok": true}, "workers": {"ok": true},
               "disks": {"ok": true}})
    );
    for secret in [
        "partner-outbox",
        root.as_str(),
        "free_bytes",
        "sqlite",
        "rclone",
    ] {
        assert!(
            !anonymous.body.contains(secret),
            "{secret} in {}",
            anonymous.body
        );
    }

    // A viewer (or above): the details.
    for key in [&keys.viewer, &keys.admin] {
        let detailed = api.get("/health", key).await;
        assert_eq!(detailed.status, 200, "{}", detailed.body);
        let body = detailed.json();
        let disk = body["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|disk| disk["what"] == "endpoint:partner-outbox")
            .unwrap_or_else(|| panic!("{body}"))
            .clone();
        assert_eq!(disk["path"], json!(root), "{body}");
        assert!(disk["free_bytes"].as_u64().unwrap() > 0, "{body}");
        assert_eq!(body["database"]["backend"], "sqlite", "{body}");
        assert_eq!(body["workers"]["count"], 1, "{body}");
        assert!(body["rclone"]["version"].is_string(), "{body}");
    }

    // Credentials that do not hold are refused, not ignored.
    let forged = api.call("GET", "/health", Some("fo_not-a-key"), None).await;
    assert_eq!(forged.error(401)["kind"], "unauthorized", "{}", forged.body);
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unavailable_when_a_disk_runs_short() {
    let mut setup = TestServer::setup(0);
    let logs_dir = tempfile::tempdir().unwrap();
    setup.config.log.dir = Some(logs_dir.path().to_path_buf());
    // More free space than any disk has.
    setup.config.min_free_disk_mb = 1 << 40;
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let health = api.call("GET", "/health", None, None).await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(
        health.json(),
        json!({"status": "unavailable", "database": {"ok": true}, "workers": {"ok": true},
               "disks": {"ok": false}})
    );
    let health = api.get("/health", &keys.viewer).await;
    assert_eq!(health.status, 503, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["disks"][0]["what"], "log_dir");
    assert_eq!(health["disks"][0]["ok"], false, "{health}");
    assert_eq!(health["database"]["ok"], true);
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_gets_prompt_answers_and_health_sees_the_store_return() {
    let (relay, url) = relayed_postgres(&postgres_url().await).await;
    let mut setup = TestServer::setup_on(&url, 1);
    setup.config.request_timeout_secs = 2;
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let health = api.call("GET", "/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);

    relay.silence();
    let asked = std::time::Instant::now();
    let health = api.call("GET", "/health", None, None).await;
    let waited = asked.elapsed();
    // Any other route: 503 once its deadline passed, instead of waiting for the store.
    let jobs = api.get("/api/v1/jobs", &keys.viewer).await;
    relay.restore();
    assert_eq!(jobs.error(503)["kind"], "timeout", "{}", jobs.body);
    assert_eq!(health.status, 503, "{}", health.body);
    let body = health.json();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["database"], json!({"ok": false}), "{body}");
    // The pool would hold each of /health's store reads for its 30 s acquire timeout;
    // /health gives up on the store after 5 s and skips the other reads.
    assert!(waited < Duration::from_secs(20), "/health took {waited:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let health = api.call("GET", "/health", None, None).await;
        if health.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still unhealthy after the store returned: {}",
            health.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A store that refuses (connections closed at once): 503 store_unavailable with a
    // Retry-After, not the 502 of an unreachable remote endpoint.
    relay.cut();
    let jobs = api.get("/api/v1/jobs", &keys.viewer).await;
    relay.restore();
    assert_eq!(
        jobs.error(503)["kind"],
        "store_unavailable",
        "{}",
        jobs.body
    );
    assert_eq!(jobs.retry_after.as_deref(), Some("5"), "{}", jobs.body);
    // So does a scrape: /metrics reads through the store's calls like every route.
    relay.cut();
    let metrics = api.get("/metrics", &keys.viewer).await;
    let detailed = api.get("/health", &keys.viewer).await;
    relay.restore();
    assert_eq!(
        metrics.error(503)["kind"],
        "store_unavailable",
        "{}",
        metrics.body
    );
    // The reason is for authenticated callers only.
    assert_eq!(detailed.status, 503, "{}", detailed.body);
    assert!(
        detailed.json()["database"]["error"].is_string(),
        "{}",
        detailed.body
    );
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stopped_renewing_runs_nothing() {
    use sqlx::Connection;
    let mut setup = TestServer::setup(0);
    let url = setup.store_url().to_string();
    setup.orbit().await;
    // A worker process killed while it ran 4 transfers: its last renewal said 4, and its
    // registration lapsed a minute ago.
    let now = chrono::Utc::now().timestamp_millis();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO worker_nodes (id, host, pid, slots, running, started_at, last_seen, \
             expires_at, stopped_at) VALUES ('gone-1', 'gone', 1, 4, 4, $1, $2, $3, NULL)",
    )
    .bind(now - 600_000)
    .bind(now - 90_000)
    .bind(now - 60_000)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);

    let nodes = api.get("/api/v1/workers", &keys.viewer).await.json();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "gone-1")
        .unwrap_or_else(|| panic!("{nodes}"));
    assert_eq!(
        (&node["alive"], &node["running"], &node["slots"]),
        (&json!(false), &json!(0), &json!(4)),
        "{nodes}"
    );
    let health = api.get("/health", &keys.viewer).await.json();
    assert_eq!(
        health["workers"]["cluster"],
        json!({"alive": 0, "slots": 0, "running": 0}),
        "{health}"
    );
    let metrics = api.get("/metrics", &keys.viewer).await.body;
    for line in [
        "file_orbit_worker_running 0",
        "file_orbit_worker_processes 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_smoke() {
    let mut ts = TestServer::setup_on(&postgres_url().await, 1).start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    std::fs::write(local_root(&src).join("a.txt"), "pg").unwrap();
    for ep in [&src, &dst] {
        let reply = ts.put_endpoint(ep, None).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "a.txt", "dst", 3)),
        )
        .await;
    let id = reply.json()["id"].as_i64().unwrap();
    let events = api.follow(id, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "succeeded", "{events:?}");
    let health = api.get("/health", &keys.viewer).await.json();
    assert_eq!(health["database"]["backend"], "postgres", "{health}");
    assert!(ts.shutdown().await);
}

/// The README's first command runs the server in the clone: what it writes there (the store,
/// its master key file, the generated configuration, the logs) must never be committed.
#[test]
fn what_the_server_writes_in_the_clone_is_ignored_by_git() {
    let written = [
        "file-orbit.db",
        "file-orbit.db-wal",
        "file-orbit.db-shm",
        "file-orbit.db.key",
        "file-orbit-server.toml",
        "logs/server.2026-12-07.log",
    ];
    for name in written {
        let status = std::process::Command::new("git")
            .args(["check-ignore", "--quiet", "--no-index", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("git runs");
        assert!(status.success(), "{name} is not ignored by .gitignore");
    }
}
