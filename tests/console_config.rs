//! The console's configuration pages and dashboard over real HTTP (feature `server`):
//! templates with their schedule's ticks, sources, notifications with the outbox, workers
//! and API keys render what the API stored, a name like `<img src=x onerror=alert(1)>`
//! shows as text, a viewer sees no control that changes anything, an operator only
//! those of operators, no secret (canaries) reaches a page, a new key is shown only in
//! the API's answer, and the dashboard counts the queue, shows a running transfer with
//! its live bar and charts the last hour.

mod common;

use common::encode;

use common::api::{Reply, wait_state};
use common::console::Console;
use common::server::{TestServer, file_request};
use common::{Kind, endpoint, local_root, until};
use serde_json::json;
use std::time::Duration;

const XSS: &str = "<img src=x onerror=alert(1)>";
const XSS_ESCAPED: &str = "&lt;img src=x onerror=alert(1)&gt;";
/// Secrets that must never appear in a page.
const SOURCE_SECRET: &str = "canary-sqs-secret-Hx81Kq";
const SIGNING_KEY: &str = "canary-signing-key-Pz42Wm";
const SLACK_PATH: &str = "canary-slack-T000-B000-Vn73Rd";

fn created(reply: &Reply) {
    assert!(
        reply.status == 200 || reply.status == 201,
        "{}: {}",
        reply.status,
        reply.body
    );
}

/// Asserts `html` holds the escaped test name and never the markup itself.
fn escapes_the_name(html: &str, page: &str) {
    assert!(html.contains(XSS_ESCAPED), "{page} lacks the name: {html}");
    assert!(
        !html.contains("<img"),
        "{page} holds markup from a name: {html}"
    );
}

fn no_secret(html: &str, page: &str) {
    for secret in [SOURCE_SECRET, SIGNING_KEY, SLACK_PATH] {
        assert!(!html.contains(secret), "{page} shows a secret: {html}");
    }
}

/// A page's HTML, with the `/` the template engine escapes in values as `&#x2f;` read
/// back (as a browser does) so that paths compare as written.
async fn page(console: &Console, path: &str) -> String {
    let reply = console.page(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.body.replace("&#x2f;", "/")
}

/// A server (one worker, notifications to loopback allowed) with local endpoints `src`
/// (holding `a.txt`) and `dst` and the S3 endpoint `s3in` on moto.
async fn server() -> TestServer {
    let mut setup = TestServer::setup(1);
    setup.options.notify_allow = vec!["127.0.0.1".into()];
    setup.config.notifier.allow = vec!["127.0.0.1".into()];
    let ts = setup.start().await;
    let src = endpoint(Kind::Local, "src");
    std::fs::write(
        local_root(&src).join("a.txt"),
        "hello from the console test",
    )
    .unwrap();
    for ep in [&src, &endpoint(Kind::Local, "dst")] {
        assert_eq!(ts.put_endpoint(ep, None).await.status, 201);
    }
    ts.orbit
        .put_endpoint(&endpoint(Kind::S3, "s3in"), 2)
        .await
        .unwrap();
    ts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_pages_show_what_is_stored_escaped_by_role_and_without_secrets() {
    let ts = server().await;
    let (api, keys) = (&ts.api, &ts.keys);

    // A template with a schedule, named like markup.
    let template = json!({
        "name": XSS,
        "matcher": {"source": "src", "path_glob": "*.txt"},
        "spec": file_request("src", "a.txt", "dst", 3)["spec"],
        "schedule": {"cron": "0 0 3 * * *", "missed": "run_once"},
    });
    let path = format!("/api/v1/templates/{}", encode(XSS));
    created(&api.put(&path, &keys.admin, template).await);
    let schedules = api.get("/api/v1/schedules", &keys.viewer).await.json();
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(schedules[0]["next_fire_at"].clone()).unwrap();
    let next = next.format("%Y-%m-%d %H:%M:%S UTC").to_string();

    // A paused SQS source with a secret, named like markup; a running folder watch.
    let moto = common::env("MOTO_ENDPOINT");
    let sqs = json!({"kind": "sqs", "enabled": false, "spec": {
        "queue_url": format!("{moto}/123456789012/console-q"),
        "region": common::env("MOTO_REGION"),
        "endpoint_url": moto,
        "endpoint": "s3in",
        "access_key_id": "AKIDCONSOLETEST",
        "secret_access_key": SOURCE_SECRET,
    }});
    let path = format!("/api/v1/sources/{}", encode(XSS));
    created(&api.put(&path, &keys.admin, sqs).await);
    let watch = json!({"kind": "local_watch", "spec": {"endpoint": "src", "stable_for_ms": 0}});
    created(&api.put("/api/v1/sources/watch", &keys.admin, watch).await);

    // Notifications: Slack (its URL is the secret) named like markup, and a webhook with a
    // signing key whose one try at a dead job's message fails (nothing listens).
    let slack = json!({"channel": {"type": "slack",
        "webhook_url": format!("http://127.0.0.1:9/services/{SLACK_PATH}")},
        "events": ["job_dead"], "filter": {"templates": ["nightly"]}});
    let path = format!("/api/v1/notifications/{}", encode(XSS));
    created(&api.put(&path, &keys.admin, slack).await);
    let hook = json!({"channel": {"type": "webhook", "url": "http://127.0.0.1:9/hook",
        "signing_key": SIGNING_KEY}, "events": ["job_dead"], "max_attempts": 1,
        "rate_limit": {"messages": 5, "per_secs": 60}});
    created(
        &api.put("/api/v1/notifications/hook", &keys.admin, hook)
            .await,
    );
    let dead_job = ts
        .submit(file_request("src", "missing.txt", "dst", 1))
        .await;
    wait_state(api, &keys.viewer, dead_job, "dead").await;
    let dead_message = until(
        "a dead outbox message",
        Duration::from_secs(60),
        async || {
            let outbox = api
                .get("/api/v1/outbox?notification=hook&state=dead", &keys.viewer)
                .await
                .json();
            outbox[0]["id"].as_i64()
        },
    )
    .await;

    // A managed key; its value is only in the API's answer.
    let minted = api
        .post(
            "/api/v1/keys",
            &keys.admin,
            Some(json!({"name": "ci-bot", "role": "operator", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.body);
    let minted_key = minted.json()["key"].as_str().unwrap().to_string();

    let admin = Console::sign_in(ts.addr(), &keys.admin).await;
    let operator = Console::sign_in(ts.addr(), &keys.operator).await;
    let viewer = Console::sign_in(ts.addr(), &keys.viewer).await;

    // Templates: the name as text, the matcher and transfer, the next tick, the policy.
    let html = page(&admin, "/ui/templates").await;
    escapes_the_name(&html, "templates");
    for shown in [
        "*.txt",
        "0 0 3 * * *",
        "missed ticks: run once",
        next.as_str(),
        "never",
    ] {
        assert!(html.contains(shown), "templates lacks {shown:?}: {html}");
    }
    assert!(html.contains(&format!(
        "data-api=\"DELETE /api/v1/templates/{}\"",
        encode(XSS)
    )));
    assert!(html.contains("data-api=\"PUT /api/v1/templates/{name}\""));
    assert!(html.contains("data-kind=\"json\""));

    // Sources: state, owner, counters; Pause for the running one, Resume for the paused.
    let html = page(&admin, "/ui/sources").await;
    escapes_the_name(&html, "sources");
    assert!(html.contains(">paused<"), "{html}");
    assert!(html.contains("data-api=\"POST /api/v1/sources/watch/pause\""));
    assert!(html.contains(&format!(
        "data-api=\"POST /api/v1/sources/{}/resume\"",
        encode(XSS)
    )));
    assert!(html.contains("set (write-only)"), "{html}");
    assert!(html.contains("AKIDCONSOLETEST"));

    // Notifications: channel with secrets as set, events, filters, rate limit, outbox.
    let html = page(&admin, "/ui/notifications").await;
    escapes_the_name(&html, "notifications");
    for shown in [
        "slack",
        "webhook",
        "job_dead",
        "templates: nightly",
        "5 per 60 s",
        "http://127.0.0.1:9/hook",
        "Send test",
    ] {
        assert!(
            html.contains(shown),
            "notifications lacks {shown:?}: {html}"
        );
    }
    let retry = format!("data-api=\"POST /api/v1/outbox/{dead_message}/retry\"");
    assert!(html.contains(&retry), "{html}");

    // Workers: this server's one worker, live.
    let html = page(&viewer, "/ui/workers").await;
    let workers = api.get("/api/v1/workers", &keys.viewer).await.json();
    let worker = workers[0]["id"].as_str().unwrap();
    assert!(html.contains(worker), "{html}");
    assert!(html.contains(">live<"), "{html}");

    // Keys: the configuration's by name, the managed one with its creator; never a key.
    let html = page(&admin, "/ui/keys").await;
    for shown in [
        "ci-bot",
        "key:admin",
        "in the configuration file",
        "viewer",
        "Revoke",
    ] {
        assert!(html.contains(shown), "keys lacks {shown:?}: {html}");
    }
    assert!(html.contains("id=\"new-key\""));
    assert!(html.contains("it will not be shown again"));
    assert!(html.contains("data-api=\"DELETE /api/v1/keys/ci-bot\""));
    assert!(!html.contains(&minted_key), "the keys page shows a key");
    for key in [&keys.admin, &keys.operator, &keys.viewer] {
        assert!(!html.contains(key.as_str()));
    }
    for entry in &ts.config.api_keys {
        assert!(!html.contains(&entry.sha256), "the keys page shows a hash");
    }

    // No page shows a secret, whoever looks.
    for console in [&admin, &operator, &viewer] {
        for path in [
            "/ui/templates",
            "/ui/sources",
            "/ui/notifications",
            "/ui/workers",
            "/ui/",
        ] {
            let html = page(console, path).await;
            no_secret(&html, path);
            assert!(!html.contains(&minted_key), "{path} shows a key");
        }
    }

    // A viewer sees no control that changes anything, and not the keys page.
    for path in [
        "/ui/templates",
        "/ui/sources",
        "/ui/notifications",
        "/ui/workers",
    ] {
        let html = page(&viewer, path).await;
        assert!(
            !html.contains("data-api="),
            "{path} has controls for a viewer: {html}"
        );
        for control in [
            "Pause",
            "Resume",
            "Send test",
            "Retry",
            "Delete",
            "Revoke",
            "<textarea",
        ] {
            assert!(
                !html.contains(control),
                "{path} shows {control:?} to a viewer"
            );
        }
    }
    assert_eq!(viewer.page("/ui/keys").await.status, 403);
    assert_eq!(operator.page("/ui/keys").await.status, 403);

    // An operator pauses, resumes, tests and retries; edits and deletes are an admin's.
    let html = page(&operator, "/ui/sources").await;
    assert!(html.contains("/pause\""), "{html}");
    assert!(
        !html.contains("Delete") && !html.contains("<textarea"),
        "{html}"
    );
    let html = page(&operator, "/ui/notifications").await;
    assert!(
        html.contains("Send test") && html.contains(&retry),
        "{html}"
    );
    assert!(
        !html.contains("Delete") && !html.contains("<textarea"),
        "{html}"
    );
    let html = page(&operator, "/ui/templates").await;
    assert!(!html.contains("data-api="), "{html}");

    // After a revocation the key shows as revoked, still never its value.
    let revoked = admin.api("DELETE", "/api/v1/keys/ci-bot", None, true).await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let html = page(&admin, "/ui/keys").await;
    assert!(html.contains(">revoked"), "{html}");
    assert!(!html.contains("data-api=\"DELETE /api/v1/keys/ci-bot\""));
    assert!(!html.contains(&minted_key));
}

/// The number of the first `<span class="stat">` after `marker`.
fn stat_after(html: &str, marker: &str) -> i64 {
    const STAT: &str = "<span class=\"stat\">";
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker}: {html}"));
    let start = at + html[at..].find(STAT).unwrap() + STAT.len();
    let end = start + html[start..].find('<').unwrap();
    html[start..end].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_the_queue_and_charts_the_last_hour() {
    let ts = server().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let mut succeeded = Vec::new();
    for _ in 0..2 {
        succeeded.push(ts.submit(file_request("src", "a.txt", "dst", 3)).await);
    }
    let dead = ts
        .submit(file_request("src", "missing.txt", "dst", 1))
        .await;
    for id in &succeeded {
        wait_state(api, &keys.viewer, *id, "succeeded").await;
    }
    wait_state(api, &keys.viewer, dead, "dead").await;

    let viewer = Console::sign_in(ts.addr(), &keys.viewer).await;
    let html = page(&viewer, "/ui/").await;
    assert_eq!(
        stat_after(&html, "data-queue-state=\"succeeded\""),
        2,
        "{html}"
    );
    assert_eq!(stat_after(&html, "data-queue-state=\"dead\""), 1);
    assert_eq!(stat_after(&html, "data-queue-state=\"queued\""), 0);
    assert!(html.contains("id=\"dead-day\">1<"), "{html}");
    assert!(html.contains("id=\"failures-day\">1<"), "{html}");
    assert!(html.contains("id=\"workers-up\">1<"), "{html}");
    assert!(html.contains(&format!("href=\"/ui/jobs/{dead}\"")));
    assert!(html.contains("Nothing is running."));

    // The chart: one bar a minute, drawn by the server; the two jobs in its titles.
    let chart_start = html.find("<svg class=\"chart\"").expect("a chart");
    let chart = &html[chart_start..chart_start + html[chart_start..].find("</svg>").unwrap()];
    assert_eq!(chart.matches("<rect ").count(), 60, "{chart}");
    assert_eq!(chart.matches("<title>").count(), 60);
    let jobs: i64 = chart
        .split("<title>")
        .skip(1)
        .map(|title| {
            let count = title.split(" (").nth(1).unwrap();
            count.split(' ').next().unwrap().parse::<i64>().unwrap()
        })
        .sum();
    assert_eq!(jobs, 2, "{chart}");
    let tall = chart.matches("height=\"").count() - chart.matches("height=\"0\"").count();
    assert!(tall >= 1, "no bar shows the jobs: {chart}");

    // The CSP holds: no inline script or style anywhere on the page.
    assert!(!html.contains("style="), "{html}");
    for script in html.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src="),
            "an inline script: {html}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_transfer_shows_on_the_dashboard_with_a_live_bar() {
    let ts = server().await;
    let (api, keys) = (&ts.api, &ts.keys);
    // 8 MiB from an endpoint limited to 1 MiB/s: several seconds of running.
    let slow = endpoint(Kind::Local, "slow");
    std::fs::write(local_root(&slow).join("big.bin"), vec![7u8; 8 << 20]).unwrap();
    let mut body = common::server::endpoint_body(&slow, None);
    body["bandwidth"] = json!("1M");
    created(&api.put("/api/v1/endpoints/slow", &keys.admin, body).await);
    let id = ts.submit(file_request("slow", "big.bin", "dst", 1)).await;
    common::api::job_until(api, &keys.viewer, id, "reported progress", |job| {
        job["state"] == "leased" && job["progress"]["bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;

    let viewer = Console::sign_in(ts.addr(), &keys.viewer).await;
    let html = page(&viewer, "/ui/").await;
    let job = api
        .get(&format!("/api/v1/jobs/{id}"), &keys.viewer)
        .await
        .json();
    // Still running after the page was read: it was running while the page was made.
    assert_eq!(job["state"], "leased", "the job ended too soon: {job}");
    assert_eq!(
        stat_after(&html, "data-queue-state=\"leased\""),
        1,
        "{html}"
    );
    assert!(
        html.contains(&format!("data-job-progress=\"{id}\"")),
        "{html}"
    );
    assert!(html.contains("<progress max=\"100\" value=\""), "{html}");
    assert!(html.contains("slow → dst"), "{html}");
    assert!(!html.contains("Nothing is running."));
    // The page's script reloads it when the bar's job ends.
    let script = page(&viewer, "/ui/assets/dashboard.js").await;
    assert!(script.contains("fo:job-end"), "{script}");
    wait_state(api, &keys.viewer, id, "succeeded").await;
}
