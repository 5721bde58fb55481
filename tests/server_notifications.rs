//! Notifications through the REST server (feature `server`): created, listed, tested and
//! deleted by their roles; bad ones refused naming the field (a bad address, an unknown
//! event, a bad URL, a host outside the allow-list, an address the URL standard hides, a
//! name that resolves to the metadata address); and, with the server as a process killed
//! with SIGKILL between a job's failure and the send, the message delivered exactly once
//! after the restart, with the canary secrets in no answer, log, metric or body.

mod common;

use common::process::ServerProcess;
use common::receivers::{self, SIGNING_KEY, accepted, allow, control, mails, refused};
use common::server::*;
use common::{env, unique, until};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn put(ts: &TestServer, key: &str, name: &str, body: Value) -> common::api::Reply {
    ts.api
        .put(&format!("/api/v1/notifications/{name}"), key, body)
        .await
}

fn webhook_body(name: &str) -> Value {
    json!({"channel": {"type": "webhook", "url": format!("{}/webhook/{name}", receivers::base()),
                       "signing_key": SIGNING_KEY},
           "events": ["job_dead"]})
}

async fn server() -> TestServer {
    let mut setup = TestServer::setup(1);
    setup.options.notify_allow = allow();
    setup.config.notifier.allow = allow();
    setup.start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_managed_by_role_and_tested_for_real() {
    let ts = server().await;
    let name = unique("ops");
    receivers::fresh(&name);
    let body = webhook_body(&name);
    assert_eq!(
        put(&ts, &ts.keys.operator, &name, body.clone())
            .await
            .status,
        403
    );
    let created = put(&ts, &ts.keys.admin, &name, body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let summary = created.json();
    assert_eq!(summary["channel"]["signing_key"], "***", "{summary}");
    assert_eq!(summary["rule"]["events"], json!(["job_dead"]));
    assert_eq!(put(&ts, &ts.keys.admin, &name, body).await.status, 200);
    let listed = ts
        .api
        .get("/api/v1/notifications", &ts.keys.viewer)
        .await
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == name.as_str())
    );

    // A test message goes out at once and the receiver's answer comes back.
    let path = format!("/api/v1/notifications/{name}/test");
    assert_eq!(ts.api.post(&path, &ts.keys.viewer, None).await.status, 403);
    let answer = ts.api.post(&path, &ts.keys.operator, None).await.json();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["answer"], "HTTP 200 OK", "{answer}");
    let got = accepted(&name);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["json"]["test"], true);
    // A receiver that is down: the test says so, in words.
    control(&name, json!({"mode": "down"}));
    let answer = ts.api.post(&path, &ts.keys.operator, None).await.json();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("503"),
        "{answer}"
    );
    let audit = ts
        .api
        .get("/api/v1/audit?limit=100", &ts.keys.viewer)
        .await
        .json();
    let tests: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["action"] == "notification.tested")
        .collect();
    assert_eq!(tests.len(), 2, "{audit}");

    let deleted = ts
        .api
        .call(
            "DELETE",
            &format!("/api/v1/notifications/{name}"),
            Some(&ts.keys.admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let gone = ts
        .api
        .get(&format!("/api/v1/notifications/{name}"), &ts.keys.viewer)
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifications_are_refused_naming_the_field() {
    let ts = server().await;
    let hook = |url: &str| {
        json!({"channel": {"type": "webhook", "url": url, "signing_key": SIGNING_KEY},
               "events": ["job_dead"]})
    };
    let mail = |to: &str| {
        json!({"channel": {"type": "email", "host": "127.0.0.1", "port": 2525,
                           "from": "orbit@orbit.test", "to": [to]},
               "events": ["job_dead"]})
    };
    let local = format!("{}/webhook/x", receivers::base());
    let cases = [
        (
            mail("not an address"),
            "channel.to[0]",
            "not a mail address",
        ),
        (
            json!({"channel": {"type": "webhook", "url": local, "signing_key": SIGNING_KEY},
                   "events": ["job_exploded"]}),
            "events[0]",
            "unknown variant",
        ),
        (hook("not a url"), "channel.url", "not a URL"),
        (hook("ftp://127.0.0.1/x"), "channel.url", "http or https"),
        (
            hook("http://10.1.2.3/hook"),
            "channel.url",
            "notifier.allow",
        ),
        (
            hook("http://169.254.169.254/latest"),
            "channel.url",
            "notifier.allow",
        ),
        // The URL standard reads these as 169.254.169.254 and ::ffff:169.254.169.254.
        (hook("http://2852039166/"), "channel.url", "notifier.allow"),
        (
            hook("http://[::ffff:a9fe:a9fe]/"),
            "channel.url",
            "notifier.allow",
        ),
        (
            hook("http://localhost:5080/"),
            "channel.url",
            "notifier.allow",
        ),
        (
            json!({"channel": {"type": "webhook", "url": local, "signing_key": "short"},
                   "events": ["job_dead"]}),
            "channel.signing_key",
            "16",
        ),
        (
            json!({"channel": {"type": "pager", "url": local}, "events": ["job_dead"]}),
            "channel.type",
            "unknown type",
        ),
        (
            json!({"channel": {"type": "webhook", "url": local, "signing_key": SIGNING_KEY},
                   "events": ["job_dead"], "rate_limit": {"messages": 0}}),
            "rate_limit.messages",
            "1 to 1000",
        ),
        (
            json!({"channel": {"type": "slack", "webhook_url": "***"}, "events": ["job_dead"]}),
            "channel.webhook_url",
            "***",
        ),
    ];
    for (body, field, words) in cases {
        let reply = put(&ts, &ts.keys.admin, "bad", body.clone()).await;
        let error = reply.error(400);
        assert_eq!(error["field"], field, "{body}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(words),
            "{body}: {error} should say {words:?}"
        );
    }
    let none = ts
        .api
        .get("/api/v1/notifications", &ts.keys.viewer)
        .await
        .json();
    assert_eq!(none, json!([]), "nothing bad was stored");
}

/// The server's configuration: the receivers allowed, quick tries, a webhook (signing key
/// from the environment) and a mail channel (password from the environment) on job_dead.
fn process_config(hook: &str, to: &str) -> String {
    format!(
        r#"workers = 1

[notifier]
allow = ["127.0.0.1", "meta.orbit.test"]
check_ms = 50
first_retry_ms = 200
max_retry_secs = 1

[[notifications]]
name = "hook"
events = ["job_dead"]
channel = {{ type = "webhook", url = "{base}/webhook/{hook}", signing_key = {{ env = "FO_TEST_SIGNING_KEY" }} }}

[[notifications]]
name = "mail"
events = ["job_dead"]
channel = {{ type = "email", host = "{smtp}", port = {port}, username = "{user}", password = {{ env = "FO_TEST_SMTP_PASSWORD" }}, from = "orbit@orbit.test", to = ["{to}"], ca_file = "{ca}" }}
"#,
        base = receivers::base(),
        smtp = env("SMTP_HOST"),
        port = env("SMTP_PORT"),
        user = env("SMTP_USER"),
        ca = env("NOTIFY_CA"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_survives_a_sigkill_before_its_send_and_goes_out_once() {
    let data = tempfile::tempdir().unwrap();
    let hosts = data.path().join("hosts");
    std::fs::write(&hosts, "169.254.169.254 meta.orbit.test\n").unwrap();
    let (hook, to) = (unique("crash"), format!("{}@orbit.test", unique("crash")));
    control(&hook, json!({"mode": "down"}));
    let smtp_password = env("SMTP_PASSWORD");
    let nss = env("NSS_WRAPPER");
    let vars = [
        ("FO_TEST_SIGNING_KEY", SIGNING_KEY),
        ("FO_TEST_SMTP_PASSWORD", smtp_password.as_str()),
        // Test-only name resolution: meta.orbit.test is 169.254.169.254.
        ("LD_PRELOAD", nss.as_str()),
        ("NSS_WRAPPER_HOSTS", hosts.to_str().unwrap()),
    ];
    let config = process_config(&hook, &to);
    let mut server = ServerProcess::start(data.path(), &config, &vars);
    let admin = server.admin.clone();

    // A name the allow-list lists but that resolves to the metadata address is refused.
    let meta = server
        .api
        .put(
            "/api/v1/notifications/meta",
            &admin,
            json!({"channel": {"type": "webhook", "url": "http://meta.orbit.test/x",
                               "signing_key": SIGNING_KEY}, "events": ["job_dead"]}),
        )
        .await
        .error(400);
    assert_eq!(meta["field"], "channel.url", "{meta}");
    assert!(
        meta["message"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254"),
        "{meta}"
    );

    let source = common::endpoint(common::Kind::Local, "in");
    let put = |endpoint: &file_orbit::endpoint::Endpoint| {
        let body = endpoint_body(endpoint, None);
        let path = format!("/api/v1/endpoints/{}", endpoint.name);
        (path, body)
    };
    for endpoint in [source, common::endpoint(common::Kind::Local, "out")] {
        let (path, body) = put(&endpoint);
        assert_eq!(server.api.put(&path, &admin, body).await.status, 201);
    }
    let reply = server
        .api
        .post(
            "/api/v1/jobs",
            &admin,
            Some(file_request("in", "missing.txt", "out", 1)),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_i64().unwrap();
    // The job is dead and its message tried (and refused): kill the server before it sends.
    until("a refused try", WAIT, async || {
        (!refused(&hook).is_empty()).then_some(())
    })
    .await;
    let message_id = refused(&hook)[0]["id"].as_str().unwrap().to_string();
    server.kill();
    control(&hook, json!({"mode": "up"}));
    let mut server = ServerProcess::start(data.path(), &config, &vars);
    let admin = server.admin.clone();

    let got = until("the message after the restart", WAIT, async || {
        let got = accepted(&hook);
        (!got.is_empty()).then_some(got)
    })
    .await;
    let outbox = until("the outbox to say sent", WAIT, async || {
        let outbox = server
            .api
            .get("/api/v1/outbox?notification=hook", &admin)
            .await
            .json();
        (outbox[0]["state"] == "sent").then_some(outbox)
    })
    .await;
    assert_eq!(outbox.as_array().unwrap().len(), 1, "{outbox}");
    let got_now = accepted(&hook);
    assert_eq!(got_now.len(), 1, "exactly once: {got_now:?}");
    assert_eq!(got[0]["id"], message_id.as_str());
    assert_eq!(got[0]["json"]["items"][0]["job"]["id"], id);
    let mail = until("the mail", WAIT, async || mails(&to).pop()).await;
    assert_eq!(mails(&to).len(), 1);

    // Metrics count by channel.
    let metrics = server.api.get("/metrics", &admin).await.body;
    assert!(
        metrics.contains(
            "file_orbit_notification_messages_total{channel=\"webhook\",outcome=\"sent\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"failed\""), "{metrics}");

    // The canaries: in no answer, log line, metric, audit record or body sent.
    let mut seen = vec![
        server.api.get("/api/v1/notifications", &admin).await.body,
        server
            .api
            .get("/api/v1/notifications/mail", &admin)
            .await
            .body,
        server
            .api
            .get("/api/v1/notifications/hook", &admin)
            .await
            .body,
        server.api.get("/api/v1/outbox", &admin).await.body,
        server
            .api
            .get("/api/v1/audit?limit=1000", &admin)
            .await
            .body,
        metrics,
        server.log_text(),
        mail.to_string(),
        serde_json::to_string(&accepted(&hook)).unwrap(),
        serde_json::to_string(&refused(&hook)).unwrap(),
    ];
    server.kill();
    seen.push(server.log_text());
    for text in &seen {
        for canary in [SIGNING_KEY, smtp_password.as_str()] {
            assert!(!text.contains(canary), "a canary leaked into: {text}");
        }
    }
}
