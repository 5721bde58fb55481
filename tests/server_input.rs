//! What the server does with numbers and shapes that would hurt it (feature `server`, real
//! HTTP on loopback): out-of-bound parallelism and priorities, invalid filters, templates
//! that leave the destination, templates naming unknown endpoints are refused with a 400
//! naming the field; a stored job above the limits is dead with its reason, not run; and a
//! tree copy into the destination's root works.

mod common;

use common::api::wait_state;
use common::server::TestServer;
use common::{Kind, endpoint, local_root};
use file_orbit::engine::{JobRequest, Limits, Orbit, OrbitOptions};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::{Value, json};

fn tree_request(destination_path: &str) -> Value {
    let spec = TransferSpec::tree(
        "src",
        "",
        "dst",
        PathTemplate::parse(destination_path).unwrap(),
    );
    serde_json::to_value(JobRequest::new(spec)).unwrap()
}

/// Local endpoints `src` (holding a small tree) and `dst` stored by `orbit`; `dst`'s root.
async fn put_endpoints(orbit: &Orbit) -> std::path::PathBuf {
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    common::write_test_tree(&local_root(&src));
    orbit.put_endpoint(&src, 4).await.unwrap();
    orbit.put_endpoint(&dst, 4).await.unwrap();
    local_root(&dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bound_numbers_and_bad_shapes_get_a_400_naming_the_field() {
    let mut setup = TestServer::setup(0);
    put_endpoints(&setup.orbit().await).await;
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let key = keys.admin.as_str();

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut wide = tree_request("out");
    wide["spec"]["parallelism"] = json!(50_000_000);
    cases.push(("spec.parallelism", wide));
    let mut overflowing = tree_request("out");
    overflowing["spec"]["parallelism"] = json!(u32::MAX);
    cases.push(("spec.parallelism", overflowing));
    let mut hop = tree_request("out");
    hop["next_hops"] = json!([{"source": "dst", "destination": "src", "destination_path": "x",
                               "parallelism": 50_000_000}]);
    cases.push(("next_hops[0].parallelism", hop));
    let mut urgent = tree_request("out");
    urgent["priority"] = json!(i64::MAX);
    cases.push(("priority", urgent));
    let mut patient = tree_request("out");
    patient["retry"] = json!({"max_attempts": u32::MAX, "base_delay_ms": 1, "max_delay_ms": 2});
    cases.push(("retry.max_attempts", patient));
    for (field, filters) in [
        ("spec.filters.include[0]", json!({"include": ["[abc"]})),
        (
            "spec.filters.exclude[1]",
            json!({"exclude": ["*.tmp", "{a,b"]}),
        ),
        ("spec.filters.min_size", json!({"min_size": "lots"})),
        ("spec.filters.max_age", json!({"max_age": "forever"})),
    ] {
        let mut filtered = tree_request("out");
        filtered["spec"]["filters"] = filters;
        cases.push((field, filtered));
    }
    for escaping in ["../x", "/abs.txt", "..\\x", "a/../../b"] {
        cases.push(("spec.destination_path", tree_request(escaping)));
    }
    for (field, body) in cases {
        let reply = api.post("/api/v1/jobs", key, Some(body.clone())).await;
        let error = reply.error(400);
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    // Good filters and sizes pass.
    let mut fine = tree_request("out");
    fine["spec"]["filters"] = json!({"include": ["*.csv", "[!a]*", "logs/**"],
        "min_size": "1k", "max_size": "1.5GiB", "min_age": "1h30m", "max_age": "2026-01-01"});
    fine["spec"]["parallelism"] = json!(Limits::default().max_parallelism);
    assert_eq!(api.post("/api/v1/jobs", key, Some(fine)).await.status, 201);

    // Templates: the same bounds, and the endpoints they name must exist.
    let template = |destination: &str, parallelism: u32| {
        json!({"name": "t", "matcher": {"source": "src", "path_glob": "*.csv"},
               "spec": {"source": "src", "destination": destination,
                        "destination_path": "{filename}", "parallelism": parallelism}})
    };
    for (field, body) in [
        ("spec.destination", template("nowhere", 4)),
        ("spec.parallelism", template("dst", 50_000_000)),
    ] {
        let reply = api.put("/api/v1/templates/t", key, body).await;
        assert_eq!(reply.error(400)["field"], field);
    }
    assert_eq!(
        api.put("/api/v1/templates/t", key, template("dst", 4))
            .await
            .status,
        200
    );
    assert!(ts.shutdown().await);
}

/// A job stored under higher limits (another process's, or before they were lowered) is
/// not run by a process whose limits it exceeds: it is dead with the reason, and the
/// server stays up. (Run with rclone, 50,000,000 transfers took the process down with Go's
/// `fatal error: out of memory`, again after every restart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_job_above_the_limits_is_dead_and_the_server_stays_up() {
    let setup = TestServer::setup(1);
    let generous = OrbitOptions {
        limits: Limits {
            max_parallelism: u32::MAX,
            ..Limits::default()
        },
        ..setup.options.clone()
    };
    let lenient = Orbit::open(generous).await.unwrap();
    put_endpoints(&lenient).await;
    let mut request = JobRequest::new(TransferSpec::tree(
        "src",
        "",
        "dst",
        PathTemplate::parse("out").unwrap(),
    ));
    request.spec.parallelism = Some(50_000_000);
    let id = lenient.submit(&request).await.unwrap();
    lenient.close().await;

    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let job = wait_state(api, &keys.viewer, id, "dead").await;
    let reason = job["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("spec.parallelism") && reason.contains("50000000"),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(api.call("GET", "/health", None, None).await.status, 200);
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_copies_into_the_destination_root() {
    let mut setup = TestServer::setup(1);
    let dst_root = put_endpoints(&setup.orbit().await).await;
    let mut ts = setup.start().await;
    let (api, keys, orbit) = (&ts.api, &ts.keys, ts.orbit.clone());
    let src_root = local_root(&orbit.endpoint("src").await.unwrap());
    for root in ["", ".", "{reldir}"] {
        for entry in std::fs::read_dir(&dst_root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
        let reply = api
            .post("/api/v1/jobs", &keys.operator, Some(tree_request(root)))
            .await;
        assert_eq!(reply.status, 201, "{root:?}: {}", reply.body);
        let id = reply.json()["id"].as_i64().unwrap();
        wait_state(api, &keys.viewer, id, "succeeded").await;
        assert_eq!(
            common::read_tree(&dst_root),
            common::read_tree(&src_root),
            "{root:?}"
        );
    }
    // One file to the root keeps its name.
    let spec = TransferSpec::file("src", "top.txt", "dst", PathTemplate::parse("").unwrap());
    let body = serde_json::to_value(JobRequest::new(spec)).unwrap();
    let id = api
        .post("/api/v1/jobs", &keys.operator, Some(body))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    wait_state(api, &keys.viewer, id, "succeeded").await;
    assert!(dst_root.join("top.txt").is_file());
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoints_nested_login_and_host_key_errors_name_their_field() {
    let mut ts = TestServer::start(0).await;
    let key = ts.keys.admin.clone();
    let sftp = |extra: Value| {
        let mut body = json!({"type": "sftp", "host": "h", "user": "u",
                              "auth": {"method": "password", "password": "x"}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (field, body) in [
        (
            "auth.password",
            sftp(json!({"auth": {"method": "password"}})),
        ),
        ("auth.method", sftp(json!({"auth": {"method": "telnet"}}))),
        (
            "auth",
            sftp(json!({"auth": {"method": "password", "password": 5}})),
        ),
        (
            "host_key.path",
            sftp(json!({"host_key": {"check": "known_hosts_file"}})),
        ),
        (
            "host",
            json!({"type": "sftp", "user": "u",
                        "auth": {"method": "password", "password": "x"}}),
        ),
    ] {
        let reply = ts.api.put("/api/v1/endpoints/nested", &key, body).await;
        let error = reply.error(400);
        assert_eq!(error["field"], field, "{error}");
        // A secret sent in the wrong shape is not echoed.
        assert!(!reply.body.contains("\"x\""), "{}", reply.body);
    }
    ts.shutdown().await;
}
