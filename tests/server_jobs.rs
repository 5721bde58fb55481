//! The REST server's jobs over real HTTP on loopback (feature `server`): transfers
//! followed live to success, invalid submissions, dead jobs retried, conflicts, listing
//! filters, events made from templates and replayed, batches, shutdown with a transfer
//! running, and submissions beside heavy reads.

mod common;

use common::api::wait_state;
use common::server::*;
use common::{Kind, endpoint, local_root};
use file_orbit::engine::JobState;
use file_orbit::server::{RateLimit, ServerConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_is_followed_live_to_success_to_local_and_sftp() {
    let mut ts = TestServer::start(2).await;
    let (_, dst) = put_four_endpoints(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
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
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_submissions_name_the_field() {
    let mut ts = TestServer::start(0).await;
    ts.local_pair(1).await;
    let (api, keys) = (&ts.api, &ts.keys);
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
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_retried_is_dead_again_and_finished_jobs_conflict() {
    let mut ts = TestServer::start(2).await;
    let (src, _) = ts.local_pair(2).await;
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    let (api, keys) = (&ts.api, &ts.keys);
    let id = ts.submit(file_request("src", "a.txt", "dst", 3)).await;
    wait_state(api, &keys.viewer, id, "succeeded").await;

    // A dead job (its source is missing) retried is dead again.
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("src", "missing.txt", "dst", 1)),
        )
        .await;
    let dead = reply.json()["id"].as_i64().unwrap();
    let job = wait_state(api, &keys.viewer, dead, "dead").await;
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
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_with_validated_filters() {
    let mut ts = TestServer::start(1).await;
    let (src, _) = ts.local_pair(1).await;
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    let (api, keys) = (&ts.api, &ts.keys);
    let done = ts.submit(file_request("src", "a.txt", "dst", 1)).await;
    let dead = ts
        .submit(file_request("src", "missing.txt", "dst", 1))
        .await;
    wait_state(api, &keys.viewer, done, "succeeded").await;
    wait_state(api, &keys.viewer, dead, "dead").await;

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
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_made_from_a_template_is_replayed() {
    let mut ts = TestServer::start(2).await;
    let (src, _) = ts.local_pair(2).await;
    std::fs::write(local_root(&src).join("a.txt"), "hello over http").unwrap();
    let event_id = event_from_a_template(&ts).await;
    let (api, keys) = (&ts.api, &ts.keys);
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
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_go_in_one_request_each_with_its_id_or_its_own_error() {
    let mut setup = TestServer::setup(0);
    // What a client meets by default: 100 requests at once, then 50 a second; 1 MiB bodies.
    setup.config.rate_limit = RateLimit::default();
    setup.config.max_body_bytes = ServerConfig::default().max_body_bytes;
    setup.config.max_batch_jobs = 300;
    let mut ts = setup.start().await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
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
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_a_running_transfer_finish() {
    let mut ts = TestServer::start(1).await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
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
    assert!(ts.shutdown().await, "stopped within the grace period");
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
async fn shutdown_past_its_grace_releases_the_running_job_to_the_queue() {
    let mut setup = TestServer::setup(1);
    setup.config.shutdown_grace_secs = 1;
    let mut ts = setup.start().await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
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

    assert!(!ts.shutdown().await, "the transfer cannot finish in 1 s");
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

/// With many finished jobs stored in SQLite, reads of the API (scrapes of `/metrics`, a
/// deep page of `GET /api/v1/jobs`) running back to back do not hold submissions up: the
/// reads run on connections of their own, and a scrape reads the store's totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_do_not_hold_submissions_up_with_many_jobs_stored() {
    use sqlx::Connection;
    const STORED: i64 = 400_000;
    let mut setup = TestServer::setup(0);
    let url = setup.store_url().to_string();
    let orbit = setup.orbit().await;
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
    let mut ts = setup.start().await;
    let (api, keys) = (ts.api.clone(), ts.keys.clone());

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
    assert!(ts.shutdown().await);
}
