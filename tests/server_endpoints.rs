//! The REST server's endpoints (and templates) over real HTTP on loopback (feature
//! `server`): created, edited, listed and read with secrets masked, bad writes refused
//! naming the field, diagnosed, deleted, declared in the configuration; undecodable input.

mod common;

use common::server::*;
use common::{Kind, endpoint, orbit_options, sqlite_url};
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::engine::Orbit;
use file_orbit::server::ServerConfig;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_created_edited_listed_and_read_with_secrets_masked() {
    let mut ts = TestServer::start(0).await;
    put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    // Editing answers 200.
    let reply = ts.put_endpoint(&canary_endpoint(), Some(CANARY)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["config"]["auth"]["password"], "***");

    // Listing and reading show secrets as ***.
    let list = api.get("/api/v1/endpoints", &keys.viewer).await.json();
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
    let one = api.get("/api/v1/endpoints/sftp", &keys.viewer).await.json();
    assert_eq!(one["config"]["auth"]["password"], "***", "{one}");
    assert_eq!(
        api.get("/api/v1/endpoints/nope", &keys.viewer).await.status,
        404
    );
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoint_writes_are_refused_naming_the_field() {
    let mut ts = TestServer::start(0).await;
    let (src, _) = put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);

    // Invalid input names the field; unknown fields are refused; names must match.
    let mut bad = endpoint_body(&src, None);
    bad["max_concurrent"] = json!(0);
    let reply = api.put("/api/v1/endpoints/src", &keys.admin, bad).await;
    assert_eq!(
        reply.error(400)["field"],
        "max_concurrent",
        "{}",
        reply.body
    );
    let mut bad = endpoint_body(&src, None);
    bad["bogus"] = json!(1);
    let reply = api.put("/api/v1/endpoints/src", &keys.admin, bad).await;
    assert_eq!(reply.error(400)["field"], "bogus", "{}", reply.body);
    let reply = api
        .put(
            "/api/v1/endpoints/other",
            &keys.admin,
            endpoint_body(&src, None),
        )
        .await;
    assert_eq!(reply.json()["error"]["field"], "name");
    let reply = api
        .call(
            "PUT",
            "/api/v1/endpoints/src",
            Some(&keys.admin),
            Some("{not json"),
        )
        .await;
    assert_eq!(reply.status, 400);
    let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(100 * 1024));
    // 413, or (when the server closes before the client has written it all) a reset.
    match api
        .try_call(
            "PUT",
            "/api/v1/endpoints/src",
            Some(&keys.admin),
            Some(&huge),
        )
        .await
    {
        Ok(reply) => assert_eq!(reply.status, 413, "{}", reply.body),
        Err(err) => assert!(
            ["reset", "Broken pipe", "disconnected"]
                .iter()
                .any(|m| err.contains(m)),
            "{err}"
        ),
    }

    // A secret copied back from a listing is refused, naming it.
    let reply = ts.put_endpoint(&canary_endpoint(), None).await;
    assert_eq!(reply.error(400)["field"], "auth.password", "{}", reply.body);
    let reply = api
        .call("POST", "/api/v1/endpoints", Some(&keys.admin), None)
        .await;
    assert_eq!(
        reply.error(405)["kind"],
        "method_not_allowed",
        "{}",
        reply.body
    );
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_diagnosed_over_http() {
    let mut ts = TestServer::start(0).await;
    put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    for name in ["src", "sftp"] {
        let reply = api
            .post(
                &format!("/api/v1/endpoints/{name}/test"),
                &keys.operator,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["ok"], true, "{name}: {}", reply.body);
    }
    let diagnosis = api
        .post("/api/v1/endpoints/canary/test", &keys.operator, None)
        .await
        .json();
    assert_eq!(diagnosis["ok"], false, "{diagnosis}");
    assert_eq!(diagnosis["problem"], "authentication", "{diagnosis}");
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_templates_declared_in_the_config_are_stored_when_changed() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    // A server (a node of its own) on the store with the configuration file `text`.
    let serve = |text: String| {
        let mut setup = TestServer::setup_on(&url, 0);
        setup.config = ServerConfig::from_toml(&text).unwrap();
        setup.start()
    };
    let inbox = tempfile::tempdir().unwrap();
    let text = |limit: u32, glob: &str| {
        format!(
            r#"
            listen = "127.0.0.1:0"
            workers = 0

            [[endpoints]]
            name = "inbox"
            type = "local"
            root = "{root}"
            max_concurrent = {limit}

            [[endpoints]]
            name = "archive"
            type = "local"
            root = "{root}/archive"

            [[templates]]
            name = "csv-to-archive"
            matcher = {{ source = "inbox", path_glob = "{glob}" }}
            spec = {{ source = "inbox", source_path = "", destination = "archive", destination_path = "{{year}}/{{filename}}", scope = "file" }}
            "#,
            root = inbox.path().display()
        )
    };
    let endpoint_changes = |orbit: Orbit| async move {
        let audit = orbit.audit_log(1000).await.unwrap();
        audit
            .iter()
            .filter(|r| r.action.starts_with("endpoint.") || r.action.starts_with("template."))
            .map(|r| (r.action.clone(), r.subject.clone(), r.actor.clone()))
            .collect::<Vec<_>>()
    };

    let mut server = serve(text(2, "*.csv")).await;
    assert!(server.shutdown().await);
    let endpoints = orbit.endpoints().await.unwrap();
    let limits: Vec<(String, i64)> = endpoints
        .iter()
        .map(|e| (e.name.clone(), e.max_concurrent))
        .collect();
    assert_eq!(limits, vec![("archive".into(), 4), ("inbox".into(), 2)]);
    assert_eq!(
        orbit.templates().await.unwrap()[0].matcher.path_glob,
        "*.csv"
    );
    let first = endpoint_changes(orbit.clone()).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first.iter().all(|(_, _, actor)| actor == "config"),
        "{first:?}"
    );

    // The same file again: nothing stored, nothing audited.
    let mut server = serve(text(2, "*.csv")).await;
    assert!(server.shutdown().await);
    assert_eq!(endpoint_changes(orbit.clone()).await.len(), 3);

    // A changed limit and glob: those two are stored again.
    let mut server = serve(text(3, "*.txt")).await;
    assert!(server.shutdown().await);
    assert_eq!(endpoint_changes(orbit.clone()).await.len(), 5);
    assert_eq!(
        orbit.templates().await.unwrap()[0].matcher.path_glob,
        "*.txt"
    );

    // Bad declarations are refused with the field named.
    let err = ServerConfig::from_toml(&text(2, "*.csv").replace("root =", "rooot =")).unwrap_err();
    assert!(err.message.contains("rooot"), "{err}");
    let err = ServerConfig::from_toml(&text(0, "*.csv")).unwrap_err();
    assert!(err.message.contains("max_concurrent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_templates_are_deleted_and_schedules_listed() {
    let mut ts = TestServer::start(0).await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    orbit.put_endpoint(&src, 1).await.unwrap();
    orbit.put_endpoint(&dst, 1).await.unwrap();
    let template = json!({
        "name": "nightly",
        "matcher": {"source": "src", "path_glob": "*"},
        "spec": {"source": "src", "source_path": "", "destination": "dst",
                 "destination_path": "{filename}", "scope": "tree"},
        "schedule": {"cron": "0 0 2 * * *"},
    });
    let reply = api
        .put("/api/v1/templates/nightly", &keys.admin, template)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let schedules = api.get("/api/v1/schedules", &keys.viewer).await.json();
    assert_eq!(schedules[0]["template"], "nightly", "{schedules}");
    assert_eq!(schedules[0]["cron"], "0 0 2 * * *");
    let next = schedules[0]["next_fire_at"].as_str().unwrap();
    assert!(next.contains("T02:00:00"), "{schedules}");

    // An endpoint a template uses, or a queued job, stays.
    let delete = |path: &'static str| api.call("DELETE", path, Some(&keys.admin), None);
    let reply = delete("/api/v1/endpoints/dst").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("nightly"), "{}", reply.body);
    let reply = delete("/api/v1/templates/nightly").await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let schedules = api.get("/api/v1/schedules", &keys.viewer).await.json();
    assert_eq!(schedules, json!([]));
    // A job naming an unknown endpoint is refused at once, the field named.
    let request = file_request("src", "a.txt", "nowhere", 1);
    let reply = api
        .post("/api/v1/jobs", &keys.operator, Some(request))
        .await;
    assert_eq!(
        reply.error(400)["field"],
        "spec.destination",
        "{}",
        reply.body
    );
    let request = file_request("src", "a.txt", "dst", 1);
    let job = api
        .post("/api/v1/jobs", &keys.operator, Some(request))
        .await;
    assert_eq!(job.status, 201, "{}", job.body);
    let reply = delete("/api/v1/endpoints/dst").await;
    assert_eq!(reply.error(400)["field"], "name", "{}", reply.body);
    let id = job.json()["id"].as_i64().unwrap();
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    assert_eq!(api.post(&cancel, &keys.operator, None).await.status, 200);
    assert_eq!(delete("/api/v1/endpoints/dst").await.status, 204);
    assert_eq!(delete("/api/v1/endpoints/dst").await.status, 404);
    let names: Vec<String> = orbit
        .endpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["src".to_string()]);
    let audit = orbit.audit_log(50).await.unwrap();
    for action in ["endpoint.deleted", "template.deleted"] {
        let record = audit.iter().find(|r| r.action == action).expect(action);
        assert_eq!(record.actor, "key:admin");
    }
    assert!(ts.shutdown().await);
}

/// `POST /api/v1/endpoints/{name}/test`: a root the first transfer would create is a
/// warning on an OK diagnosis; `?write_probe=false` (an endpoint only read from) needs the
/// root to exist; any other value of it is a 400 naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_test_warns_of_a_root_the_first_transfer_creates() {
    let mut setup = TestServer::setup(0);
    let logs_dir = tempfile::tempdir().unwrap();
    setup.config.log.dir = Some(logs_dir.path().to_path_buf());
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);

    let root = common::unique("newdir");
    let outbox = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "outbox".into(),
        config: EndpointConfig::Sftp(common::sftp_config(&root)),
    };
    let reply = ts
        .put_endpoint(&outbox, Some(&common::env("SFTP_PASSWORD")))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let tested = api
        .post("/api/v1/endpoints/outbox/test", &keys.operator, None)
        .await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    let diagnosis = tested.json();
    assert_eq!(diagnosis["ok"], true, "{diagnosis}");
    assert_eq!(diagnosis["problem"], Value::Null, "{diagnosis}");
    let warning = diagnosis["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("does not exist yet"), "{diagnosis}");
    assert!(warning.contains(&root), "{diagnosis}");

    let read_only = api
        .post(
            "/api/v1/endpoints/outbox/test?write_probe=false",
            &keys.operator,
            None,
        )
        .await
        .json();
    assert_eq!(read_only["ok"], false, "{read_only}");
    assert_eq!(read_only["problem"], "not_found", "{read_only}");
    assert_eq!(read_only["warning"], Value::Null, "{read_only}");

    let bad = api
        .post(
            "/api/v1/endpoints/outbox/test?write_probe=maybe",
            &keys.operator,
            None,
        )
        .await;
    assert_eq!(bad.error(400)["field"], "write_probe", "{}", bad.body);
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_wrong_shape_are_never_echoed() {
    const WORDS: &str = "canary-shape-Zq81Lw";
    const DIGITS: i64 = 7_243_987_123_456;
    let mut ts = TestServer::start(0).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let sftp = |auth: Value| {
        json!({"type": "sftp", "host": "127.0.0.1", "user": "u",
               "host_key": {"check": "insecure_skip"}, "auth": auth})
    };
    let s3 = |secret: Value| {
        json!({"type": "s3", "bucket": "b", "access_key_id": "AKID",
               "secret_access_key": secret})
    };
    let password = |secret: Value| json!({"method": "password", "password": secret});
    let shapes = [
        json!(WORDS),
        json!(DIGITS),
        json!([WORDS]),
        json!({"x": WORDS}),
        json!([DIGITS]),
    ];
    let mut bodies = Vec::new();
    for shape in &shapes {
        bodies.push(sftp(shape.clone()));
        bodies.push(sftp(password(shape.clone())));
        bodies.push(s3(shape.clone()));
    }
    for body in bodies {
        if body["auth"]["password"].is_string() || body["secret_access_key"].is_string() {
            continue; // the right shape
        }
        let reply = api
            .put("/api/v1/endpoints/leak", &keys.admin, body.clone())
            .await;
        let error = reply.error(400);
        assert_eq!(error["kind"], "invalid_input", "{body}: {error}");
        assert!(
            !reply.body.contains(WORDS) && !reply.body.contains(&DIGITS.to_string()),
            "{body}: {}",
            reply.body
        );
    }
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_paths_queries_and_bodies_get_json_errors_naming_the_field() {
    let mut ts = TestServer::start(0).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let local = Some(r#"{"type": "local", "root": "/tmp"}"#);
    for (method, path, body, field) in [
        ("PUT", "/api/v1/endpoints/%FF%FE", local, "name"),
        ("GET", "/api/v1/endpoints/%C3%28", None, "name"),
        ("DELETE", "/api/v1/templates/%FF", None, "name"),
        ("GET", "/api/v1/jobs/%FF%FE", None, "id"),
        ("DELETE", "/api/v1/keys/%FE", None, "name"),
        ("GET", "/api/v1/jobs?limit=%FF", None, "limit"),
        ("POST", "/api/v1/jobs", Some("{not json"), "body"),
        (
            "PUT",
            "/api/v1/templates/t",
            Some(r#""a template""#),
            "body",
        ),
        ("PUT", "/api/v1/templates/t", Some(r#"{"name": 5}"#), "name"),
    ] {
        let reply = api.call(method, path, Some(&keys.admin), body).await;
        let error = reply.error(400);
        assert_eq!(error["kind"], "invalid_input", "{method} {path}: {error}");
        assert_eq!(error["field"], field, "{method} {path}: {error}");
    }
    assert!(ts.shutdown().await);
}
