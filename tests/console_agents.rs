//! The console's agents page and endpoint placement over real HTTP (feature `server`),
//! signed in like a browser: a pending, an online (running a job it leased through the
//! agents' protocol) and a revoked agent listed with their status; the enrolment form and
//! the revoke buttons for an admin only; an endpoint's placement in the list, on its page
//! and prefilled in its edit form; a bad label refused naming the form's field.

mod common;

use common::console::{Console, PageReply, field_value};
use common::server::{TestServer, file_request};
use common::{Kind, endpoint};
use file_orbit::endpoint::EndpointPlacement;
use serde_json::{Value, json};

fn ok_page(reply: PageReply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The `<tr data-agent="name">` row of the agents table.
fn agent_row<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-agent=\"{name}\">"))
        .unwrap_or_else(|| panic!("no row for agent {name}: {html}"));
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

/// The agent's status badge's text.
fn status_of(html: &str, name: &str) -> String {
    let row = agent_row(html, name);
    let at = row.find("data-agent-status>").expect("a status badge") + "data-agent-status>".len();
    row[at..at + row[at..].find('<').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_page_lists_each_status_and_offers_enrolment_only_to_admins() {
    let mut ts = TestServer::start(0).await;
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;

    // None yet: the page says so, the admin gets the form all the same.
    let empty = ok_page(viewer.page("/ui/agents").await);
    assert!(empty.contains("No agents yet."), "{empty}");
    assert!(
        ok_page(admin.page("/ui/agents").await).contains("id=\"enrol-form\""),
        "an admin can enrol the first agent"
    );

    ts.create_agent("pend", &["dmz", "site-a"]).await;
    ts.create_agent("gone", &[]).await;
    let revoked = ts
        .api
        .call("DELETE", "/api/v1/agents/gone", Some(&ts.keys.admin), None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    // Agent b enrols and leases a job placed on it.
    let token = ts.create_agent("b", &[]).await;
    let enrolled = ts
        .api
        .post(
            "/api/v1/agent/enrol",
            "",
            Some(
                json!({"token": token, "host": "host-b", "version": "0.1.0", "slots": 2,
                        "backends": ["local", "sftp"]}),
            ),
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let credential = enrolled.json()["credential"].as_str().unwrap().to_string();
    let mut b_files = endpoint(Kind::Local, "b-files");
    b_files.placement = EndpointPlacement {
        agents: vec!["b".into()],
        labels: vec![],
    };
    for placed in [b_files, endpoint(Kind::Local, "dst")] {
        let reply = ts.put_endpoint(&placed, None).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let job = ts.submit(file_request("b-files", "a.txt", "dst", 1)).await;
    let leased = ts
        .api
        .post(
            "/api/v1/agent/lease",
            &credential,
            Some(json!({"slots": [0, 1], "wait_ms": 5000})),
        )
        .await;
    assert_eq!(leased.status, 200, "{}", leased.body);
    assert_eq!(leased.json()["jobs"][0]["job_id"], job, "{}", leased.body);

    let page = ok_page(viewer.page("/ui/agents").await);
    assert_eq!(status_of(&page, "pend"), "pending");
    assert_eq!(status_of(&page, "gone"), "revoked");
    assert_eq!(status_of(&page, "b"), "online");
    // The dashboard counts the online agent among the enrolled ones (pending and revoked
    // are neither).
    let dashboard = ok_page(viewer.page("/ui/").await);
    assert!(
        dashboard.contains(r#"<span class="stat" id="agents-online">1</span> <span class="stat-label">agents online (of 1 enrolled)"#),
        "{dashboard}"
    );
    let pend = agent_row(&page, "pend");
    assert!(
        pend.contains(">dmz<") && pend.contains(">site-a<"),
        "{pend}"
    );
    assert!(
        pend.contains("not enrolled") && pend.contains("token until"),
        "{pend}"
    );
    let b = agent_row(&page, "b");
    for fact in ["host-b", "0.1.0", ">2<", "local, sftp", "UTC</time>"] {
        assert!(b.contains(fact), "{fact} in {b}");
    }
    assert!(
        b.contains(&format!("<a href=\"/ui/jobs/{job}\">#{job}</a>")),
        "the running job links to its page: {b}"
    );
    // A viewer sees no control that changes anything, and no script that could.
    for control in ["enrol-form", "data-api=", "Revoke", "agents.js"] {
        assert!(!page.contains(control), "a viewer's page holds {control}");
    }
    assert!(page.contains("href=\"/ui/agents\" aria-current=\"page\""));

    let page = ok_page(admin.page("/ui/agents").await);
    assert!(page.contains("data-api=\"POST /api/v1/agents\""), "{page}");
    assert!(page.contains("id=\"enrolment-token\""), "{page}");
    assert!(page.contains("/ui/assets/agents.js"), "{page}");
    for name in ["pend", "b"] {
        let row = agent_row(&page, name);
        assert!(
            row.contains(&format!("data-api=\"DELETE /api/v1/agents/{name}\"")),
            "{row}"
        );
        assert!(row.contains("data-confirm=\"Revoke agent"), "{row}");
    }
    assert!(
        !agent_row(&page, "gone").contains("data-api"),
        "revoked: no button"
    );
    // The script the page loads is served.
    let script = ok_page(admin.page("/ui/assets/agents.js").await);
    assert!(script.contains("enrolment-token"), "{script}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_show_their_placement_and_the_form_edits_it() {
    let mut ts = TestServer::start(0).await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    let mut placed = endpoint(Kind::Local, "placed");
    placed.placement = EndpointPlacement {
        agents: vec!["b".into(), "c".into()],
        labels: vec!["dmz".into()],
    };
    for one in [&placed, &endpoint(Kind::Local, "free")] {
        let reply = ts.put_endpoint(one, None).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }

    let list = ok_page(admin.page("/ui/endpoints").await);
    assert!(
        list.contains("<td data-label=\"Runs on\" data-placement>agents b, c; labels dmz</td>"),
        "{list}"
    );
    assert!(
        list.contains("<td data-label=\"Runs on\" data-placement>anywhere</td>"),
        "{list}"
    );
    // The edit form is prefilled with one-line lists; the facts say it in words.
    let page = ok_page(admin.page("/ui/endpoints/placed").await);
    assert_eq!(
        field_value(&page, "placement.agents").as_deref(),
        Some("b, c")
    );
    assert_eq!(
        field_value(&page, "placement.labels").as_deref(),
        Some("dmz")
    );
    assert!(
        page.contains("<dd data-placement>agents b, c; labels dmz</dd>"),
        "{page}"
    );
    let free = ok_page(admin.page("/ui/endpoints/free").await);
    assert_eq!(field_value(&free, "placement.agents").as_deref(), Some(""));
    let new = ok_page(admin.page("/ui/endpoints/new").await);
    assert!(new.contains("name=\"placement.labels\""), "{new}");

    // The form's body (placement with the lists), a bad label refused naming the field the
    // form marks, and a body without placement putting the endpoint anywhere again.
    let root = placed_root(&ts, "placed").await;
    let body = |placement: Option<Value>| {
        let mut body = json!({"type": "local", "root": root});
        if let Some(placement) = placement {
            body["placement"] = placement;
        }
        body
    };
    let bad = admin
        .api(
            "PUT",
            "/api/v1/endpoints/placed",
            Some(body(Some(json!({"labels": ["DMZ!"]})))),
            true,
        )
        .await;
    assert_eq!(bad.error(400)["field"], "placement.labels", "{}", bad.body);
    let reply = admin
        .api(
            "PUT",
            "/api/v1/endpoints/placed",
            Some(body(Some(json!({"agents": ["d"]})))),
            true,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let page = ok_page(admin.page("/ui/endpoints/placed").await);
    assert!(page.contains("<dd data-placement>agents d</dd>"), "{page}");
    let reply = admin
        .api("PUT", "/api/v1/endpoints/placed", Some(body(None)), true)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let list = ok_page(admin.page("/ui/endpoints").await);
    assert!(!list.contains("agents d"), "{list}");
    ts.shutdown().await;
}

/// The root directory of the stored local endpoint `name`.
async fn placed_root(ts: &TestServer, name: &str) -> String {
    let listed = ts
        .api
        .get(&format!("/api/v1/endpoints/{name}"), &ts.keys.viewer)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json()["config"]["root"]
        .as_str()
        .unwrap()
        .to_string()
}
