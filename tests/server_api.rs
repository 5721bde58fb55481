//! The REST server over real HTTP on loopback (feature `server`): endpoints with their
//! diagnosis, transfers followed live to success, cancel and retry, events and the audit
//! log, auth (401/403 on every route), rate limits, health and metrics, and a canary
//! password that never appears in any response.

mod common;

use common::api::{Api, BODIES, config_with_keys, wait_state};
use common::relay::relayed_postgres;
use common::{Kind, endpoint, local_root, orbit_options, postgres_url, sqlite_url};
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::engine::{JobRequest, JobState, Orbit, RetryPolicy};
use file_orbit::events::IncomingEvent;
use file_orbit::path_template::PathTemplate;
use file_orbit::server::{
    API_ROUTES, RateLimit, Role, Server, ServerConfig, hash_api_key, sign_jwt,
};
use file_orbit::service::logs::{self, LogConfig};
use file_orbit::transfer::TransferSpec;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const CANARY: &str = "canary-pw-7Qx9vLr2Zt";

/// The JSON body of `PUT /api/v1/endpoints/{name}`: the endpoint with its real secrets
/// (which only ever go in) plus `max_concurrent`.
fn endpoint_body(endpoint: &Endpoint, secret: Option<&str>) -> Value {
    let mut body = serde_json::to_value(endpoint).unwrap();
    if let Some(secret) = secret {
        body["auth"]["password"] = json!(secret);
    }
    body["max_concurrent"] = json!(2);
    body
}

fn file_request(source: &str, path: &str, destination: &str, max_attempts: u32) -> Value {
    let spec = TransferSpec {
        verify: true,
        ..TransferSpec::file(
            source,
            path,
            destination,
            PathTemplate::parse("out/{filename}").unwrap(),
        )
    };
    let mut request = JobRequest::new(spec);
    request.retry = RetryPolicy {
        max_attempts,
        base_delay_ms: 100,
        max_delay_ms: 200,
    };
    serde_json::to_value(request).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_transfers_events_and_audit_over_http() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(2);
    // This process's logs (every test's) go to a file the server reads.
    let logs_dir = tempfile::tempdir().unwrap();
    config.log = LogConfig {
        dir: Some(logs_dir.path().to_path_buf()),
        level: "info,file_orbit_core=debug".into(),
        ..LogConfig::default()
    };
    logs::init("server", &config.log).unwrap();
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());

    // Endpoints: local source and destination, the real SFTP server, and one with the
    // canary as its (wrong) password.
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    for ep in [&src, &dst] {
        let reply = api
            .put(
                &format!("/api/v1/endpoints/{}", ep.name),
                &keys.admin,
                endpoint_body(ep, None),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let sftp = endpoint(Kind::Sftp, "sftp");
    let sftp_password = common::env("SFTP_PASSWORD");
    let reply = api
        .put(
            "/api/v1/endpoints/sftp",
            &keys.admin,
            endpoint_body(&sftp, Some(&sftp_password)),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let canary = Endpoint {
        name: "canary".into(),
        config: EndpointConfig::Sftp(common::sftp_config("")),
    };
    let reply = api
        .put(
            "/api/v1/endpoints/canary",
            &keys.admin,
            endpoint_body(&canary, Some(CANARY)),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Editing answers 200.
    let reply = api
        .put(
            "/api/v1/endpoints/canary",
            &keys.admin,
            endpoint_body(&canary, Some(CANARY)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["config"]["auth"]["password"], "***");

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
    let reply = api
        .put(
            "/api/v1/endpoints/canary",
            &keys.admin,
            endpoint_body(&canary, None),
        )
        .await;
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

    // Listing and reading show secrets as ***.
    let list = api.get("/api/v1/endpoints", &keys.viewer).await.json();
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
    let one = api.get("/api/v1/endpoints/sftp", &keys.viewer).await.json();
    assert_eq!(one["config"]["auth"]["password"], "***", "{one}");
    assert_eq!(
        api.get("/api/v1/endpoints/nope", &keys.viewer).await.status,
        404
    );

    // Diagnosis through the API.
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

    // A transfer followed live to success.
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "a.txt", "dst", 3)),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_i64().unwrap();
    let events = api.follow(id, &keys.viewer).await;
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "end");
    assert_eq!(last["state"], "succeeded", "{events:?}");
    let updates: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "update")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(updates.last().unwrap()["files"], 1, "{events:?}");
    assert_eq!(
        std::fs::read_to_string(local_root(&dst).join("out/a.txt")).unwrap(),
        "hello over http"
    );
    // SFTP as destination too.
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "a.txt", "sftp", 3)),
        )
        .await;
    let sftp_job = reply.json()["id"].as_i64().unwrap();
    let events = api.follow(sftp_job, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "succeeded", "{events:?}");

    // Invalid submissions name the field.
    let mut bad = file_request("src", "a.txt", "dst", 3);
    bad["retry"]["max_attempts"] = json!(0);
    let reply = api.post("/api/v1/jobs", &keys.operator, Some(bad)).await;
    assert_eq!(
        reply.error(400)["field"],
        "retry.max_attempts",
        "{}",
        reply.body
    );
    let mut bad = file_request("src", "a.txt", "dst", 3);
    bad["surprise"] = json!(true);
    let reply = api.post("/api/v1/jobs", &keys.operator, Some(bad)).await;
    assert_eq!(reply.error(400)["field"], "surprise", "{}", reply.body);

    // A dead job (its source is missing) retried is dead again.
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "missing.txt", "dst", 1)),
        )
        .await;
    let dead = reply.json()["id"].as_i64().unwrap();
    let job = wait_state(&api, &keys.viewer, dead, "dead").await;
    assert!(job["last_error"].is_string(), "{job}");
    let reply = api
        .post(&format!("/api/v1/jobs/{dead}/retry"), &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = api.follow(dead, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "dead", "{events:?}");
    // Retrying a succeeded job conflicts; cancelling one too.
    let reply = api
        .post(&format!("/api/v1/jobs/{id}/retry"), &keys.operator, None)
        .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let reply = api
        .post(&format!("/api/v1/jobs/{id}/cancel"), &keys.operator, None)
        .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        api.get("/api/v1/jobs/999999", &keys.viewer).await.status,
        404
    );
    assert_eq!(
        api.get("/api/v1/jobs/abc", &keys.viewer).await.json()["error"]["field"],
        "id"
    );

    // Listing with filters, validated.
    let dead_jobs = api
        .get("/api/v1/jobs?state=dead", &keys.viewer)
        .await
        .json();
    assert_eq!(dead_jobs.as_array().unwrap().len(), 1, "{dead_jobs}");
    let page = api
        .get("/api/v1/jobs?limit=1&offset=1", &keys.viewer)
        .await
        .json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    for (query, field) in [
        ("state=sleeping", "state"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("colour=red", "colour"),
    ] {
        let reply = api
            .get(&format!("/api/v1/jobs?{query}"), &keys.viewer)
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.json()["error"]["field"], field, "{query}");
    }

    // Templates, then an event made from one, replayed through the API.
    let template = json!({
        "name": "nightly",
        "matcher": {"source": "src", "path_glob": "*.txt"},
        "spec": file_request("src", "a.txt", "dst", 3)["spec"],
    });
    let reply = api
        .put("/api/v1/templates/nightly", &keys.admin, template)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        api.get("/api/v1/templates", &keys.viewer)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ingested = orbit
        .ingest(&IncomingEvent {
            source: "manual".into(),
            dedup_key: None,
            file: None,
            template: Some("nightly".into()),
            payload: json!({"why": "test"}),
        })
        .await
        .unwrap();
    let event_id = ingested.record().id;
    for job in &ingested.record().job_ids {
        wait_state(&api, &keys.viewer, *job, "succeeded").await;
    }
    let events = api.get("/api/v1/events", &keys.viewer).await.json();
    assert_eq!(events[0]["id"], event_id, "{events}");
    let reply = api
        .post(
            &format!("/api/v1/events/{event_id}/replay"),
            &keys.operator,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let replayed = reply.json()["job_ids"][0].as_i64().unwrap();
    let events = api.follow(replayed, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "succeeded", "{events:?}");

    // The audit log, intact.
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

    // Health (in detail, for a viewer) and metrics.
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

    // The log viewer: the failed transfer's lines, by job id.
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

    assert!(server.shutdown().await, "clean shutdown");

    // The canary (and the real SFTP password) never came back in any response, nor went
    // into the log file.
    let mut logged = String::new();
    for entry in std::fs::read_dir(logs_dir.path()).unwrap() {
        logged.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(logged.contains("transfer failed"), "{logged}");
    assert!(!logged.contains(CANARY), "canary logged");
    assert!(!logged.contains(&sftp_password), "password logged");
    let bodies = BODIES.lock().unwrap();
    assert!(bodies.len() > 40);
    for body in bodies.iter() {
        assert!(!body.contains(CANARY), "canary leaked: {body}");
        assert!(!body.contains(&sftp_password), "password leaked: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_needs_credentials_and_the_right_role() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());

    // With no workers a job stays queued: cancel it.
    let src = endpoint(Kind::Local, "src");
    orbit.put_endpoint(&src, 1).await.unwrap();
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "a.txt", "src", 3)),
        )
        .await;
    let queued = reply.json()["id"].as_i64().unwrap();
    let reply = api
        .post(
            &format!("/api/v1/jobs/{queued}/cancel"),
            &keys.operator,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "cancelled");
    let events = api.follow(queued, &keys.viewer).await;
    assert_eq!(events.last().unwrap().1["state"], "cancelled");

    // Method, route pattern, a concrete path, the role it needs.
    let table: &[(&str, &str, &str, Role)] = &[
        ("GET", "/api/v1/endpoints", "", Role::Viewer),
        (
            "GET",
            "/api/v1/endpoints/{name}",
            "/api/v1/endpoints/src",
            Role::Viewer,
        ),
        (
            "PUT",
            "/api/v1/endpoints/{name}",
            "/api/v1/endpoints/src",
            Role::Admin,
        ),
        (
            "DELETE",
            "/api/v1/endpoints/{name}",
            "/api/v1/endpoints/gone",
            Role::Admin,
        ),
        (
            "POST",
            "/api/v1/endpoints/{name}/test",
            "/api/v1/endpoints/src/test",
            Role::Operator,
        ),
        ("GET", "/api/v1/templates", "", Role::Viewer),
        (
            "PUT",
            "/api/v1/templates/{name}",
            "/api/v1/templates/t",
            Role::Admin,
        ),
        (
            "DELETE",
            "/api/v1/templates/{name}",
            "/api/v1/templates/gone",
            Role::Admin,
        ),
        ("GET", "/api/v1/schedules", "", Role::Viewer),
        ("GET", "/api/v1/workers", "", Role::Viewer),
        ("GET", "/api/v1/jobs", "", Role::Viewer),
        ("POST", "/api/v1/jobs", "", Role::Operator),
        ("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/1", Role::Viewer),
        // Job 1 is cancelled: its stream ends at once (before retry queues it again).
        (
            "GET",
            "/api/v1/jobs/{id}/events",
            "/api/v1/jobs/1/events",
            Role::Viewer,
        ),
        (
            "POST",
            "/api/v1/jobs/{id}/cancel",
            "/api/v1/jobs/1/cancel",
            Role::Operator,
        ),
        (
            "POST",
            "/api/v1/jobs/{id}/retry",
            "/api/v1/jobs/1/retry",
            Role::Operator,
        ),
        ("GET", "/api/v1/events", "", Role::Viewer),
        (
            "GET",
            "/api/v1/events/{id}",
            "/api/v1/events/1",
            Role::Viewer,
        ),
        (
            "POST",
            "/api/v1/events/{id}/replay",
            "/api/v1/events/1/replay",
            Role::Operator,
        ),
        ("GET", "/api/v1/keys", "", Role::Admin),
        ("POST", "/api/v1/keys", "", Role::Admin),
        (
            "DELETE",
            "/api/v1/keys/{name}",
            "/api/v1/keys/gone",
            Role::Admin,
        ),
        ("GET", "/api/v1/audit", "", Role::Viewer),
        ("GET", "/api/v1/audit/verify", "", Role::Viewer),
        ("GET", "/metrics", "", Role::Viewer),
        ("GET", "/api/v1/logs", "", Role::Operator),
    ];
    // The server's route table is exactly this one, and so is its OpenAPI document.
    let declared: BTreeSet<(String, String)> = API_ROUTES
        .iter()
        .map(|route| (route.method.to_string(), route.path.to_string()))
        .collect();
    let tested: BTreeSet<(String, String)> = table
        .iter()
        .map(|(method, pattern, _, _)| (method.to_string(), pattern.to_string()))
        .collect();
    assert_eq!(declared, tested, "API_ROUTES and this test's table differ");
    let doc = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200, "{}", doc.body);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            if let Some((_, _, _, role)) =
                table.iter().find(|(m, p, _, _)| *m == method && p == path)
            {
                assert_eq!(operation["x-required-role"], json!(role), "{method} {path}");
            }
            documented.insert((method, path.clone()));
        }
    }
    let mut expected = declared.clone();
    expected.insert(("GET".into(), "/health".into()));
    expected.insert(("GET".into(), "/api/v1/openapi.json".into()));
    assert_eq!(documented, expected, "the OpenAPI document's operations");
    let routes: Vec<(&str, &str, Role)> = table
        .iter()
        .map(|(method, pattern, path, role)| {
            (
                *method,
                if path.is_empty() { *pattern } else { *path },
                *role,
            )
        })
        .collect();
    let jwt = |role: &str| sign_jwt("jwt-test-secret", &json!({"role": role, "sub": "t"}));
    let forged = sign_jwt("wrong-secret", &json!({"role": "admin"}));
    let expired = sign_jwt("jwt-test-secret", &json!({"role": "admin", "exp": 1000}));
    let roles = [
        (Role::Viewer, keys.viewer.clone(), jwt("viewer")),
        (Role::Operator, keys.operator.clone(), jwt("operator")),
        (Role::Admin, keys.admin.clone(), jwt("admin")),
    ];
    for (method, path, needed) in &routes {
        // A body only where the route reads one (an unread body ends keep-alive).
        let body = (*method == "PUT"
            || (*method == "POST" && ["/api/v1/jobs", "/api/v1/keys"].contains(path)))
        .then_some("{}");
        for bad in [
            None,
            Some("fo_not-a-key"),
            Some(forged.as_str()),
            Some(expired.as_str()),
        ] {
            let reply = api.call(method, path, bad, body).await;
            assert_eq!(
                reply.status, 401,
                "{method} {path} with {bad:?}: {}",
                reply.body
            );
            assert_eq!(reply.json()["error"]["kind"], "unauthorized");
        }
        for (role, key, token) in &roles {
            for credential in [key, token] {
                let reply = api.call(method, path, Some(credential), body).await;
                if role < needed {
                    assert_eq!(
                        reply.status, 403,
                        "{method} {path} as {role:?}: {}",
                        reply.body
                    );
                    assert_eq!(reply.json()["error"]["kind"], "forbidden");
                } else {
                    assert!(
                        ![401, 403, 429].contains(&reply.status),
                        "{method} {path} as {role:?}: {} {}",
                        reply.status,
                        reply.body
                    );
                }
            }
        }
    }
    // /health needs nothing; unknown routes are 404 JSON.
    assert_eq!(api.call("GET", "/health", None, None).await.status, 200);
    let reply = api.call("GET", "/api/v1/nope", None, None).await;
    assert_eq!(reply.error(404)["kind"], "not_found", "{}", reply.body);
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_rate_limited_per_key() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(0);
    config.rate_limit = RateLimit {
        per_second: 0.5,
        burst: 5,
    };
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let reply = api.get("/api/v1/jobs", &keys.viewer).await;
        if reply.status == 429 {
            retry_after = reply.retry_after.clone();
            assert_eq!(reply.json()["error"]["kind"], "rate_limited");
        }
        statuses.push(reply.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another key has its own bucket; /health is not limited.
    assert_eq!(api.get("/api/v1/jobs", &keys.operator).await.status, 200);
    for _ in 0..10 {
        assert_eq!(api.call("GET", "/health", None, None).await.status, 200);
    }
    assert!(server.shutdown().await);
}

/// Log lines written on the thread that installed it (a `current_thread` test runs its
/// servers there), kept for a leak check.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn api_keys_are_minted_used_listed_and_revoked_on_every_node() {
    // Both nodes run on this thread: every line they log is captured here.
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let (url, _dir) = sqlite_url();
    let (config, keys) = config_with_keys(0);
    let node_a = Server::start(
        Orbit::open(orbit_options(&url)).await.unwrap(),
        config.clone(),
    )
    .await
    .unwrap();
    let node_b = Server::start(Orbit::open(orbit_options(&url)).await.unwrap(), config)
        .await
        .unwrap();
    let (a, b) = (Api::new(node_a.local_addr()), Api::new(node_b.local_addr()));
    let mint = |name: &str, role: &str| json!({"name": name, "role": role});
    let mut minted = Vec::new();

    // Minted on node A by an admin, shown once; node B takes it, with its role.
    let reply = a
        .post(
            "/api/v1/keys",
            &keys.admin,
            Some(json!({"name": "ci", "role": "operator", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let created = reply.json();
    let ci = created["key"].as_str().unwrap().to_string();
    minted.push(ci.clone());
    assert!(ci.starts_with("fo_") && ci.len() == 67, "{created}");
    assert_eq!(created["role"], "operator", "{created}");
    assert_eq!(created["source"], "store", "{created}");
    let month = 29 * 86_400_000;
    assert!(
        created["expires_at"].as_i64().unwrap() > created["created_at"].as_i64().unwrap() + month,
        "{created}"
    );
    assert_eq!(b.get("/api/v1/jobs", &ci).await.status, 200);
    let reply = b
        .put(
            "/api/v1/endpoints/x",
            &ci,
            json!({"type": "local", "root": "/tmp"}),
        )
        .await;
    assert_eq!(reply.error(403)["kind"], "forbidden");
    // Only admins manage keys; bad requests name their field.
    for key in [&keys.operator, &ci] {
        let reply = a.post("/api/v1/keys", key, Some(mint("x", "viewer"))).await;
        assert_eq!(reply.error(403)["kind"], "forbidden");
    }
    assert_eq!(a.get("/api/v1/keys", &keys.viewer).await.status, 403);
    for (body, field) in [
        (mint("ci", "viewer"), "name"),
        (mint("admin", "viewer"), "name"),
        (mint("a b", "viewer"), "name"),
        (mint("x", "root"), "role"),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "role": "viewer", "key": "fo_mine"}),
            "key",
        ),
    ] {
        let reply = a
            .post("/api/v1/keys", &keys.admin, Some(body.clone()))
            .await;
        assert_eq!(reply.error(400)["field"], field, "{body}: {}", reply.body);
    }

    // Listed on either node with its last use; never the key or its hash.
    let reply = b.get("/api/v1/keys", &keys.admin).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listed = reply.json();
    let listed = listed.as_array().unwrap();
    let entry = listed.iter().find(|key| key["name"] == "ci").unwrap();
    assert_eq!(entry["role"], "operator", "{entry}");
    assert_eq!(entry["created_by"], "key:admin", "{entry}");
    assert_eq!(entry["revoked"], false, "{entry}");
    assert!(entry["last_used_at"].as_i64().is_some(), "{entry}");
    assert!(
        listed
            .iter()
            .any(|key| key["name"] == "viewer" && key["source"] == "config"),
        "{listed:?}"
    );
    assert!(!reply.body.contains(&ci), "{}", reply.body);
    assert!(!reply.body.contains(&hash_api_key(&ci)), "{}", reply.body);

    // Revoked on node A: refused at once on node B; its name can be used again.
    let reply = a
        .call("DELETE", "/api/v1/keys/ci", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let reply = b.get("/api/v1/jobs", &ci).await;
    assert!(
        reply.error(401)["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        reply.body
    );
    let reply = a
        .call("DELETE", "/api/v1/keys/nope", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.error(404)["kind"], "not_found");
    let reply = a
        .call("DELETE", "/api/v1/keys/viewer", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.error(400)["field"], "name", "{}", reply.body);
    let listed = a.get("/api/v1/keys", &keys.admin).await.json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(entry["revoked"], true, "{entry}");
    let reply = a
        .post("/api/v1/keys", &keys.admin, Some(mint("ci", "viewer")))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let ci_again = reply.json()["key"].as_str().unwrap().to_string();
    minted.push(ci_again.clone());
    assert_eq!(b.get("/api/v1/jobs", &ci_again).await.status, 200);
    assert_eq!(b.get("/api/v1/jobs", &ci).await.status, 401);

    // A key minted to expire in two seconds works until then, and is refused after.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let reply = a
        .post(
            "/api/v1/keys",
            &keys.admin,
            Some(json!({"name": "short", "role": "viewer", "expires_at": expires.to_rfc3339()})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let short = reply.json()["key"].as_str().unwrap().to_string();
    minted.push(short.clone());
    assert_eq!(b.get("/api/v1/jobs", &short).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = b.get("/api/v1/jobs", &short).await;
        if reply.status == 401 {
            assert!(chrono::Utc::now() >= expires, "refused before it expired");
            let message = reply.error(401)["message"].as_str().unwrap().to_string();
            assert!(message.contains("expired"), "{message}");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(std::time::Instant::now() < deadline, "still accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = a.get("/api/v1/keys", &keys.admin).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["name"] == "short" && key["expired"] == true),
        "{listed}"
    );

    // Audited under the caller; no key in the audit log or in any log line.
    let reply = a.get("/api/v1/audit?limit=1000", &keys.viewer).await;
    let audit = reply.json();
    let actions: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["subject"] == "api_key/ci")
        .map(|record| {
            (
                record["action"].as_str().unwrap().to_string(),
                record["actor"].as_str().unwrap().to_string(),
                record["detail"]["role"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("api_key.created", "viewer"),
        ("api_key.revoked", ""),
        ("api_key.created", "operator"),
    ]
    .iter()
    .map(|(action, role)| {
        (
            action.to_string(),
            "key:admin".to_string(),
            role.to_string(),
        )
    })
    .collect();
    assert_eq!(actions, expected, "newest first");
    let lines = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(lines.contains("/api/v1/keys"), "no log captured: {lines}");
    for key in &minted {
        assert!(!reply.body.contains(key.as_str()), "{}", reply.body);
        assert!(!reply.body.contains(&hash_api_key(key)), "{}", reply.body);
        assert!(!lines.contains(key.as_str()), "a key was logged");
    }
    assert!(node_a.shutdown().await);
    assert!(node_b.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_rate_limited_per_address() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(0);
    config.failed_auth_limit = RateLimit {
        per_second: 0.5,
        burst: 5,
    };
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
    let forged = sign_jwt("wrong-secret", &json!({"role": "admin"}));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for attempt in 0..12 {
        let credential = match attempt % 3 {
            0 => Some("fo_guessed"),
            1 => Some(forged.as_str()),
            _ => None,
        };
        let reply = api.call("GET", "/api/v1/jobs", credential, None).await;
        if reply.status == 429 {
            retry_after = reply.retry_after.clone();
            assert_eq!(reply.error(429)["kind"], "rate_limited");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 7], "{statuses:?}");
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Callers who authenticate, from the same address, are not affected.
    for key in [&keys.viewer, &keys.operator, &keys.admin] {
        assert_eq!(api.get("/api/v1/jobs", key).await.status, 200);
    }
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_go_in_one_request_each_with_its_id_or_its_own_error() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(0);
    // What a client meets by default: 100 requests at once, then 50 a second; 1 MiB bodies.
    config.rate_limit = RateLimit::default();
    config.max_body_bytes = ServerConfig::default().max_body_bytes;
    config.max_batch_jobs = 300;
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());
    for name in ["src", "dst"] {
        orbit
            .put_endpoint(&endpoint(Kind::Local, name), 1)
            .await
            .unwrap();
    }

    // 300 jobs in one request: 201, each its id, in order; all queued.
    let jobs: Vec<Value> = (0..300)
        .map(|i| file_request("src", &format!("f{i}.txt"), "dst", 3))
        .collect();
    let started = std::time::Instant::now();
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(json!({ "jobs": jobs })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    eprintln!("300 jobs in one request: {:?}", started.elapsed());
    let answers = reply.json()["jobs"].as_array().unwrap().clone();
    let ids: BTreeSet<i64> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| {
            assert_eq!(answer["index"], index, "{answer}");
            answer["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 300);
    let queued = api
        .get("/api/v1/jobs?state=queued&limit=1000", &keys.viewer)
        .await
        .json();
    let queued: BTreeSet<i64> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_i64().unwrap())
        .collect();
    assert_eq!(queued, ids);

    // Bad jobs among good ones: each bad one its own error (index and field); the good
    // ones stored, the same idempotency key twice one job.
    let good = file_request("src", "good.txt", "dst", 3);
    let mut unknown_endpoint = file_request("src", "x.txt", "nowhere", 3);
    unknown_endpoint["next_hops"] = json!([]);
    let mut no_attempts = file_request("src", "y.txt", "dst", 3);
    no_attempts["retry"]["max_attempts"] = json!(0);
    let mut unknown_field = file_request("src", "z.txt", "dst", 3);
    unknown_field["bogus"] = json!(1);
    let mut keyed = file_request("src", "k.txt", "dst", 3);
    keyed["idempotency_key"] = json!("batch-once");
    let mut wrong_type = file_request("src", "w.txt", "dst", 3);
    wrong_type["retry"]["base_delay_ms"] = json!("soon");
    // Above the store's limits, as a single submission would be.
    let mut too_urgent = file_request("src", "u.txt", "dst", 3);
    too_urgent["priority"] = json!(i64::MAX);
    let batch = json!({"jobs": [good, unknown_endpoint, no_attempts, unknown_field, keyed, keyed,
                                wrong_type, 7, too_urgent]});
    let reply = api.post("/api/v1/jobs", &keys.operator, Some(batch)).await;
    assert_eq!(reply.status, 207, "{}", reply.body);
    let answers = reply.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 9, "{answers:?}");
    for (index, field) in [
        (1, "jobs[1].spec.destination"),
        (2, "jobs[2].retry.max_attempts"),
        (3, "jobs[3].bogus"),
        (6, "jobs[6].retry.base_delay_ms"),
        (7, "jobs[7]"),
        (8, "jobs[8].priority"),
    ] {
        let error = &answers[index]["error"];
        assert_eq!(answers[index]["index"], index, "{error}");
        assert_eq!(error["kind"], "invalid_input", "{error}");
        assert_eq!(error["field"], field, "{error}");
        assert!(answers[index]["id"].is_null(), "{error}");
    }
    let stored = answers[0]["id"].as_i64().unwrap();
    assert_eq!(answers[4]["id"], answers[5]["id"], "{answers:?}");
    for id in [stored, answers[4]["id"].as_i64().unwrap()] {
        let job = api.get(&format!("/api/v1/jobs/{id}"), &keys.viewer).await;
        assert_eq!(job.json()["state"], "queued", "{}", job.body);
    }
    let audit = api
        .get("/api/v1/audit?limit=1000", &keys.viewer)
        .await
        .json();
    let submitted = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["action"] == "job.submitted" && record["actor"] == "key:operator")
        .count();
    assert_eq!(submitted, 302, "one record per stored job");

    // The batch itself: at most max_batch_jobs, at least one, only `jobs`.
    let one = file_request("src", "a.txt", "dst", 3);
    for (body, field) in [
        (json!({"jobs": vec![one.clone(); 301]}), "jobs"),
        (json!({"jobs": []}), "jobs"),
        (json!({"jobs": one.clone()}), "jobs"),
        (json!({"jobs": [one.clone()], "priority": 1}), "priority"),
    ] {
        let reply = api.post("/api/v1/jobs", &keys.operator, Some(body)).await;
        assert_eq!(reply.error(400)["field"], field, "{}", reply.body);
    }
    // One job alone is answered as before.
    let reply = api.post("/api/v1/jobs", &keys.operator, Some(one)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(reply.json()["id"].as_i64().is_some(), "{}", reply.body);
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_paths_queries_and_bodies_get_json_errors_naming_the_field() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_wrong_shape_are_never_echoed() {
    const WORDS: &str = "canary-shape-Zq81Lw";
    const DIGITS: i64 = 7_243_987_123_456;
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_batches_on_postgres() {
    let url = postgres_url().await;
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());
    let mint = json!({"name": "pg", "role": "operator", "expires_in_days": 1});
    let reply = api
        .post("/api/v1/keys", &keys.admin, Some(mint.clone()))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let first = reply.json()["key"].as_str().unwrap().to_string();
    let reply = api
        .post("/api/v1/keys", &keys.admin, Some(mint.clone()))
        .await;
    assert_eq!(reply.error(400)["field"], "name", "{}", reply.body);
    for name in ["src", "dst"] {
        orbit
            .put_endpoint(&endpoint(Kind::Local, name), 1)
            .await
            .unwrap();
    }
    let mut keyed = file_request("src", "k.txt", "dst", 3);
    keyed["idempotency_key"] = json!("pg-once");
    let batch = json!({"jobs": [file_request("src", "a.txt", "dst", 3), keyed, keyed]});
    let reply = api.post("/api/v1/jobs", &first, Some(batch)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let answers = reply.json()["jobs"].clone();
    assert_eq!(answers[1]["id"], answers[2]["id"], "{answers}");
    assert_ne!(answers[0]["id"], answers[1]["id"], "{answers}");
    let reply = api
        .call("DELETE", "/api/v1/keys/pg", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(api.get("/api/v1/jobs", &first).await.status, 401);
    let reply = api.post("/api/v1/keys", &keys.admin, Some(mint)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let second = reply.json()["key"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/v1/jobs", &second).await.status, 200);
    let listed = api.get("/api/v1/keys", &keys.admin).await.json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "pg")
        .unwrap()
        .clone();
    assert_eq!(entry["revoked"], false, "{entry}");
    assert!(entry["last_used_at"].as_i64().is_some(), "{entry}");
    assert!(server.shutdown().await);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_smoke() {
    let url = postgres_url().await;
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(1);
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    std::fs::write(local_root(&src).join("a.txt"), "pg").unwrap();
    for ep in [&src, &dst] {
        let reply = api
            .put(
                &format!("/api/v1/endpoints/{}", ep.name),
                &keys.admin,
                endpoint_body(ep, None),
            )
            .await;
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_gets_prompt_answers_and_health_sees_the_store_return() {
    let (relay, url) = relayed_postgres(&postgres_url().await).await;
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(1);
    config.request_timeout_secs = 2;
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_a_running_transfer_finish() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(1);
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    let big: Vec<u8> = (0..96 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(local_root(&src).join("big.bin"), &big).unwrap();
    orbit.put_endpoint(&src, 1).await.unwrap();
    orbit.put_endpoint(&dst, 1).await.unwrap();
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "big.bin", "dst", 1)),
        )
        .await;
    let id = reply.json()["id"].as_i64().unwrap();
    // Shut down once the transfer runs (or, on a very fast machine, has already run).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = orbit.job(id).await.unwrap().state;
        if state != file_orbit::engine::JobState::Queued {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(server.shutdown().await, "stopped within the grace period");
    let job = orbit.job(id).await.unwrap();
    assert_eq!(
        job.state,
        file_orbit::engine::JobState::Succeeded,
        "{job:?}"
    );
    assert_eq!(
        std::fs::metadata(local_root(&dst).join("out/big.bin"))
            .unwrap()
            .len(),
        big.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unavailable_when_a_disk_runs_short() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(0);
    let logs_dir = tempfile::tempdir().unwrap();
    config.log.dir = Some(logs_dir.path().to_path_buf());
    // More free space than any disk has.
    config.min_free_disk_mb = 1 << 40;
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_templates_declared_in_the_config_are_stored_when_changed() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
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

    let config = ServerConfig::from_toml(&text(2, "*.csv")).unwrap();
    let server = Server::start(orbit.clone(), config).await.unwrap();
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
    let config = ServerConfig::from_toml(&text(2, "*.csv")).unwrap();
    let server = Server::start(orbit.clone(), config).await.unwrap();
    assert!(server.shutdown().await);
    assert_eq!(endpoint_changes(orbit.clone()).await.len(), 3);

    // A changed limit and glob: those two are stored again.
    let config = ServerConfig::from_toml(&text(3, "*.txt")).unwrap();
    let server = Server::start(orbit.clone(), config).await.unwrap();
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
async fn shutdown_past_its_grace_releases_the_running_job_to_the_queue() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(1);
    config.shutdown_grace_secs = 1;
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());
    // 4 GiB (sparse) to the SFTP server: far longer than the grace period.
    let src = endpoint(Kind::Local, "src");
    let sftp = endpoint(Kind::Sftp, "sftp");
    let big = std::fs::File::create(local_root(&src).join("big.bin")).unwrap();
    big.set_len(4 << 30).unwrap();
    orbit.put_endpoint(&src, 1).await.unwrap();
    orbit.put_endpoint(&sftp, 1).await.unwrap();
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "big.bin", "sftp", 1)),
        )
        .await;
    let id = reply.json()["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while orbit.job(id).await.unwrap().state != JobState::Leased {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert!(
        !server.shutdown().await,
        "the transfer cannot finish in 1 s"
    );
    let job = orbit.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    assert_eq!((job.attempts, job.max_attempts), (1, 2), "{job:?}");
    let audit = orbit.audit_log(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "job.released" && r.subject == format!("job/{id}")),
        "{audit:?}"
    );
    // Another worker takes it at once (no lease to wait out) and finishes it.
    let worker_orbit = orbit.clone();
    let workers = worker_orbit.start_workers(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while orbit.job(id).await.unwrap().attempts < 2 {
        assert!(std::time::Instant::now() < deadline, "not leased again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!workers.shutdown_within(Duration::ZERO).await);
    assert_eq!(orbit.job(id).await.unwrap().state, JobState::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_templates_are_deleted_and_schedules_listed() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit.clone(), config).await.unwrap();
    let api = Api::new(server.local_addr());
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
    assert!(server.shutdown().await);
}

/// `POST /api/v1/endpoints/{name}/test`: a root the first transfer would create is a
/// warning on an OK diagnosis; `?write_probe=false` (an endpoint only read from) needs the
/// root to exist; any other value of it is a 400 naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_test_warns_of_a_root_the_first_transfer_creates() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (mut config, keys) = config_with_keys(0);
    let logs_dir = tempfile::tempdir().unwrap();
    config.log.dir = Some(logs_dir.path().to_path_buf());
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());

    let root = common::unique("newdir");
    let outbox = Endpoint {
        name: "outbox".into(),
        config: EndpointConfig::Sftp(common::sftp_config(&root)),
    };
    let reply = api
        .put(
            "/api/v1/endpoints/outbox",
            &keys.admin,
            endpoint_body(&outbox, Some(&common::env("SFTP_PASSWORD"))),
        )
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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_details_only_to_authenticated_callers() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(1);
    let outbox = endpoint(Kind::Local, "partner-outbox");
    let root = local_root(&outbox).display().to_string();
    orbit.put_endpoint(&outbox, 1).await.unwrap();
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());

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
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stopped_renewing_runs_nothing() {
    use sqlx::Connection;
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let (config, keys) = config_with_keys(0);
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
    let server = Server::start(orbit, config).await.unwrap();
    let api = Api::new(server.local_addr());

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
    assert!(server.shutdown().await);
}

/// With many finished jobs stored in SQLite, reads of the API (scrapes of `/metrics`, a
/// deep page of `GET /api/v1/jobs`) running back to back do not hold submissions up: the
/// reads run on connections of their own, and a scrape reads the store's totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_do_not_hold_submissions_up_with_many_jobs_stored() {
    use sqlx::Connection;
    const STORED: i64 = 400_000;
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    for name in ["src", "dst"] {
        orbit
            .put_endpoint(&endpoint(Kind::Local, name), 4)
            .await
            .unwrap();
    }
    // The finished jobs (2% dead), with one attempt each, in one statement per table.
    let spec = serde_json::to_string(&file_request("src", "a.txt", "dst", 1)["spec"]).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO jobs (spec, source_endpoint, destination_endpoint, next_hops, priority, \
             state, attempts, max_attempts, backoff_base_ms, backoff_max_ms, run_after, \
             cancel_requested, bytes, files, created_at, updated_at, finished_at) \
         SELECT $2, 'src', 'dst', '[]', 0, CASE WHEN i % 50 = 0 THEN 'dead' ELSE 'succeeded' END, \
             1, 1, 100, 200, $3, 0, 1024, 1, $3 - i, $3, $3 FROM n",
    )
    .bind(STORED)
    .bind(&spec)
    .bind(now)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome) \
         SELECT id, 1, 'w', finished_at - id % 5000, finished_at, \
             CASE WHEN state = 'dead' THEN 'failed' ELSE 'succeeded' END FROM jobs",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (config, keys) = config_with_keys(0);
    let server = Server::start(orbit, config).await.unwrap();
    let api = std::sync::Arc::new(Api::new(server.local_addr()));

    // The totals are right: every stored job counted.
    let metrics = api.get("/metrics", &keys.viewer).await.body;
    for line in [
        format!(
            "file_orbit_transfers_total{{outcome=\"succeeded\"}} {}",
            STORED * 49 / 50
        ),
        format!(
            "file_orbit_transfers_total{{outcome=\"dead\"}} {}",
            STORED / 50
        ),
        format!(
            "file_orbit_attempts_total{{outcome=\"succeeded\"}} {}",
            STORED * 49 / 50
        ),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // Reads back to back: a scrape, then the page before the oldest 100 jobs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (api, stop, key) = (api.clone(), stop.clone(), keys.viewer.clone());
        tokio::spawn(async move {
            let deep = format!("/api/v1/jobs?limit=100&offset={}", STORED - 100);
            let mut pages = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(api.get("/metrics", &key).await.status, 200);
                let asked = std::time::Instant::now();
                assert_eq!(api.get(&deep, &key).await.status, 200);
                pages.push(asked.elapsed());
            }
            pages
        })
    };
    let mut waits = Vec::new();
    for index in 0..20 {
        let request = file_request("src", &format!("in/{index}.txt"), "dst", 1);
        let asked = std::time::Instant::now();
        let reply = api
            .post("/api/v1/jobs", &keys.operator, Some(request))
            .await;
        waits.push(asked.elapsed());
        assert_eq!(reply.status, 201, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut pages = reader.await.unwrap();
    pages.sort();
    waits.sort();
    // A submission that waited for the reads would wait for the rest of a read: one in
    // ten or more would wait longer than half a deep page (which scans the jobs).
    let page = pages[pages.len() / 2];
    let wait = waits[waits.len() * 9 / 10];
    assert!(
        wait < page / 2,
        "submissions waited {waits:?} beside reads of a deep page taking {pages:?}"
    );
    assert!(server.shutdown().await);
}
