//! A standalone worker service (`file_orbit::worker::run`, what `examples/worker.rs` runs)
//! on host B runs the folder watch placed on B, beside a server on host A on the same
//! store: the source is created through the server's API, B takes it (A never does), a
//! file dropped in B's folder becomes a job that succeeds, and the worker's `[[sources]]`
//! declares a source of its own.

#![cfg(all(feature = "server", feature = "worker"))]

mod common;

use common::api::wait_state;
use common::server::TestServer;
use common::{Kind, endpoint, local_root, until};
use file_orbit::engine::NodeIdentity;
use file_orbit::worker::{self, WorkerConfig};
use serde_json::{Value, json};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// The test master key of `orbit_options`, as the worker finds it: a key file beside the
/// SQLite store.
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_host_b_runs_the_watch_placed_on_b() {
    let mut setup = TestServer::setup(1);
    setup.options.node = NodeIdentity {
        name: "host-a".into(),
        ..NodeIdentity::default()
    };
    let db = setup
        .store_url()
        .trim_start_matches("sqlite://")
        .to_string();
    std::fs::write(format!("{db}.key"), MASTER_KEY).unwrap();
    let ts = setup.start().await;
    let (api, admin) = (&ts.api, ts.keys.admin.as_str());

    let b_folder = endpoint(Kind::Local, "b-folder");
    let out = endpoint(Kind::Local, "out");
    for (e, secret) in [(&b_folder, None), (&out, None)] {
        assert_eq!(ts.put_endpoint(e, secret).await.status, 201);
    }
    let template = json!({"name": "b-to-out", "matcher": {"source": "b-folder", "path_glob": "**"},
        "spec": {"source": "b-folder", "source_path": "", "destination": "out",
                 "destination_path": "{relpath}", "scope": "file"}});
    let reply = api.put("/api/v1/templates/b-to-out", admin, template).await;
    assert!(reply.status < 300, "{}", reply.body);
    let reply = api
        .put(
            "/api/v1/sources/b-watch",
            admin,
            json!({"kind": "local_watch", "spec": {"endpoint": "b-folder", "stable_for_ms": 0},
                   "placement": {"node": "host-b"}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    // The worker service on host B, with a poll of its own declared in its TOML.
    let b_poll = endpoint(Kind::Local, "b-poll");
    ts.orbit.put_endpoint(&b_poll, 4).await.unwrap();
    let mut config = WorkerConfig::from_toml(&format!(
        r#"
store_url = "{url}"
workers = 1
name = "worker-b"

[node]
name = "host-b"

[source_runner]
lease_secs = 2
check_ms = 100

[[sources]]
name = "b-declared"
kind = "remote_poll"
spec = {{ endpoint = "b-poll", interval_ms = 200 }}
placement = {{ node = "host-b" }}
"#,
        url = ts.store_url
    ))
    .unwrap();
    config.shutdown_grace_secs = 5;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(async move {
        worker::run(&config, async {
            let _ = stopped.await;
        })
        .await
    });

    let sources = until("both sources running on host-b", DEADLINE, async || {
        let list = api.get("/api/v1/sources", admin).await.json();
        let list = list.as_array()?.clone();
        (list.len() == 2
            && list
                .iter()
                .all(|s| s["state"] == "running" && s["owner_node"] == "host-b"))
        .then_some(list)
    })
    .await;
    assert!(sources.iter().any(|s| s["name"] == "b-declared"));

    std::fs::write(local_root(&b_folder).join("from-b.txt"), b"seen on b").unwrap();
    let event: Value = until("the event", DEADLINE, async || {
        let events = api
            .get("/api/v1/events?source_name=b-watch", admin)
            .await
            .json();
        events
            .as_array()?
            .first()
            .filter(|event| event["state"] == "processed")
            .cloned()
    })
    .await;
    let job = event["job_ids"][0].as_i64().unwrap();
    wait_state(api, admin, job, "succeeded").await;
    assert_eq!(
        std::fs::read(local_root(&out).join("from-b.txt")).unwrap(),
        b"seen on b"
    );

    // The worker stops: its sources are released (B is gone, A may not run them).
    stop.send(()).unwrap();
    assert!(service.await.unwrap().unwrap());
    let list = api.get("/api/v1/sources", admin).await.json();
    for source in list.as_array().unwrap() {
        assert_eq!(source["state"], "starting", "{source}");
        assert!(source["owner_node"].is_null(), "{source}");
    }
}
