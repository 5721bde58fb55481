//! The console's record pages over real HTTP (feature `server`): the audit log filtered
//! by caller, endpoint and time, paged, escaped, with its export links and chain check;
//! the logs filtered by level and job; a bad filter answered by a page naming the field.

mod common;

use common::console::Console;
use common::server::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_filters_pages_and_escapes() {
    let mut ts = TestServer::start(0).await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    for name in ["alpha", "beta"] {
        let reply = admin
            .api(
                "PUT",
                &format!("/api/v1/endpoints/{name}"),
                Some(json!({"type": "local", "root": "/tmp"})),
                true,
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let reply = admin
        .api(
            "PUT",
            "/api/v1/endpoints/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
            Some(json!({"type": "local", "root": "/tmp"})),
            true,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let all = viewer.page("/ui/audit").await;
    // Names a caller chose are text, never markup.
    assert!(
        all.body
            .contains("endpoint/&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        all.body
    );
    assert!(!all.body.contains("<img src=x"));
    let page = viewer.page("/ui/audit?endpoint=alpha").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("endpoint/alpha"), "{}", page.body);
    assert!(!page.body.contains("endpoint/beta"), "filtered by endpoint");
    // The export links carry the filter; the chain check is there for a viewer.
    assert!(
        page.body
            .contains("/api/v1/audit/export?endpoint=alpha&amp;format=csv")
    );
    assert!(page.body.contains("id=\"verify-chain\""));
    let csv = viewer
        .api(
            "GET",
            "/api/v1/audit/export?endpoint=alpha&format=csv",
            None,
            false,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.body.starts_with("id,at,actor,action,subject"),
        "{}",
        csv.body
    );

    // By caller: the sign-ins of both, the endpoints of the admin only.
    let page = viewer.page("/ui/audit?actor=key%3Aviewer").await;
    assert!(page.body.contains("session.opened"));
    assert!(!page.body.contains("endpoint/alpha"));
    // Paged: one record per page, the older link goes on below it.
    let first = viewer.page("/ui/audit?limit=1&actor=key%3Aadmin").await;
    let older = first
        .body
        .split("href=\"")
        .find_map(|rest| {
            rest.strip_prefix("/ui/audit?")
                .map(|r| r.split('"').next().unwrap().to_string())
        })
        .expect("an older-records link");
    assert!(older.contains("before_id="), "{older}");
    let second = viewer
        .page(&format!("/ui/audit?{}", older.replace("&amp;", "&")))
        .await;
    assert_eq!(second.status, 200);
    assert_ne!(first.body, second.body);

    // A bad filter is a page naming it, not a 500.
    let bad = viewer.page("/ui/audit?since=yesterday").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("since"), "{}", bad.body);
    let bad = viewer
        .page("/ui/audit?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z")
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("until"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_page_filters_and_refuses_bad_filters() {
    let mut ts = TestServer::setup(0).log_to_file().start().await;
    let operator = Console::sign_in(ts.addr(), &ts.keys.operator).await;
    let page = operator.page("/ui/logs?level=info&service=&job=").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"log-lines\""));
    assert!(
        page.body.contains("<option value=\"info\" selected>"),
        "the filter is kept"
    );
    let bad = operator.page("/ui/logs?level=loud").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("level"), "{}", bad.body);
    let bad = operator.page("/ui/logs?limit=0").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("limit"));
    ts.shutdown().await;
}
