//! Event sources through the REST server over real HTTP on loopback (feature `server`):
//! created, listed, read, edited (revision bumped), paused, resumed and deleted, each change
//! audited under its caller; bad specs refused naming the field; the roles each route
//! needs; per-source metrics and events; and an SQS source's secret never answered, logged
//! or measured.

mod common;

use common::server::*;
use common::{Kind, endpoint, env, local_root, unique};
use file_orbit::events::IncomingEvent;
use file_orbit::events::runner::SourceRunnerOptions;
use file_orbit::events::source::SourceSpec;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `PUT /api/v1/sources/{name}` of `body` with `key`.
async fn put(ts: &TestServer, key: &str, name: &str, body: Value) -> common::api::Reply {
    ts.api
        .put(&format!("/api/v1/sources/{name}"), key, body)
        .await
}

fn remote_poll(interval_ms: u64) -> Value {
    json!({"kind": "remote_poll",
           "spec": {"endpoint": "sftp", "path": "", "interval_ms": interval_ms}})
}

fn local_watch(sub_path: &str) -> Value {
    json!({"kind": "local_watch",
           "spec": {"endpoint": "in", "sub_path": sub_path, "stable_for_ms": 0}})
}

/// An SQS source on moto's queue `q`, about the stored S3 endpoint `s3in`, with static
/// keys whose secret is `secret`.
fn sqs(secret: &str) -> Value {
    let moto = env("MOTO_ENDPOINT");
    json!({"kind": "sqs", "spec": {
        "queue_url": format!("{moto}/123456789012/q"),
        "region": env("MOTO_REGION"),
        "endpoint_url": moto,
        "endpoint": "s3in",
        "access_key_id": "AKIDSOURCESTEST",
        "secret_access_key": secret,
        "wait_time_seconds": 1,
    }})
}

/// A server with endpoints `in` (local, holding `drop/`) and `sftp` (the real SFTP server).
async fn server_with_endpoints(setup: Setup) -> TestServer {
    let ts = setup.start().await;
    let inbox = endpoint(Kind::Local, "in");
    std::fs::create_dir_all(local_root(&inbox).join("drop")).unwrap();
    ts.orbit.put_endpoint(&inbox, 2).await.unwrap();
    ts.orbit
        .put_endpoint(&endpoint(Kind::Sftp, "sftp"), 2)
        .await
        .unwrap();
    ts
}

/// The (action, subject, actor) of the audit records about sources, oldest first.
async fn source_audit(ts: &TestServer) -> Vec<(String, String, String)> {
    let audit = ts
        .api
        .get("/api/v1/audit?limit=1000", &ts.keys.viewer)
        .await
        .json();
    let text = |record: &Value, key: &str| record[key].as_str().unwrap().to_string();
    let mut found: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| text(record, "action").starts_with("source."))
        .map(|record| {
            (
                text(record, "action"),
                text(record, "subject"),
                text(record, "actor"),
            )
        })
        .collect();
    found.reverse();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_created_listed_edited_paused_resumed_and_deleted() {
    let mut ts = server_with_endpoints(TestServer::setup(0)).await;
    let keys = ts.keys.clone();

    let reply = put(&ts, &keys.admin, "poll", remote_poll(1000)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let poll = reply.json();
    assert_eq!(
        (
            &poll["name"],
            &poll["kind"],
            &poll["enabled"],
            &poll["revision"]
        ),
        (
            &json!("poll"),
            &json!("remote_poll"),
            &json!(true),
            &json!(1)
        ),
        "{poll}"
    );
    assert_eq!(poll["spec"]["interval_ms"], 1000, "{poll}");
    let reply = put(&ts, &keys.admin, "watch", local_watch("drop")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["spec"]["sub_path"], "drop", "{}", reply.body);

    let list = ts.api.get("/api/v1/sources", &keys.viewer).await.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|source| source["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["poll", "watch"], "{list}");
    let watch = ts
        .api
        .get("/api/v1/sources/watch", &keys.viewer)
        .await
        .json();
    assert_eq!(watch["kind"], "local_watch", "{watch}");
    for field in [
        "state",
        "counters",
        "placement",
        "last_event_at",
        "owner_node",
    ] {
        assert!(watch.get(field).is_some(), "{field}: {watch}");
    }
    assert_eq!(
        ts.api
            .get("/api/v1/sources/nope", &keys.viewer)
            .await
            .status,
        404
    );

    // An edit answers 200 with the revision bumped; the body's name must match the path.
    let mut edited = remote_poll(2000);
    edited["name"] = json!("poll");
    edited["placement"] = json!({"labels": {"site": "paris"}});
    let reply = put(&ts, &keys.admin, "poll", edited).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let poll = reply.json();
    assert_eq!(poll["revision"], 2, "{poll}");
    assert_eq!(poll["spec"]["interval_ms"], 2000, "{poll}");
    assert_eq!(poll["placement"]["labels"]["site"], "paris", "{poll}");

    // Paused by an operator: shown paused, in the API and in /metrics.
    let reply = ts
        .api
        .post("/api/v1/sources/poll/pause", &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let paused = reply.json();
    assert_eq!(
        (&paused["enabled"], &paused["state"]),
        (&json!(false), &json!("paused")),
        "{paused}"
    );
    let metrics = ts.api.get("/metrics", &keys.viewer).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    for line in [
        r#"file_orbit_source_state{source="poll",state="paused"} 1"#,
        r#"file_orbit_source_state{source="poll",state="running"} 0"#,
        r#"file_orbit_source_events_total{source="poll",counter="received"} 0"#,
        r#"file_orbit_source_events_total{source="watch",counter="errors"} "#,
        "# TYPE file_orbit_source_events counter",
        "# TYPE file_orbit_source_state gauge",
    ] {
        assert!(metrics.body.contains(line), "{line}:\n{}", metrics.body);
    }
    let reply = ts
        .api
        .post("/api/v1/sources/poll/resume", &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let resumed = reply.json();
    assert_eq!(resumed["enabled"], true, "{resumed}");
    assert_ne!(resumed["state"], "paused", "{resumed}");

    // Deleted by an admin: gone from the API and /metrics; unknown names are 404.
    let delete = |path: &'static str| ts.api.call("DELETE", path, Some(&keys.admin), None);
    assert_eq!(delete("/api/v1/sources/watch").await.status, 204);
    assert_eq!(
        ts.api
            .get("/api/v1/sources/watch", &keys.viewer)
            .await
            .status,
        404
    );
    let reply = delete("/api/v1/sources/watch").await;
    assert_eq!(reply.error(404)["kind"], "not_found", "{}", reply.body);
    for path in [
        "/api/v1/sources/watch/pause",
        "/api/v1/sources/watch/resume",
    ] {
        let reply = ts.api.post(path, &keys.operator, None).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }
    let metrics = ts.api.get("/metrics", &keys.viewer).await.body;
    assert!(!metrics.contains(r#"source="watch""#), "{metrics}");

    // Every change audited under its caller, in order.
    let admin = "key:admin".to_string();
    let operator = "key:operator".to_string();
    let expected = [
        ("source.created", "source/poll", &admin),
        ("source.created", "source/watch", &admin),
        ("source.edited", "source/poll", &admin),
        ("source.paused", "source/poll", &operator),
        ("source.resumed", "source/poll", &operator),
        ("source.deleted", "source/watch", &admin),
    ]
    .map(|(a, s, w)| (a.to_string(), s.to_string(), w.clone()));
    assert_eq!(source_audit(&ts).await, expected);
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_are_refused_naming_the_field() {
    let mut ts = server_with_endpoints(TestServer::setup(0)).await;
    let keys = ts.keys.clone();
    // A local endpoint whose folder is gone.
    let gone = endpoint(Kind::Local, "gone");
    ts.orbit.put_endpoint(&gone, 1).await.unwrap();
    std::fs::remove_dir_all(local_root(&gone)).unwrap();

    let with = |mut body: Value, path: &[&str], value: Value| {
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        body
    };
    let cases = [
        ("kind", with(remote_poll(1000), &["kind"], json!("ftp"))),
        (
            "spec.queue_url",
            with(sqs("s3cr3t"), &["spec", "queue_url"], json!("not a url")),
        ),
        (
            "spec.endpoint",
            with(remote_poll(1000), &["spec", "endpoint"], json!("nope")),
        ),
        ("spec.sub_path", local_watch("missing")),
        (
            "spec.endpoint",
            json!({"kind": "local_watch", "spec": {"endpoint": "gone"}}),
        ),
        (
            "spec.endpoint",
            with(local_watch("drop"), &["spec", "endpoint"], json!("sftp")),
        ),
        (
            "spec.colour",
            with(remote_poll(1000), &["spec", "colour"], json!("red")),
        ),
        ("colour", with(remote_poll(1000), &["colour"], json!("red"))),
        (
            "spec.max_mesages",
            with(sqs("s3cr3t"), &["spec", "max_mesages"], json!(5)),
        ),
        (
            "spec.interval_ms",
            with(remote_poll(1000), &["spec", "interval_ms"], json!(0)),
        ),
        ("spec", json!({"kind": "remote_poll"})),
        (
            "placement.node",
            with(remote_poll(1000), &["placement"], json!({"node": ""})),
        ),
        ("name", with(remote_poll(1000), &["name"], json!("other"))),
        (
            "spec.secret_access_key",
            with(sqs("s3cr3t"), &["spec", "secret_access_key"], json!("***")),
        ),
        ("body", json!(["not", "an", "object"])),
    ];
    for (field, body) in cases {
        let reply = put(&ts, &keys.admin, "bad", body.clone()).await;
        assert_eq!(reply.status, 400, "{field}: {body} -> {}", reply.body);
        assert_eq!(
            reply.json()["error"]["field"],
            field,
            "{body} -> {}",
            reply.body
        );
    }
    // A name the store refuses, and a body that is not JSON.
    let reply = put(&ts, &keys.admin, "%20", remote_poll(1000)).await;
    assert_eq!(reply.error(400)["field"], "name", "{}", reply.body);
    let reply = ts
        .api
        .call("PUT", "/api/v1/sources/bad", Some(&keys.admin), Some("{"))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // Nothing was stored or audited.
    let list = ts.api.get("/api/v1/sources", &keys.viewer).await.json();
    assert_eq!(list, json!([]));
    assert_eq!(source_audit(&ts).await, []);
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_operators_pause_and_admins_define_sources() {
    let mut ts = server_with_endpoints(TestServer::setup(0)).await;
    let keys = ts.keys.clone();
    for key in [&keys.viewer, &keys.operator] {
        let reply = put(&ts, key, "poll", remote_poll(1000)).await;
        assert_eq!(reply.error(403)["kind"], "forbidden", "{}", reply.body);
    }
    let reply = put(&ts, &keys.admin, "poll", remote_poll(1000)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    for action in ["pause", "resume"] {
        let path = format!("/api/v1/sources/poll/{action}");
        let reply = ts.api.post(&path, &keys.viewer, None).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        let reply = ts.api.post(&path, &keys.operator, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    for key in [&keys.viewer, &keys.operator] {
        let reply = ts
            .api
            .call("DELETE", "/api/v1/sources/poll", Some(key), None)
            .await;
        assert_eq!(reply.status, 403, "{}", reply.body);
    }
    for path in ["/api/v1/sources", "/api/v1/sources/poll"] {
        assert_eq!(ts.api.get(path, &keys.viewer).await.status, 200, "{path}");
    }
    let reply = ts
        .api
        .call("DELETE", "/api/v1/sources/poll", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(ts.shutdown().await, "clean shutdown");
}

/// A source that runs (on a runner of this test's node, on the server's store) is
/// measured in `/metrics` from the store (its counters, its state, its last event), and
/// `GET /api/v1/events?source_name=` lists the events it produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_source_is_measured_and_its_events_listed_by_name() {
    let mut ts = server_with_endpoints(TestServer::setup(0)).await;
    let keys = ts.keys.clone();
    let reply = put(&ts, &keys.admin, "watch", local_watch("drop")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let runner = ts
        .orbit
        .start_source_runner(SourceRunnerOptions::default())
        .unwrap();
    let inbox = ts.orbit.endpoint("in").await.unwrap();
    std::fs::write(local_root(&inbox).join("drop/a.csv"), "a,b\n").unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let source = loop {
        let source = ts
            .api
            .get("/api/v1/sources/watch", &keys.viewer)
            .await
            .json();
        if source["counters"]["ingested"] == 1 && source["last_event_at"].is_i64() {
            break source;
        }
        assert!(Instant::now() < deadline, "not ingested: {source}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(source["state"], "running", "{source}");
    let metrics = ts.api.get("/metrics", &keys.viewer).await.body;
    for line in [
        r#"file_orbit_source_events_total{source="watch",counter="ingested"} 1"#,
        r#"file_orbit_source_state{source="watch",state="running"} 1"#,
        "# TYPE file_orbit_source_last_event_timestamp_seconds gauge",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
    let last_event: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"file_orbit_source_last_event_timestamp_seconds{source="watch"} "#)
        })
        .unwrap_or_else(|| panic!("no last event time:\n{metrics}"))
        .parse()
        .unwrap();
    let at = source["last_event_at"].as_i64().unwrap() as f64 / 1e3;
    assert!((last_event - at).abs() < 1e-3, "{last_event} != {at}");

    // Events record their source; the list filters by it.
    ts.orbit
        .ingest(&IncomingEvent {
            source: "manual".into(),
            dedup_key: None,
            file: None,
            template: None,
            payload: json!({}),
        })
        .await
        .unwrap();
    let events = |query: &'static str| {
        let api = ts.api.clone();
        let key = keys.viewer.clone();
        async move {
            api.get(&format!("/api/v1/events{query}"), &key)
                .await
                .json()
        }
    };
    let all = events("").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let watched = events("?source_name=watch&limit=10").await;
    assert_eq!(watched.as_array().unwrap().len(), 1, "{watched}");
    assert_eq!(watched[0]["source_name"], "watch", "{watched}");
    assert_eq!(watched[0]["source"], "local-watch", "{watched}");
    assert_eq!(events("?source_name=other").await, json!([]));
    runner.shutdown().await;
    assert!(ts.shutdown().await, "clean shutdown");
}

/// An SQS source's secret key goes in and never comes back: not in the answers to the
/// writes (good and refused), the list, the source, `/metrics`, the audit log or the logs
/// API, nor in the server's log files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_secret_never_comes_back_in_responses_metrics_or_logs() {
    let mut ts = TestServer::setup(0).log_to_file().start().await;
    let keys = ts.keys.clone();
    ts.orbit
        .put_endpoint(&endpoint(Kind::S3, "s3in"), 2)
        .await
        .unwrap();
    let canary = unique("canary");

    let reply = put(&ts, &keys.admin, "uploads", sqs(&canary)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let source = reply.json();
    assert_eq!(source["spec"]["secret_access_key"], "***", "{source}");
    assert_eq!(
        source["spec"]["access_key_id"], "AKIDSOURCESTEST",
        "{source}"
    );
    let reply = put(&ts, &keys.admin, "uploads", sqs(&canary)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Refused writes holding the canary: the error names the field, not the value.
    let mut bad = sqs(&canary);
    bad["spec"]["max_messages"] = json!(0);
    let reply = put(&ts, &keys.admin, "uploads", bad).await;
    assert_eq!(
        reply.error(400)["field"],
        "spec.max_messages",
        "{}",
        reply.body
    );
    let mut bad = sqs(&canary);
    bad["spec"]["session_token"] = json!({"nested": canary});
    let reply = put(&ts, &keys.admin, "uploads", bad).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let mut bad = sqs(&canary);
    bad["spec"]["endpoint"] = json!("nope");
    let reply = put(&ts, &keys.admin, "uploads", bad).await;
    assert_eq!(reply.error(400)["field"], "spec.endpoint", "{}", reply.body);

    // The stored spec still holds the secret (sealed), for the node that runs it.
    let (stored, revision) = ts.orbit.source("uploads").await.unwrap();
    assert_eq!(revision, 2);
    let SourceSpec::Sqs(spec) = &stored.spec else {
        panic!("{stored:?}")
    };
    let secret = spec.credentials.secret_access_key.as_ref().unwrap();
    assert_eq!(secret.expose(), canary, "the secret was stored");

    for path in [
        "/api/v1/sources",
        "/api/v1/sources/uploads",
        "/api/v1/sources/uploads/pause",
        "/api/v1/sources/uploads/resume",
        "/metrics",
        "/api/v1/audit?limit=1000",
        "/api/v1/logs?level=debug&limit=5000",
    ] {
        let reply = if path.ends_with("pause") || path.ends_with("resume") {
            ts.api.post(path, &keys.operator, None).await
        } else {
            ts.api.get(path, &keys.admin).await
        };
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let metrics = ts.api.get("/metrics", &keys.viewer).await.body;
    assert!(metrics.contains(r#"source="uploads""#), "{metrics}");
    assert!(ts.shutdown().await, "clean shutdown");

    let bodies = ts.api.bodies();
    assert!(bodies.len() >= 12, "{}", bodies.len());
    for body in &bodies {
        assert!(!body.contains(&canary), "canary answered: {body}");
    }
    let mut logged = String::new();
    for entry in std::fs::read_dir(process_log_dir()).unwrap() {
        logged.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(logged.contains("/api/v1/sources/{name}"), "{logged}");
    assert!(!logged.contains(&canary), "canary logged");
}
