//! The console's endpoints pages over real HTTP (feature `server`), signed in like a
//! browser: the list with a hostile name escaped, the controls each role sees, the edit
//! page never holding a stored secret (only "set"), the API's rule that a secret left out
//! of a replace keeps the stored one (so saving the console's form keeps the password and
//! the real SFTP server still lets it in), and a wrong SFTP password diagnosed as an
//! authentication problem.

mod common;

use common::console::{Console, PageReply, field_value};
use common::server::*;
use common::{Kind, endpoint, env, sftp_config};
use file_orbit::endpoint::{Bandwidth, Endpoint, EndpointConfig, SftpAuth};
use serde_json::{Value, json};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// `HOSTILE` as a path segment.
const HOSTILE_PATH: &str = "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E";

/// The SFTP endpoint `name` on the real test server, with `password`.
fn sftp(name: &str, password: &str) -> Endpoint {
    let mut config = sftp_config("");
    config.auth = SftpAuth::Password {
        password: password.into(),
    };
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config: EndpointConfig::Sftp(config),
    }
}

/// The stored SFTP endpoint's password.
async fn stored_password(ts: &TestServer, name: &str) -> String {
    match ts.orbit.endpoint(name).await.unwrap().config {
        EndpointConfig::Sftp(sftp) => match sftp.auth {
            SftpAuth::Password { password } => password.expose().to_string(),
            other => panic!("not a password login: {other:?}"),
        },
        other => panic!("not SFTP: {other:?}"),
    }
}

/// A 400 for the missing login secret `field`, named as the form names it (`auth.<field>`).
fn assert_missing(reply: &common::api::Reply, field: &str) {
    let error = reply.error(400);
    assert_eq!(error["field"], format!("auth.{field}"), "{}", reply.body);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("missing field `{field}`")),
        "{message}"
    );
}

fn ok_page(reply: PageReply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_escapes_names_and_each_role_sees_only_its_controls() {
    let mut ts = TestServer::start(0).await;
    let mut hostile = endpoint(Kind::Local, HOSTILE);
    hostile.bandwidth = Some("10M:2M".parse::<Bandwidth>().unwrap());
    ts.orbit.put_endpoint(&hostile, 3).await.unwrap();
    ts.orbit
        .put_endpoint(&sftp("partner", &env("SFTP_PASSWORD")), 2)
        .await
        .unwrap();
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let operator = Console::sign_in(ts.addr(), &ts.keys.operator).await;
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;

    // The list: every endpoint, the hostile name as text, its link escaped.
    let list = ok_page(viewer.page("/ui/endpoints").await);
    assert!(
        list.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{list}"
    );
    assert!(!list.contains("<img"), "{list}");
    assert!(list.contains(HOSTILE_PATH), "{list}");
    assert!(list.contains("10M:2M"), "{list}");
    assert!(
        list.contains(&format!("{}@127.0.0.1:", env("SFTP_USER"))),
        "{list}"
    );
    assert!(
        !list.contains("New endpoint"),
        "a viewer cannot create: {list}"
    );
    let list = ok_page(admin.page("/ui/endpoints").await);
    assert!(list.contains("New endpoint"), "{list}");

    // The hostile endpoint's own page escapes it too.
    let page = ok_page(viewer.page(&format!("/ui/endpoints/{HOSTILE_PATH}")).await);
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img"), "{page}");

    // A viewer reads; an operator also tests; only an admin edits and deletes.
    let controls = ["id=\"endpoint-form\"", "Save endpoint", "Delete endpoint"];
    let test_button = ">Test connection</button>";
    let page = ok_page(viewer.page("/ui/endpoints/partner").await);
    assert!(page.contains("partner"), "{page}");
    for control in controls.iter().chain([&test_button]) {
        assert!(!page.contains(control), "a viewer sees {control}: {page}");
    }
    let page = ok_page(operator.page("/ui/endpoints/partner").await);
    assert!(page.contains(test_button), "{page}");
    for control in controls {
        assert!(
            !page.contains(control),
            "an operator sees {control}: {page}"
        );
    }
    let page = ok_page(admin.page("/ui/endpoints/partner").await);
    for control in controls.iter().chain([&test_button]) {
        assert!(page.contains(control), "an admin lacks {control}: {page}");
    }
    assert_eq!(viewer.page("/ui/endpoints/new").await.status, 403);
    assert_eq!(operator.page("/ui/endpoints/new").await.status, 403);

    // The create form: one field per JSON field, secrets empty.
    let form = ok_page(admin.page("/ui/endpoints/new").await);
    for name in [
        "name",
        "type",
        "root",
        "host",
        "port",
        "user",
        "auth.method",
        "auth.password",
        "auth.path",
        "auth.pem",
        "auth.passphrase",
        "host_key.check",
        "host_key.path",
        "host_key.keys",
        "server_hashes",
        "share",
        "domain",
        "password",
        "bucket",
        "prefix",
        "region",
        "endpoint_url",
        "provider",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "force_path_style",
        "storage_class",
        "server_side_encryption",
        "max_concurrent",
        "bandwidth",
    ] {
        assert!(
            form.contains(&format!("name=\"{name}\"")),
            "no field {name}: {form}"
        );
        let id = format!("id=\"f-{}\"", name.replace('.', "-"));
        assert!(
            form.contains(&id) && form.contains(&format!("for=\"f-{}\"", name.replace('.', "-"))),
            "field {name} has no label: {form}"
        );
    }
    assert!(form.contains("/ui/assets/endpoints.js"), "{form}");
    assert!(form.contains("Save endpoint"), "{form}");

    // An unknown name is a 404 page, the name escaped.
    let missing = admin.page(&format!("/ui/endpoints/{HOSTILE_PATH}x")).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("&lt;img"), "{}", missing.body);
    assert!(!missing.body.contains("<img"), "{}", missing.body);
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_keeps_the_stored_secret_the_page_never_shows() {
    let mut ts = TestServer::start(0).await;
    let password = env("SFTP_PASSWORD");
    ts.orbit
        .put_endpoint(&sftp("partner", &password), 2)
        .await
        .unwrap();
    ts.orbit
        .put_endpoint(&sftp("canary", CANARY), 2)
        .await
        .unwrap();
    let admin = Console::sign_in(ts.addr(), &ts.keys.admin).await;
    let operator = Console::sign_in(ts.addr(), &ts.keys.operator).await;

    // The edit page shows the password as set, never its value.
    for name in ["canary", "partner"] {
        let page = ok_page(admin.page(&format!("/ui/endpoints/{name}")).await);
        assert!(!page.contains(CANARY), "{page}");
        assert!(!page.contains(&password), "{page}");
        assert!(page.contains("data-secret-state=\"set\""), "{page}");
        assert!(page.contains("id=\"f-auth-password-state\""), "{page}");
        assert_eq!(field_value(&page, "host").as_deref(), Some("127.0.0.1"));
        assert_eq!(field_value(&page, "max_concurrent").as_deref(), Some("2"));
    }
    let list = ok_page(admin.page("/ui/endpoints").await);
    assert!(!list.contains(CANARY), "{list}");

    // Saving the form as the console's script sends it: no password (the field is left
    // empty), a new limit and concurrency. The stored password is kept.
    let sent = json!({
        "name": "partner", "type": "sftp", "host": env("SFTP_HOST"),
        "port": env("SFTP_PORT").parse::<u16>().unwrap(), "user": env("SFTP_USER"),
        "auth": {"method": "password"},
        "host_key": {"check": "known_hosts_file", "path": env("SFTP_KNOWN_HOSTS")},
        "server_hashes": false, "max_concurrent": 3, "bandwidth": "08:00,512k 19:00,off",
    });
    let reply = admin
        .api("PUT", "/api/v1/endpoints/partner", Some(sent.clone()), true)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["max_concurrent"], 3);
    assert_eq!(reply.json()["config"]["auth"]["password"], "***");
    assert_eq!(stored_password(&ts, "partner").await, password);
    let page = ok_page(admin.page("/ui/endpoints/partner").await);
    assert!(page.contains("08:00,512k 19:00,off"), "{page}");
    // ... and the real server still lets it in.
    let test = operator
        .api("POST", "/api/v1/endpoints/partner/test", None, true)
        .await;
    assert_eq!(test.status, 200, "{}", test.body);
    assert_eq!(test.json()["ok"], true, "{}", test.body);

    // A new password replaces it; the masked value is still refused.
    let mut replaced = sent.clone();
    replaced["auth"]["password"] = json!(CANARY);
    let reply = admin
        .api("PUT", "/api/v1/endpoints/partner", Some(replaced), true)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(stored_password(&ts, "partner").await, CANARY);
    let mut masked = sent.clone();
    masked["auth"]["password"] = json!("***");
    let reply = admin
        .api("PUT", "/api/v1/endpoints/partner", Some(masked), true)
        .await;
    assert_eq!(reply.error(400)["field"], "auth.password", "{}", reply.body);

    // Another login method never inherits the password, nor a new endpoint one.
    let mut key = sent.clone();
    key["auth"] = json!({"method": "key_pem"});
    let reply = admin
        .api("PUT", "/api/v1/endpoints/partner", Some(key), true)
        .await;
    assert_missing(&reply, "pem");
    let mut fresh = sent.clone();
    fresh["name"] = json!("fresh");
    let reply = admin
        .api("PUT", "/api/v1/endpoints/fresh", Some(fresh), true)
        .await;
    assert_missing(&reply, "password");

    // An optional secret: kept when left out, removed by null.
    let mut with_key = sent.clone();
    with_key["auth"] = json!({"method": "key_file", "path": env("SFTP_KEY_FILE"),
        "passphrase": "pass-phrase-1"});
    let reply = admin
        .api(
            "PUT",
            "/api/v1/endpoints/partner",
            Some(with_key.clone()),
            true,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let passphrase = |endpoint: Endpoint| match endpoint.config {
        EndpointConfig::Sftp(sftp) => match sftp.auth {
            SftpAuth::KeyFile { passphrase, .. } => passphrase.map(|p| p.expose().to_string()),
            other => panic!("not a key file: {other:?}"),
        },
        other => panic!("not SFTP: {other:?}"),
    };
    with_key["auth"]
        .as_object_mut()
        .unwrap()
        .remove("passphrase");
    let reply = admin
        .api(
            "PUT",
            "/api/v1/endpoints/partner",
            Some(with_key.clone()),
            true,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let kept = passphrase(ts.orbit.endpoint("partner").await.unwrap());
    assert_eq!(kept.as_deref(), Some("pass-phrase-1"));
    let page = ok_page(admin.page("/ui/endpoints/partner").await);
    assert!(page.contains("Remove the stored key passphrase"), "{page}");
    assert!(!page.contains("pass-phrase-1"), "{page}");
    with_key["auth"]["passphrase"] = Value::Null;
    let reply = admin
        .api("PUT", "/api/v1/endpoints/partner", Some(with_key), true)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        passphrase(ts.orbit.endpoint("partner").await.unwrap()),
        None
    );
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sftp_password_is_diagnosed_as_authentication() {
    let mut ts = TestServer::start(0).await;
    ts.orbit
        .put_endpoint(&sftp("canary", CANARY), 2)
        .await
        .unwrap();
    let operator = Console::sign_in(ts.addr(), &ts.keys.operator).await;
    let reply = operator
        .api(
            "POST",
            "/api/v1/endpoints/canary/test?write_probe=false",
            None,
            true,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let diagnosis = reply.json();
    assert_eq!(diagnosis["ok"], false, "{diagnosis}");
    assert_eq!(diagnosis["problem"], "authentication", "{diagnosis}");
    let message = diagnosis["message"].as_str().unwrap();
    assert!(message.contains("authentication failed"), "{message}");
    assert!(!reply.body.contains(CANARY), "{}", reply.body);
    // Without the CSRF token the console's cookie cannot test.
    let refused = operator
        .api("POST", "/api/v1/endpoints/canary/test", None, false)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(ts.shutdown().await, "clean shutdown");
}
