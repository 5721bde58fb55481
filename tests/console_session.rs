//! The web console's sign-in and its guards over real HTTP (feature `server`): a session
//! cookie for an API key or JWT (HttpOnly, SameSite=Strict), pages only for a session with
//! the page's role, the API answering the console's cookie only with its CSRF token for a
//! change, a viewer's forged change refused, sign-out and key revocation ending sessions,
//! no redirect off the site, and the security headers on every response.

mod common;

use common::console::{Console, field_value, request, set_cookie};
use common::server::{Setup, TestServer};
use file_orbit::server::{CONSOLE_ROUTES, CONTENT_SECURITY_POLICY, Role, sign_jwt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_gives_a_strict_session_cookie_and_pages_need_one() {
    let mut ts = TestServer::start(0).await;
    let base = format!("http://{}", ts.addr());
    // Not signed in: every page leads to the sign-in form, which comes back to it.
    let page = request(&base, "GET", "/ui/jobs?state=dead", "", &[], None).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/ui/login?next=%2Fui%2Fjobs%3Fstate%3Ddead")
    );
    assert_eq!(page.csp.as_deref(), Some(CONTENT_SECURITY_POLICY));

    // A wrong key is refused on the form, with no session cookie.
    let refused = Console::try_sign_in(ts.addr(), "fo_not_a_key")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unknown API key"), "{}", refused.body);
    assert!(set_cookie(&refused.cookies, "fo_session").is_none());

    // The sign-in form's token must come with its cookie.
    let form = request(&base, "GET", "/ui/login", "", &[], None).await;
    let csrf = field_value(&form.body, "csrf").unwrap();
    let body = format!("token={}&csrf={csrf}", ts.keys.viewer);
    let forged = request(
        &base,
        "POST",
        "/ui/login",
        "",
        &[],
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(set_cookie(&forged.cookies, "fo_session").is_none());

    // A key: the cookie is HttpOnly and SameSite=Strict; the page names the caller.
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let page = viewer.page("/ui/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("key:viewer"), "{}", page.body);
    assert_eq!(page.csp.as_deref(), Some(CONTENT_SECURITY_POLICY));
    let form = request(&base, "GET", "/ui/login", "", &[], None).await;
    let sign_in_cookie = set_cookie(&form.cookies, "fo_sign_in").unwrap();
    let body = format!(
        "token={}&csrf={}&next=%2F%2Fevil.example%2F",
        ts.keys.viewer,
        field_value(&form.body, "csrf").unwrap()
    );
    let reply = request(
        &base,
        "POST",
        "/ui/login",
        &format!("fo_sign_in={sign_in_cookie}"),
        &[],
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await;
    assert_eq!(reply.status, 303);
    // Never off the site, whatever `next` says.
    assert_eq!(reply.location.as_deref(), Some("/ui/"));
    let cookie = reply
        .cookies
        .iter()
        .find(|c| c.starts_with("fo_session="))
        .unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    // A JWT signs in too, named by its subject.
    let token = sign_jwt(
        "jwt-test-secret",
        &json!({"role": "operator", "sub": "ann", "exp": chrono::Utc::now().timestamp() + 600}),
    );
    let ann = Console::sign_in(ts.addr(), &token).await;
    assert!(ann.page("/ui/").await.body.contains("jwt:ann"));

    // Each page needs its role: a viewer is refused the admin's and operator's pages.
    let keys_page = viewer.page("/ui/keys").await;
    assert_eq!(keys_page.status, 403, "{}", keys_page.body);
    assert!(keys_page.body.contains("needs the admin role"));
    assert_eq!(viewer.page("/ui/transfers/new").await.status, 403);
    assert_eq!(ann.page("/ui/transfers/new").await.status, 200);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_the_console_cookie_only_with_its_csrf_token() {
    let mut ts = TestServer::start(0).await;
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    // Reading needs no token.
    assert_eq!(
        viewer
            .api("GET", "/api/v1/endpoints", None, false)
            .await
            .status,
        200
    );
    // A change without the token is refused, even for an admin: a page of another site
    // can make the browser send the cookie, not the token.
    let body = json!({"type": "local", "root": "/tmp"});
    let reply = admin
        .api("PUT", "/api/v1/endpoints/csrf", Some(body.clone()), false)
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("X-CSRF-Token"));
    let mut wrong = admin.clone();
    wrong.csrf = viewer.csrf.clone();
    let reply = wrong
        .api("PUT", "/api/v1/endpoints/csrf", Some(body.clone()), true)
        .await;
    assert_eq!(reply.status, 403, "another session's token: {}", reply.body);
    assert!(ts.orbit.endpoint("csrf").await.is_err());
    // With its token the admin's change goes through.
    let reply = admin
        .api("PUT", "/api/v1/endpoints/csrf", Some(body.clone()), true)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    // A viewer's forged change, token and all, is refused by the route's role.
    let reply = viewer
        .api("DELETE", "/api/v1/endpoints/csrf", None, true)
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("needs the Admin role"),
        "{}",
        reply.body
    );
    assert!(ts.orbit.endpoint("csrf").await.is_ok());
    // The audit log names the console's caller.
    let audit = ts.orbit.audit_log(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.subject == "endpoint/csrf" && r.actor == "key:admin"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r.action == "session.opened" && r.actor == "key:viewer")
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_and_revoking_the_key_end_the_session() {
    sessions_end(TestServer::setup(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_and_revoking_the_key_end_the_session_on_postgres() {
    sessions_end(TestServer::setup_on(&common::postgres_url().await, 0)).await;
}

async fn sessions_end(setup: Setup) {
    let mut ts = setup.start().await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    let minted = admin
        .api(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "ops", "role": "operator"})),
            true,
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.body);
    let key = minted.json()["key"].as_str().unwrap().to_string();
    let ops = Console::sign_in(ts.addr(), &key).await;
    assert_eq!(ops.page("/ui/jobs").await.status, 200);
    // Revoked: the next page is the sign-in form, the API refuses the cookie.
    let revoked = admin.api("DELETE", "/api/v1/keys/ops", None, true).await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(ops.page("/ui/jobs").await.status, 303);
    assert_eq!(
        ops.api("GET", "/api/v1/jobs", None, false).await.status,
        401
    );

    // Signing out needs the session's token, then ends it.
    let refused = admin.form("/ui/logout", &[("csrf", "00")]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(admin.page("/ui/").await.status, 200);
    let out = admin.form("/ui/logout", &[("csrf", &admin.csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/ui/login"));
    assert_eq!(admin.page("/ui/").await.status, 303);
    assert_eq!(
        admin.api("GET", "/api/v1/jobs", None, false).await.status,
        401
    );
    let audit = ts.orbit.audit_log(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "session.closed" && r.actor == "key:admin")
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_page_has_a_role_and_renders_for_an_admin() {
    let open: Vec<&str> = CONSOLE_ROUTES
        .iter()
        .filter(|route| route.role.is_none())
        .map(|route| route.path)
        .collect();
    // Only signing in, the way there and the static files are open.
    assert_eq!(
        open,
        [
            "/",
            "/ui",
            "/ui/login",
            "/ui/login",
            "/ui/logout",
            "/ui/assets/{name}"
        ]
    );
    let mut ts = TestServer::start(0).await;
    let base = format!("http://{}", ts.addr());
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    ts.put_endpoint(&common::endpoint(common::Kind::Local, "here"), None)
        .await;
    for route in CONSOLE_ROUTES.iter().filter(|route| route.role.is_some()) {
        let path = route.path.replace("{id}", "1").replace("{name}", "here");
        let anonymous = request(&base, "GET", &path, "", &[], None).await;
        assert_eq!(anonymous.status, 303, "{path} without a session");
        let page = admin.page(&path).await;
        // A page of a job that does not exist says so; every other one renders.
        let expected = if path == "/ui/jobs/1" { 404 } else { 200 };
        assert_eq!(page.status, expected, "{path}: {}", page.body);
        assert!(page.body.starts_with("<!doctype html>"), "{path}");
        let as_viewer = viewer.page(&path).await.status;
        if route.role > Some(Role::Viewer) {
            assert_eq!(as_viewer, 403, "{path} for a viewer");
        } else {
            assert_eq!(as_viewer, expected, "{path} for a viewer");
        }
    }
    for asset in ["app.css", "app.js"] {
        let reply = request(&base, "GET", &format!("/ui/assets/{asset}"), "", &[], None).await;
        assert_eq!(reply.status, 200);
        assert!(!reply.body.is_empty());
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_console_serves_no_page() {
    let mut setup = TestServer::setup(0);
    setup.config.console.enabled = false;
    let mut ts = setup.start().await;
    let base = format!("http://{}", ts.addr());
    for path in ["/", "/ui/", "/ui/login", "/ui/assets/app.js"] {
        let reply = request(&base, "GET", path, "", &[], None).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    // The API answers as before.
    assert_eq!(
        ts.api.get("/api/v1/jobs", &ts.keys.viewer).await.status,
        200
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_take_from_their_callers_rate_limit() {
    let mut setup = TestServer::setup(0);
    setup.config.rate_limit = file_orbit::server::RateLimit {
        per_second: 0.01,
        burst: 2,
    };
    let mut ts = setup.start().await;
    // The first sign-in and its first page take the two tokens.
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let refused = Console::try_sign_in(ts.addr(), &ts.keys.viewer)
        .await
        .err()
        .expect("a third request is refused");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("Too many sign-ins"));
    assert_eq!(viewer.page("/ui/jobs").await.status, 429);
    // Another caller has its own tokens.
    Console::sign_in(ts.addr(), &ts.keys.admin).await;
    ts.shutdown().await;
}
