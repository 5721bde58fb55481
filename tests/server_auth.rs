//! The REST server's authentication over real HTTP on loopback (feature `server`): every
//! route needs credentials and the right role (API keys and JWTs), rate limits per key and
//! for failed authentication per address, and managed API keys on every node.

mod common;

use common::server::*;
use common::{Kind, endpoint, postgres_url};
use file_orbit::server::{API_ROUTES, RateLimit, Role, hash_api_key, sign_jwt};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_needs_credentials_and_the_right_role() {
    let mut ts = TestServer::start(0).await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());

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
        (
            "GET",
            "/api/v1/endpoints/{name}/files",
            "/api/v1/endpoints/src/files",
            Role::Operator,
        ),
        ("POST", "/api/v1/paths/preview", "", Role::Viewer),
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
        ("GET", "/api/v1/sources", "", Role::Viewer),
        (
            "GET",
            "/api/v1/sources/{name}",
            "/api/v1/sources/s",
            Role::Viewer,
        ),
        (
            "PUT",
            "/api/v1/sources/{name}",
            "/api/v1/sources/s",
            Role::Admin,
        ),
        (
            "DELETE",
            "/api/v1/sources/{name}",
            "/api/v1/sources/gone",
            Role::Admin,
        ),
        (
            "POST",
            "/api/v1/sources/{name}/pause",
            "/api/v1/sources/s/pause",
            Role::Operator,
        ),
        (
            "POST",
            "/api/v1/sources/{name}/resume",
            "/api/v1/sources/s/resume",
            Role::Operator,
        ),
        ("GET", "/api/v1/notifications", "", Role::Viewer),
        (
            "GET",
            "/api/v1/notifications/{name}",
            "/api/v1/notifications/n",
            Role::Viewer,
        ),
        (
            "PUT",
            "/api/v1/notifications/{name}",
            "/api/v1/notifications/n",
            Role::Admin,
        ),
        (
            "DELETE",
            "/api/v1/notifications/{name}",
            "/api/v1/notifications/gone",
            Role::Admin,
        ),
        (
            "POST",
            "/api/v1/notifications/{name}/test",
            "/api/v1/notifications/gone/test",
            Role::Operator,
        ),
        ("GET", "/api/v1/outbox", "", Role::Viewer),
        (
            "POST",
            "/api/v1/outbox/{id}/retry",
            "/api/v1/outbox/1/retry",
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
        ("GET", "/api/v1/agents", "", Role::Viewer),
        ("POST", "/api/v1/agents", "", Role::Admin),
        (
            "GET",
            "/api/v1/agents/{name}",
            "/api/v1/agents/gone",
            Role::Viewer,
        ),
        (
            "DELETE",
            "/api/v1/agents/{name}",
            "/api/v1/agents/gone",
            Role::Admin,
        ),
        ("GET", "/api/v1/audit", "", Role::Viewer),
        ("GET", "/api/v1/audit/verify", "", Role::Viewer),
        ("GET", "/api/v1/audit/export", "", Role::Viewer),
        ("GET", "/api/v1/dashboard", "", Role::Viewer),
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
            || (*method == "POST"
                && ["/api/v1/jobs", "/api/v1/keys", "/api/v1/agents"].contains(path)))
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
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_rate_limited_per_key() {
    let mut setup = TestServer::setup(0);
    setup.config.rate_limit = RateLimit {
        per_second: 0.5,
        burst: 5,
    };
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
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
    assert!(ts.shutdown().await);
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
    let mut node_a = TestServer::start(0).await;
    let mut node_b = node_a.another_node().start().await;
    let (a, b, keys) = (&node_a.api, &node_b.api, &node_a.keys);
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
    let mut setup = TestServer::setup(0);
    setup.config.failed_auth_limit = RateLimit {
        per_second: 0.5,
        burst: 5,
    };
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
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
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_batches_on_postgres() {
    let mut ts = TestServer::setup_on(&postgres_url().await, 0).start().await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
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
    assert!(ts.shutdown().await);
}
