//! The agents' protocol against a real server and store (SQLite and PostgreSQL), driven
//! by hand as an agent would: enrolment with a one-time token, placement deciding which
//! agent leases which job (and never the control plane's own worker), the credentials an
//! agent sees (only those of its jobs' endpoints), progress and cancel through reports,
//! outcomes only for the agent's own leases, revocation and restart returning leases.

mod common;

use common::api::{Api, wait_state};
use common::server::{CANARY, TestServer, endpoint_body, file_request};
use common::{Kind, endpoint, postgres_url};
use file_orbit::endpoint::{Endpoint, EndpointPlacement};
use serde_json::{Value, json};

fn pinned(kind: Kind, name: &str, agents: &[&str], labels: &[&str]) -> Endpoint {
    let mut endpoint = endpoint(kind, name);
    endpoint.placement = EndpointPlacement {
        agents: agents.iter().map(|a| a.to_string()).collect(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    endpoint
}

fn hello(started: bool) -> Value {
    json!({"host": "test-host", "version": "0.1.0", "slots": 2,
           "backends": ["local", "sftp"], "started": started})
}

/// Creates agent `name` through the admin API and enrols it: its credential.
async fn enrolled(ts: &TestServer, name: &str, labels: &[&str]) -> String {
    let reply = ts
        .api
        .post(
            "/api/v1/agents",
            &ts.keys.admin,
            Some(json!({"name": name, "labels": labels})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let token = reply.json()["enrolment_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("foe_"), "{token}");
    let mut body = hello(true);
    body["token"] = json!(token);
    let reply = ts
        .api
        .post("/api/v1/agent/enrol", "", Some(body.clone()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["name"], name);
    // The token is one-time.
    let again = ts.api.post("/api/v1/agent/enrol", "", Some(body)).await;
    assert_eq!(again.status, 401, "{}", again.body);
    let credential = reply.json()["credential"].as_str().unwrap().to_string();
    assert!(credential.starts_with("foa_"), "{credential}");
    credential
}

async fn lease(api: &Api, credential: &str, slots: &[u32], wait_ms: u64) -> Vec<Value> {
    let reply = api
        .post(
            "/api/v1/agent/lease",
            credential,
            Some(json!({"slots": slots, "wait_ms": wait_ms})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["jobs"].as_array().unwrap().clone()
}

async fn report(api: &Api, credential: &str, job: i64, slot: u32, bytes: u64) -> String {
    let progress = json!({"bytes": bytes, "total_bytes": 100, "files": 0, "total_files": 1,
                          "speed": 10.0, "eta_secs": null, "updated_at": 1});
    let reply = api
        .post(
            "/api/v1/agent/report",
            credential,
            Some(json!({"running": [{"job_id": job, "slot": slot, "progress": progress}]})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["jobs"][0]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn outcome(api: &Api, credential: &str, body: Value) -> Value {
    let reply = api
        .post(
            "/api/v1/agent/outcomes",
            credential,
            Some(json!({"outcomes": [body]})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn placement_and_the_protocol(ts: TestServer) {
    let (api, keys) = (&ts.api, &ts.keys);
    let b = enrolled(&ts, "b", &["dmz"]).await;
    let c = enrolled(&ts, "c", &[]).await;
    // B's folder, C's folder, an SFTP server only the DMZ reaches (with the canary as its
    // password), and an unplaced destination.
    let b_files = pinned(Kind::Local, "b-files", &["b"], &[]);
    let c_files = pinned(Kind::Local, "c-files", &["c"], &[]);
    let dmz = pinned(Kind::Sftp, "dmz-sftp", &[], &["dmz"]);
    let dst = endpoint(Kind::Local, "dst");
    for (ep, secret) in [
        (&b_files, None),
        (&c_files, None),
        (&dmz, Some(CANARY)),
        (&dst, None),
    ] {
        let reply = ts.put_endpoint(ep, secret).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let listed = api.get("/api/v1/endpoints/b-files", &keys.viewer).await;
    assert_eq!(listed.json()["config"]["placement"]["agents"], json!(["b"]));

    // A job whose endpoints no agent may run together is refused, naming the side.
    let reply = api
        .post(
            "/api/v1/jobs",
            &keys.operator,
            Some(file_request("b-files", "a.txt", "c-files", 1)),
        )
        .await;
    let error = reply.error(400);
    assert_eq!(error["field"], "destination", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no enrolled agent may run this job"),
        "{error}"
    );

    let to_dmz = ts
        .submit(file_request("b-files", "a.txt", "dmz-sftp", 1))
        .await;
    let from_c = ts.submit(file_request("c-files", "a.txt", "dst", 1)).await;
    let from_b = ts.submit(file_request("b-files", "b.txt", "dst", 1)).await;

    // C leases only its job: never B's, never the DMZ's credentials.
    let leased = lease(api, &c, &[0, 1], 2000).await;
    let ids: Vec<i64> = leased
        .iter()
        .map(|job| job["job_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![from_c], "{leased:?}");
    assert_eq!(leased[0]["source"]["name"], "c-files");
    assert_eq!(leased[0]["destination"]["name"], "dst");
    assert!(!api.bodies().iter().any(|body| body.contains(CANARY)));
    assert!(lease(api, &c, &[1], 300).await.is_empty());

    // B leases its two, with the DMZ server's real password (it runs that job).
    let mut leased = lease(api, &b, &[0, 1], 2000).await;
    leased.sort_by_key(|job| job["job_id"].as_i64());
    let ids: Vec<i64> = leased
        .iter()
        .map(|job| job["job_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![to_dmz, from_b], "{leased:?}");
    assert_eq!(leased[0]["destination"]["auth"]["password"], CANARY);
    let dmz_slot = leased[0]["slot"].as_u64().unwrap() as u32;
    let b_slot = leased[1]["slot"].as_u64().unwrap() as u32;
    for id in [to_dmz, from_b] {
        let job = api
            .get(&format!("/api/v1/jobs/{id}"), &keys.viewer)
            .await
            .json();
        assert!(
            job["lease_owner"].as_str().unwrap().starts_with("agent:b/"),
            "the control plane's worker must not run placed jobs: {job}"
        );
    }

    // A credential is not an API key, and an API key does not open the agents' routes.
    assert_eq!(api.get("/api/v1/endpoints", &c).await.status, 401);
    assert_eq!(api.get("/api/v1/endpoints/dmz-sftp", &c).await.status, 401);
    let reply = api
        .post(
            "/api/v1/agent/lease",
            &keys.admin,
            Some(json!({"slots": [0]})),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    // C's credential cannot act on B's jobs: its reports say lost, its outcomes are refused.
    assert_eq!(report(api, &c, from_b, b_slot, 1).await, "lost");
    let answer = outcome(
        api,
        &c,
        json!({"job_id": from_b, "slot": b_slot, "outcome": "succeeded", "bytes": 1, "files": 1}),
    )
    .await;
    assert_eq!(answer["refused"][0]["job_id"], from_b, "{answer}");
    assert_eq!(
        wait_state(api, &keys.viewer, from_b, "leased").await["state"],
        "leased"
    );

    // B's progress shows on the job; a cancel reaches B with its next report.
    assert_eq!(report(api, &b, from_b, b_slot, 42).await, "held");
    let job = api
        .get(&format!("/api/v1/jobs/{from_b}"), &keys.viewer)
        .await
        .json();
    assert_eq!(job["progress"]["bytes"], 42, "{job}");
    let metrics = api.get("/metrics", &keys.viewer).await.body;
    assert!(
        metrics.contains("file_orbit_running_bytes{runner=\"b\"} 42"),
        "{metrics}"
    );
    assert!(
        metrics.contains("file_orbit_agents{status=\"online\"} 2"),
        "{metrics}"
    );
    let reply = api
        .post(
            &format!("/api/v1/jobs/{from_b}/cancel"),
            &keys.operator,
            None,
        )
        .await;
    assert!(reply.status < 300, "{}", reply.body);
    assert_eq!(
        report(api, &b, from_b, b_slot, 43).await,
        "cancel_requested"
    );
    let answer = outcome(
        api,
        &b,
        json!({"job_id": from_b, "slot": b_slot, "outcome": "cancelled"}),
    )
    .await;
    assert_eq!(answer["recorded"], json!([from_b]), "{answer}");
    wait_state(api, &keys.viewer, from_b, "cancelled").await;

    // A failure is recorded with its kind and message.
    let answer = outcome(
        api,
        &b,
        json!({"job_id": to_dmz, "slot": dmz_slot, "outcome": "failed",
               "error": {"kind": "Authentication", "message": "wrong password", "retryable": false}}),
    )
    .await;
    assert_eq!(answer["recorded"], json!([to_dmz]), "{answer}");
    let job = wait_state(api, &keys.viewer, to_dmz, "dead").await;
    assert_eq!(job["last_error_kind"], "Authentication", "{job}");

    // The agents as listed: C runs its job.
    let agents = api.get("/api/v1/agents", &keys.viewer).await.json();
    let c_listed = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "c")
        .unwrap();
    assert_eq!(c_listed["status"], "online", "{agents}");
    assert_eq!(c_listed["running"], json!([from_c]), "{agents}");
    assert!(!agents.to_string().contains("foa_"), "{agents}");

    // Revoking C puts its job back in the queue at once and refuses its next call.
    let reply = api
        .call("DELETE", "/api/v1/agents/c", Some(&keys.admin), None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    wait_state(api, &keys.viewer, from_c, "queued").await;
    let reply = api
        .post("/api/v1/agent/hello", &c, Some(hello(false)))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let listed = api.get("/api/v1/agents/c", &keys.viewer).await.json();
    assert_eq!(listed["status"], "revoked", "{listed}");

    // A job still leased to a slot the agent calls free (the answer was lost) is released
    // and leased again.
    let lost_answer = ts.submit(file_request("b-files", "d.txt", "dst", 3)).await;
    assert_eq!(lease(api, &b, &[1], 2000).await[0]["job_id"], lost_answer);
    let again = lease(api, &b, &[1], 2000).await;
    assert_eq!(again[0]["job_id"], lost_answer, "{again:?}");
    let job = api
        .get(&format!("/api/v1/jobs/{lost_answer}"), &keys.viewer)
        .await
        .json();
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(
        job["max_attempts"], 4,
        "the released attempt does not count: {job}"
    );
    let answer = outcome(
        api,
        &b,
        json!({"job_id": lost_answer, "slot": 1, "outcome": "succeeded", "bytes": 3, "files": 1}),
    )
    .await;
    assert_eq!(answer["recorded"], json!([lost_answer]), "{answer}");

    // A restarted agent's old leases go back to the queue at its first hello.
    let retry = ts.submit(file_request("b-files", "c.txt", "dst", 3)).await;
    assert_eq!(lease(api, &b, &[0], 2000).await[0]["job_id"], retry);
    let reply = api.post("/api/v1/agent/hello", &b, Some(hello(true))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["labels"], json!(["dmz"]));
    wait_state(api, &keys.viewer, retry, "queued").await;
    let audit = api.get("/api/v1/audit?limit=200", &keys.viewer).await.body;
    for action in ["agent.created", "agent.enrolled", "agent.revoked"] {
        assert!(audit.contains(action), "{action} not audited");
    }
    assert!(!audit.contains("foe_") && !audit.contains("foa_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_and_the_protocol_on_sqlite() {
    placement_and_the_protocol(TestServer::start(1).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_and_the_protocol_on_postgres() {
    let url = postgres_url().await;
    placement_and_the_protocol(TestServer::setup_on(&url, 1).start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_input_is_named() {
    let ts = TestServer::start(0).await;
    let (api, keys) = (&ts.api, &ts.keys);
    for (body, field) in [
        (json!({"name": "B!"}), "name"),
        (json!({"name": "b", "labels": ["no spaces"]}), "labels"),
        (json!({"name": "b", "role": "admin"}), "role"),
    ] {
        let reply = api.post("/api/v1/agents", &keys.admin, Some(body)).await;
        assert_eq!(reply.error(400)["field"], field, "{}", reply.body);
    }
    let reply = api
        .post("/api/v1/agents", &keys.admin, Some(json!({"name": "b"})))
        .await;
    assert_eq!(reply.status, 201);
    let again = api
        .post("/api/v1/agents", &keys.admin, Some(json!({"name": "b"})))
        .await;
    assert_eq!(again.error(400)["field"], "name", "{}", again.body);
    let token = reply.json()["enrolment_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = hello(true);
    body["token"] = json!(token);
    body["slots"] = json!(0);
    let reply = api.post("/api/v1/agent/enrol", "", Some(body)).await;
    assert_eq!(reply.error(400)["field"], "slots", "{}", reply.body);
    let mut placed = endpoint(Kind::Local, "p");
    placed.placement.labels = vec!["Bad Label".into()];
    let reply = api
        .put(
            "/api/v1/endpoints/p",
            &keys.admin,
            endpoint_body(&placed, None),
        )
        .await;
    assert_eq!(
        reply.error(400)["field"],
        "placement.labels",
        "{}",
        reply.body
    );
}
