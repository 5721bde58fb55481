//! The API routes the web console uses, over real HTTP on loopback (feature `server`):
//! one folder of a local and an SFTP endpoint listed (order, sizes, truncation, refused
//! paths, a wrong password's kind), destination templates previewed, the audit log
//! filtered and exported as CSV and JSON (quoting, time range, endpoint, auth), and the
//! dashboard following real jobs.

mod common;

use common::encode;

use common::server::*;
use common::{Kind, endpoint, env, local_root, postgres_url, rclone};
use file_orbit::rclone::methods::Fs;
use file_orbit::server::sign_jwt;
use serde_json::{Value, json};
use std::time::Duration;

const XSS: &str = "<img src=x onerror=alert(1)>.txt";

/// A local folder with two subfolders and three files (one of them named like markup).
fn fill(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("zeta")).unwrap();
    std::fs::create_dir_all(root.join("alpha")).unwrap();
    std::fs::write(root.join("alpha/inner.txt"), "inner").unwrap();
    std::fs::write(root.join("b.txt"), "bee").unwrap();
    std::fs::write(root.join(XSS), "<script>").unwrap();
}

/// The names, kinds and sizes of a listing's entries.
fn entries(listing: &Value) -> Vec<(String, bool, Option<u64>)> {
    listing["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {listing}"))
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["is_dir"].as_bool().unwrap(),
                e["size"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_of_local_and_sftp_endpoints_are_listed() {
    let mut ts = TestServer::start(0).await;
    let (src, _) = put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
    fill(&local_root(&src));
    let expected = vec![
        ("alpha".to_string(), true, None),
        ("zeta".to_string(), true, None),
        (XSS.to_string(), false, Some(8)),
        ("a.txt".to_string(), false, Some(15)),
        ("b.txt".to_string(), false, Some(3)),
    ];

    let reply = api.get("/api/v1/endpoints/src/files", &keys.operator).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listing = reply.json();
    assert_eq!(entries(&listing), expected, "{listing}");
    assert_eq!(listing["path"], "");
    assert_eq!(listing["truncated"], false);
    let xss = &listing["entries"][2];
    assert_eq!(xss["path"], XSS);
    assert!(xss["modified"].as_str().unwrap().starts_with("20"), "{xss}");

    // A subfolder, normalised; its entries' paths are relative to the endpoint's root.
    let reply = api
        .get(
            &format!("/api/v1/endpoints/src/files?path={}", encode("alpha//./")),
            &keys.operator,
        )
        .await;
    let listing = reply.json();
    assert_eq!(listing["path"], "alpha", "{listing}");
    assert_eq!(
        listing["entries"][0]["path"], "alpha/inner.txt",
        "{listing}"
    );
    assert_eq!(listing["entries"][0]["size"], 5, "{listing}");

    // The limit cuts after the order is applied, and says so.
    let listing = api
        .get("/api/v1/endpoints/src/files?limit=3", &keys.operator)
        .await
        .json();
    assert_eq!(entries(&listing), expected[..3].to_vec(), "{listing}");
    assert_eq!(listing["truncated"], true);
    for limit in ["0", "5001", "-1", "x"] {
        let reply = api
            .get(
                &format!("/api/v1/endpoints/src/files?limit={limit}"),
                &keys.operator,
            )
            .await;
        assert_eq!(
            reply.error(400)["field"],
            "limit",
            "{limit}: {}",
            reply.body
        );
    }

    // Paths that would leave the root, or are not text a folder can have, are refused.
    for bad in [
        "..",
        "alpha/../..",
        "alpha\\..\\..",
        "/etc",
        "C:/x",
        "a\u{1}b",
        &"a".repeat(1025),
    ] {
        let reply = api
            .get(
                &format!("/api/v1/endpoints/src/files?path={}", encode(bad)),
                &keys.operator,
            )
            .await;
        assert_eq!(reply.error(400)["field"], "path", "{bad:?}: {}", reply.body);
    }
    let reply = api
        .get("/api/v1/endpoints/nope/files", &keys.operator)
        .await;
    assert_eq!(reply.error(404)["kind"], "not_found");
    let reply = api
        .get("/api/v1/endpoints/src/files?path=missing", &keys.operator)
        .await;
    assert_eq!(reply.error(404)["kind"], "not_found", "{}", reply.body);
    let reply = api.get("/api/v1/endpoints/src/files", &keys.viewer).await;
    assert_eq!(reply.error(403)["kind"], "forbidden");

    // The same tree on the SFTP server, listed through its stored endpoint.
    let sftp = ts.orbit.endpoint("sftp").await.unwrap();
    let local = tempfile::tempdir().unwrap();
    fill(local.path());
    std::fs::write(local.path().join("a.txt"), "hello over http").unwrap();
    rclone()
        .rpc(
            "sync/copy",
            &json!({"srcFs": Fs::local(local.path()), "dstFs": sftp.to_rclone(rclone(), "").unwrap(),
                    "createEmptySrcDirs": true}),
        )
        .unwrap();
    let reply = api
        .get("/api/v1/endpoints/sftp/files", &keys.operator)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(entries(&reply.json()), expected, "{}", reply.body);
    let listing = api
        .get("/api/v1/endpoints/sftp/files?path=alpha", &keys.admin)
        .await
        .json();
    assert_eq!(
        listing["entries"][0]["path"], "alpha/inner.txt",
        "{listing}"
    );

    // A wrong password is the remote's authentication failure (not the caller's), and the
    // password never comes back.
    let reply = api
        .get("/api/v1/endpoints/canary/files", &keys.operator)
        .await;
    assert_eq!(
        reply.error(502)["kind"],
        "remote_authentication",
        "{}",
        reply.body
    );
    assert!(!reply.body.contains(CANARY));
    assert!(!reply.body.contains(&env("SFTP_PASSWORD")));
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_templates_are_previewed() {
    let mut ts = TestServer::start(0).await;
    let (api, keys) = (&ts.api, &ts.keys);
    let preview = |body: Value| api.post("/api/v1/paths/preview", &keys.viewer, Some(body));

    let before = chrono::Utc::now().format("%Y").to_string();
    let reply = preview(json!({"template": "archive/{year}/{source}/{stem}.{ext}", "file": "in/report.csv", "source": "partner"})).await;
    let after = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let path = reply.json()["path"].as_str().unwrap().to_string();
    assert!(
        [before, after]
            .iter()
            .any(|year| path == format!("archive/{year}/partner/report.csv")),
        "{path}"
    );
    let reply = preview(json!({"template": "{reldir}/x/{filename}"})).await;
    assert_eq!(
        reply.json()["path"],
        "example/x/report.csv",
        "{}",
        reply.body
    );
    let reply = preview(json!({"template": ""})).await;
    assert_eq!(reply.json()["path"], "", "{}", reply.body);

    for (body, field, says) in [
        (json!({"template": "{nope}"}), "template", "nope"),
        (json!({"template": "../{filename}"}), "template", ".."),
        (
            json!({"template": "/abs/{filename}"}),
            "template",
            "absolute",
        ),
        (json!({"template": "{date:%Q}"}), "template", "%Q"),
        (json!({"template": "x".repeat(1025)}), "template", "1024"),
        (
            json!({"template": "{filename}", "file": "../x"}),
            "file",
            "..",
        ),
        (
            json!({"template": "{filename}", "file": ""}),
            "file",
            "file",
        ),
        (
            json!({"template": "{filename}", "size": 3}),
            "size",
            "unknown field",
        ),
        (json!({"file": "a"}), "template", "missing"),
    ] {
        let reply = preview(body.clone()).await;
        let error = reply.error(400);
        assert_eq!(error["field"], field, "{body}: {}", reply.body);
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{body}: {}",
            reply.body
        );
    }
    let reply = api
        .call("POST", "/api/v1/paths/preview", None, Some("{}"))
        .await;
    assert_eq!(reply.status, 401);
    assert!(ts.shutdown().await);
}

/// A GET with `key`, answering its status, headers and body.
fn get_with_headers(
    base: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent.get(format!("{base}{path}"));
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    let mut response = request.call().unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let status = response.status().as_u16();
    (
        status,
        headers,
        response.body_mut().read_to_string().unwrap(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_filtered_and_exported() {
    audit_filters_and_export(TestServer::setup(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_filtered_and_exported_on_postgres() {
    audit_filters_and_export(TestServer::setup_on(&postgres_url().await, 1)).await;
}

async fn audit_filters_and_export(setup: Setup) {
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let start = chrono::Utc::now();
    // An admin whose JWT subject has a comma, quotes and a newline stores an endpoint
    // whose name has a comma and quotes: actor and subject need CSV quoting.
    let odd_actor_token = sign_jwt(
        "jwt-test-secret",
        &json!({"role": "admin", "sub": "ops, \"night\"\nshift"}),
    );
    let odd = endpoint(Kind::Local, "in, \"quoted\"");
    let reply = api
        .put(
            &format!("/api/v1/endpoints/{}", encode(&odd.name)),
            &odd_actor_token,
            endpoint_body(&odd, None),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (src, _) = ts.local_pair(2).await;
    std::fs::write(local_root(&src).join("a.txt"), "audited").unwrap();
    let id = ts.submit(file_request("src", "a.txt", "dst", 1)).await;
    common::api::wait_state(api, &keys.viewer, id, "succeeded").await;
    let reply = api
        .post("/api/v1/endpoints/dst/test", &keys.operator, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let end = chrono::Utc::now() + chrono::Duration::seconds(1);

    let audit = |query: String| async move {
        let reply = api
            .get(&format!("/api/v1/audit?{query}"), &keys.viewer)
            .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        reply.json().as_array().unwrap().clone()
    };
    let everything = audit("limit=1000".into()).await;
    assert!(everything.len() >= 6, "{everything:?}");
    let by_odd = audit(format!("actor={}", encode("jwt:ops, \"night\"\nshift"))).await;
    assert_eq!(by_odd.len(), 1, "{by_odd:?}");
    assert_eq!(by_odd[0]["subject"], "endpoint/in, \"quoted\"");
    let about_job = audit(format!("subject={}", encode(&format!("job/{id}")))).await;
    let actions: Vec<&str> = about_job
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["job.succeeded", "job.started", "job.submitted"],
        "{about_job:?}"
    );
    let tested = audit("subject=endpoint%2Fdst".into()).await;
    assert!(
        tested.iter().any(|r| r["action"] == "endpoint.tested"),
        "{tested:?}"
    );
    // Paging: before_id continues newest first.
    let page = audit("limit=2".into()).await;
    let next = audit(format!("limit=2&before_id={}", page[1]["id"])).await;
    assert!(
        next[0]["id"].as_i64() < page[1]["id"].as_i64(),
        "{page:?} {next:?}"
    );
    assert_eq!(next[0]["id"], everything[2]["id"]);
    // Time ranges: nothing before the test started or after it ended.
    let stamp = |at: chrono::DateTime<chrono::Utc>| encode(&at.to_rfc3339());
    assert!(
        audit(format!(
            "until={}",
            stamp(start - chrono::Duration::hours(1))
        ))
        .await
        .is_empty()
    );
    assert!(audit(format!("since={}", stamp(end))).await.is_empty());
    let within = audit(format!(
        "since={}&until={}&limit=1000",
        stamp(start),
        stamp(end)
    ))
    .await;
    assert_eq!(within.len(), everything.len());
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("limit=1001", "limit"),
        ("before_id=0", "before_id"),
        ("bogus=1", "bogus"),
    ] {
        let reply = api
            .get(&format!("/api/v1/audit?{query}"), &keys.viewer)
            .await;
        assert_eq!(reply.error(400)["field"], field, "{query}: {}", reply.body);
    }
    let reply = api
        .get(
            &format!("/api/v1/audit?actor={}", "a".repeat(1025)),
            &keys.viewer,
        )
        .await;
    assert_eq!(reply.error(400)["field"], "actor", "{}", reply.body);

    // The export: CSV by default, oldest first, quoted by the csv rules.
    let base = api.base().to_string();
    let path = format!(
        "/api/v1/audit/export?since={}&until={}",
        stamp(start),
        stamp(end)
    );
    let (status, headers, body) = tokio::task::spawn_blocking({
        let (base, path, key) = (base.clone(), path.clone(), keys.viewer.clone());
        move || get_with_headers(&base, &path, Some(&key))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), "text/csv; charset=utf-8");
    assert_eq!(header(&headers, "x-file-orbit-truncated"), "false");
    let disposition = header(&headers, "content-disposition");
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"audit-{}-{}.csv\"",
            start.format("%Y%m%dT%H%M%SZ"),
            end.format("%Y%m%dT%H%M%SZ")
        )
    );
    assert!(body.contains("\"jwt:ops, \"\"night\"\"\nshift\""), "{body}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let head: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        head,
        [
            "id", "at", "actor", "action", "subject", "outcome", "detail", "hash"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), everything.len());
    let ids: Vec<i64> = rows.iter().map(|row| row[0].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    let odd_row = rows
        .iter()
        .find(|row| &row[2] == "jwt:ops, \"night\"\nshift")
        .unwrap();
    assert_eq!(&odd_row[4], "endpoint/in, \"quoted\"");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&odd_row[1]).is_ok(),
        "{odd_row:?}"
    );
    for row in &rows {
        let detail: Value = serde_json::from_str(&row[6]).unwrap();
        assert!(detail.is_object(), "{row:?}");
        let same = everything
            .iter()
            .find(|r| r["id"].as_i64() == row[0].parse().ok())
            .unwrap();
        assert_eq!(same["hash"], row[7], "{row:?}");
        assert_eq!(same["detail"], detail, "{row:?}");
    }

    // By endpoint: its own records and those of the jobs from or to it, as JSON.
    let (status, headers, body) = tokio::task::spawn_blocking({
        let (base, key) = (base.clone(), keys.viewer.clone());
        move || {
            get_with_headers(
                &base,
                "/api/v1/audit/export?endpoint=dst&format=json",
                Some(&key),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        header(&headers, "content-disposition").ends_with("-now.json\""),
        "{headers:?}"
    );
    let records: Vec<Value> = serde_json::from_str(&body).unwrap();
    let subjects: Vec<&str> = records
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    let job = format!("job/{id}");
    assert!(
        subjects.iter().all(|s| *s == "endpoint/dst" || *s == job),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"endpoint/dst") && subjects.contains(&job.as_str()),
        "{subjects:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "job.submitted" && r["detail"]["destination"] == "dst")
    );
    let (_, _, body) = tokio::task::spawn_blocking({
        let (base, key) = (base.clone(), keys.viewer.clone());
        move || {
            get_with_headers(
                &base,
                "/api/v1/audit/export?endpoint=nope&format=json",
                Some(&key),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(body, "[]");

    // The export needs credentials, and refuses what it cannot read by name.
    let (status, _, _) = tokio::task::spawn_blocking({
        let base = base.clone();
        move || get_with_headers(&base, "/api/v1/audit/export", None)
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    let reply = api
        .get("/api/v1/audit/export?format=xml", &keys.viewer)
        .await;
    assert_eq!(reply.error(400)["field"], "format", "{}", reply.body);
    assert!(ts.shutdown().await);
}

/// Polls the dashboard (bounded: a minute) until `done` holds; `what` names the wait.
async fn dashboard_until(ts: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = ts.api.get("/api/v1/dashboard", &ts.keys.viewer).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let dashboard = reply.json();
        if done(&dashboard) {
            return dashboard;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {what}: {dashboard}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sums of the throughput series: (bytes, jobs).
fn throughput(dashboard: &Value) -> (i64, i64) {
    let minutes = dashboard["throughput"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "{dashboard}");
    let starts: Vec<chrono::DateTime<chrono::FixedOffset>> = minutes
        .iter()
        .map(|m| chrono::DateTime::parse_from_rfc3339(m["minute"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 60),
        "{dashboard}"
    );
    let now = chrono::Utc::now();
    let last = starts[59].with_timezone(&chrono::Utc);
    assert!(
        last <= now && now - last < chrono::Duration::seconds(120),
        "{dashboard}"
    );
    minutes.iter().fold((0, 0), |(bytes, jobs), m| {
        (
            bytes + m["bytes"].as_i64().unwrap(),
            jobs + m["jobs"].as_i64().unwrap(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_jobs_through_their_states() {
    dashboard_through_states(TestServer::setup(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_jobs_through_their_states_on_postgres() {
    dashboard_through_states(TestServer::setup_on(&postgres_url().await, 0)).await;
}

async fn dashboard_through_states(setup: Setup) {
    let mut ts = setup.start().await;
    let (src, _) = ts.local_pair(4).await;
    let root = local_root(&src);
    std::fs::write(root.join("one.txt"), vec![b'1'; 1000]).unwrap();
    std::fs::write(root.join("two.txt"), vec![b'2'; 2000]).unwrap();
    let empty = dashboard_until(&ts, "empty", |_| true).await;
    assert_eq!(
        empty["queue"],
        json!({"cancelled": 0, "dead": 0, "leased": 0, "queued": 0, "succeeded": 0})
    );
    assert_eq!(throughput(&empty), (0, 0));
    assert_eq!(
        (empty["failures_24h"].clone(), empty["dead_24h"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(empty["workers"]["live"], 0);

    // Queued while no worker runs.
    let one = ts.submit(file_request("src", "one.txt", "dst", 1)).await;
    let two = ts.submit(file_request("src", "two.txt", "dst", 1)).await;
    let missing = ts
        .submit(file_request("src", "missing.txt", "dst", 1))
        .await;
    let queued = dashboard_until(&ts, "queued", |d| d["queue"]["queued"] == 3).await;
    assert_eq!(queued["running"], json!([]));

    // A worker runs them: two succeed (their bytes in this minute), one goes dead.
    let workers = ts.orbit.start_workers(1);
    let api = &ts.api;
    for (id, state) in [(one, "succeeded"), (two, "succeeded"), (missing, "dead")] {
        common::api::wait_state(api, &ts.keys.viewer, id, state).await;
    }
    let done = dashboard_until(&ts, "finished", |d| d["queue"]["succeeded"] == 2).await;
    assert_eq!(done["queue"]["dead"], 1, "{done}");
    assert_eq!(done["queue"]["queued"], 0, "{done}");
    assert_eq!(throughput(&done), (3000, 2), "{done}");
    assert_eq!(done["dead_24h"], 1, "{done}");
    assert_eq!(done["failures_24h"], 1, "{done}");
    assert_eq!(done["workers"]["live"], 1, "{done}");
    assert_eq!(
        done["workers"]["nodes"].as_array().unwrap().len(),
        1,
        "{done}"
    );

    // A slow transfer (its source limited to 64 KiB/s) shows as running with its progress,
    // then as cancelled.
    let mut slow = endpoint(Kind::Local, "slow");
    slow.bandwidth = Some("64k".parse().unwrap());
    ts.orbit.put_endpoint(&slow, 1).await.unwrap();
    std::fs::write(local_root(&slow).join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    let big = ts.submit(file_request("slow", "big.bin", "dst", 1)).await;
    let running = dashboard_until(&ts, "running with progress", |d| {
        d["running"][0]["bytes"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let job = &running["running"][0];
    assert_eq!(job["id"], big, "{running}");
    assert_eq!(
        (job["source"].clone(), job["destination"].clone()),
        (json!("slow"), json!("dst"))
    );
    assert_eq!(job["total_bytes"], 1 << 20, "{running}");
    let percent = job["percent"].as_f64().unwrap();
    assert!(percent > 0.0 && percent < 100.0, "{running}");
    assert_eq!(running["queue"]["leased"], 1, "{running}");
    let reply = api
        .post(
            &format!("/api/v1/jobs/{big}/cancel"),
            &ts.keys.operator,
            None,
        )
        .await;
    assert!([200, 202].contains(&reply.status), "{}", reply.body);
    let cancelled = dashboard_until(&ts, "cancelled", |d| d["queue"]["cancelled"] == 1).await;
    assert_eq!(cancelled["running"], json!([]), "{cancelled}");
    assert_eq!(throughput(&cancelled), (3000, 2), "{cancelled}");
    let reply = api.call("GET", "/api/v1/dashboard", None, None).await;
    assert_eq!(reply.status, 401);
    workers.shutdown().await;
    assert!(ts.shutdown().await);
}

/// Every `$ref` in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_the_console_routes() {
    let mut ts = TestServer::start(0).await;
    let doc = ts
        .api
        .call("GET", "/api/v1/openapi.json", None, None)
        .await
        .json();
    for (method, path, role) in [
        ("get", "/api/v1/endpoints/{name}/files", "operator"),
        ("post", "/api/v1/paths/preview", "viewer"),
        ("get", "/api/v1/audit/export", "viewer"),
        ("get", "/api/v1/dashboard", "viewer"),
    ] {
        let operation = &doc["paths"][path][method];
        assert_eq!(
            operation["x-required-role"], role,
            "{method} {path}: {operation}"
        );
    }
    let files = &doc["paths"]["/api/v1/endpoints/{name}/files"]["get"]["parameters"];
    let limit = files
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            limit["schema"]["minimum"].clone(),
            limit["schema"]["maximum"].clone()
        ),
        (json!(1), json!(5000))
    );
    let export = &doc["paths"]["/api/v1/audit/export"]["get"]["responses"]["200"];
    assert!(export["content"]["text/csv"].is_object(), "{export}");
    assert!(
        export["headers"]["X-File-Orbit-Truncated"].is_object(),
        "{export}"
    );
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for target in found {
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} is not in the document"
        );
    }
    assert!(ts.shutdown().await);
}
