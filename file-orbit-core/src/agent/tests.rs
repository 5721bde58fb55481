//! Agent mode's own checks: the `[agent]` configuration, the credential file, and the
//! client's URL failover against loopback listeners (they only answer fixed bytes, to see
//! which URL a call reaches; nothing here stands in for a control plane's job flow).

use super::client::{AgentClient, is_credential_refused};
use super::config::{AgentConfig, ENROLMENT_TOKEN_ENV};
use super::credential::{PendingCredential, obtain, read_credential};
use super::protocol::{AgentAbout, Hello};
use crate::error::ErrorKind;
use crate::secret::Secret;
use crate::worker::{STORE_URL_ENV, WorkerConfig};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CREDENTIAL: &str = "foa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const TOKEN: &str = "foe_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn agent_toml(agent: &str) -> String {
    format!(
        "workers = 2\n[agent]\ncontrol_plane = [\"https://10.0.0.1:8443\"]\n\
         credential_file = \"/var/lib/fo/agent.credential\"\n{agent}"
    )
}

fn refused(toml: &str) -> String {
    match WorkerConfig::from_toml(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn an_agent_config_needs_no_store_url_and_takes_the_defaults() {
    let config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    let agent = config.agent.as_ref().unwrap();
    assert_eq!(config.store_url, "");
    assert_eq!(agent.wait_secs, 20);
    assert_eq!(agent.urls().unwrap()[0].as_str(), "https://10.0.0.1:8443/");
    let full = WorkerConfig::from_toml(&agent_toml(&format!(
        "ca_file = \"/etc/fo/ca.pem\"\nenrolment_token = \"{TOKEN}\"\nwait_secs = 60\n"
    )))
    .unwrap();
    let agent = full.agent.unwrap();
    assert_eq!(
        (agent.wait_secs, agent.enrolment_token.unwrap().expose()),
        (60, TOKEN)
    );
}

#[test]
fn bad_agent_settings_are_refused_by_field() {
    let with_urls = |urls: &str| {
        refused(&format!(
            "[agent]\ncontrol_plane = [{urls}]\ncredential_file = \"/c\"\n"
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with_urls(""),
            "agent.control_plane: needs 1 to 8 URLs, got 0",
        ),
        (
            with_urls(&["\"http://h:1\""; 9].join(",")),
            "agent.control_plane: needs 1 to 8 URLs, got 9",
        ),
        (
            with_urls("\"ftp://h:1\""),
            "agent.control_plane[0]: \"ftp://h:1\" must be http:// or https://",
        ),
        (
            with_urls("\"https://h:1\", \"https://h:2/api\""),
            "agent.control_plane[1]: \"https://h:2/api\" must have no path",
        ),
        (with_urls("\"https://h:1/?x=1\""), "agent.control_plane[0]"),
        (
            with_urls("\"https://h:1\", \"https://h:1/\""),
            "is given twice",
        ),
        (with_urls("\"not a url\""), "is not a URL"),
        (
            refused(&agent_toml("wait_secs = 0\n")),
            "agent.wait_secs: 0 is not between 1 and 60",
        ),
        (
            refused(&agent_toml("wait_secs = 61\n")),
            "agent.wait_secs: 61",
        ),
        (
            refused(&agent_toml("enrolment_token = \"foa_nope\"\n")),
            "agent.enrolment_token: is not an enrolment token",
        ),
        (
            refused(&agent_toml("ca_file = \"\"\n")),
            "agent.ca_file: must not be empty",
        ),
        (
            refused(&agent_toml("colour = \"blue\"\n")),
            "unknown field `colour`",
        ),
    ];
    for (err, expected) in cases {
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
    // The password in a URL is never quoted back.
    let err = with_urls("\"https://u:hunter2@h:1\"");
    assert!(err.contains("must not carry a user or password"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = refused("[agent]\ncontrol_plane = [\"https://h:1\"]\ncredential_file = \"\"\n");
    assert!(
        err.contains("agent.credential_file: must not be empty"),
        "{err}"
    );
}

#[test]
fn a_worker_is_either_a_store_worker_or_an_agent() {
    let both = format!("store_url = \"sqlite://w.db\"\n{}", agent_toml(""));
    assert!(refused(&both).contains("store_url: an agent talks to the control plane"));
    assert!(refused("workers = 2\n").contains("store_url: must be set (or an [agent] section"));
    let unsupported = [
        (
            "[[sources]]\nname = \"s\"\nkind = \"remote_poll\"\nspec = { endpoint = \"e\" }\n",
            "sources: is not supported on agents yet",
        ),
        (
            "[[notifications]]\nname = \"n\"\nevents = [\"job_dead\"]\n\
             channel = { type = \"webhook\", url = \"https://h/x\", signing_key = \"0123456789abcdef\" }\n",
            "notifications: is not supported on agents yet",
        ),
        (
            "bandwidth = \"1M\"\n",
            "bandwidth: is not supported on agents yet",
        ),
    ];
    for (section, expected) in unsupported {
        let toml = format!(
            "workers = 2\n{section}[agent]\ncontrol_plane = [\"https://h:1\"]\ncredential_file = \"/c\"\n"
        );
        let err = refused(&toml);
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
}

#[test]
fn the_environment_gives_the_token_and_a_store_url_there_conflicts() {
    let mut config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    // No store URL in the environment: agent mode stays valid.
    config.apply_env_from(|_| None).unwrap();
    config
        .apply_env_from(|name| (name == ENROLMENT_TOKEN_ENV).then(|| TOKEN.to_string()))
        .unwrap();
    let token = config.agent.as_ref().unwrap().enrolment_token.as_ref();
    assert_eq!(token.map(Secret::expose), Some(TOKEN));
    let err = config
        .apply_env_from(|name| (name == ENROLMENT_TOKEN_ENV).then(|| "foe_short".to_string()))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agent.enrolment_token"), "{err}");
    assert!(!err.to_string().contains("foe_short"), "{err}");
    let mut config = WorkerConfig::from_toml(&agent_toml("")).unwrap();
    let err = config
        .apply_env_from(|name| (name == STORE_URL_ENV).then(|| "postgres://db/x".to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("FILE_ORBIT_STORE_URL"), "{err}");
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_credential_is_written_0600_through_a_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.credential");
    assert!(read_credential(&path).unwrap().is_none(), "no file yet");
    let pending = PendingCredential::create(&path).unwrap();
    let temporary = dir.path().join(".agent.credential.tmp");
    assert_eq!(
        mode_of(&temporary),
        0o600,
        "private before anything is in it"
    );
    assert!(!path.exists(), "the target only appears with the rename");
    pending.commit(&Secret::new(CREDENTIAL)).unwrap();
    assert!(!temporary.exists());
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{CREDENTIAL}\n")
    );
    assert_eq!(
        read_credential(&path).unwrap().unwrap().expose(),
        CREDENTIAL
    );
    // A stale temporary file (a crash mid-enrolment, made 0644) is replaced, and one not
    // committed is removed.
    std::fs::write(&temporary, "junk").unwrap();
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pending = PendingCredential::create(&path).unwrap();
    assert_eq!(mode_of(&temporary), 0o600);
    drop(pending);
    assert!(!temporary.exists());
    assert_eq!(
        read_credential(&path).unwrap().unwrap().expose(),
        CREDENTIAL
    );
}

#[test]
fn a_credential_file_others_can_read_or_that_holds_no_credential_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.credential");
    std::fs::write(&path, format!("  {CREDENTIAL}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_credential(&path).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agent.credential_file"));
    assert!(err.message.contains("mode 0644"), "{err}");
    assert!(err.message.contains("chmod 600"), "{err}");
    assert!(!err.to_string().contains(CREDENTIAL), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        read_credential(&path).unwrap().unwrap().expose(),
        CREDENTIAL,
        "trimmed"
    );
    std::fs::write(&path, "foa_short\n").unwrap();
    let err = read_credential(&path).unwrap_err();
    assert!(
        err.message.contains("does not hold an agent credential"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stored_credential_is_used_and_without_one_a_token_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.credential");
    // A URL nothing listens on: neither case may call the control plane.
    let config = AgentConfig::new(&[&closed_url()], &path);
    let client = AgentClient::new(&config).unwrap();
    let about = AgentAbout::this_process(2);
    let err = obtain(&client, &config, &about).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agent.credential_file"));
    assert!(err.message.contains(ENROLMENT_TOKEN_ENV), "{err}");
    assert!(!dir.path().join(".agent.credential.tmp").exists());
    PendingCredential::create(&path)
        .unwrap()
        .commit(&Secret::new(CREDENTIAL))
        .unwrap();
    let credential = obtain(&client, &config, &about).await.unwrap();
    assert_eq!(credential.expose(), CREDENTIAL);
}

/// A loopback URL whose port nothing listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A loopback listener that answers every request with `status` and `body`, and the
/// heads of the requests it got.
async fn answering(status: &'static str, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // The head, then as many body bytes as it announces.
            let head_end = loop {
                let read = stream.read(&mut chunk).await.unwrap_or(0);
                if read == 0 {
                    break None;
                }
                request.extend_from_slice(&chunk[..read]);
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(at + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            while request.len() < head_end + length {
                let read = stream.read(&mut chunk).await.unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..read]);
            }
            seen.lock().unwrap().push(head);
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, heads)
}

const HELLO_REPLY: &str = r#"{"name":"b","labels":["dmz"],"lease_secs":30,"report_ms":1000}"#;

fn client_for(urls: &[&str]) -> AgentClient {
    let client = AgentClient::new(&AgentConfig::new(urls, "/unused")).unwrap();
    client.set_credential(Secret::new(CREDENTIAL));
    client
}

fn hello() -> Hello {
    Hello {
        about: AgentAbout::this_process(2),
        started: true,
    }
}

fn count(heads: &Arc<Mutex<Vec<String>>>) -> usize {
    heads.lock().unwrap().len()
}

#[tokio::test]
async fn a_call_fails_over_past_a_dead_or_failing_url_and_stays_there() {
    let (live, live_heads) = answering("200 OK", HELLO_REPLY).await;
    let (failing, failing_heads) = answering(
        "503 Service Unavailable",
        r#"{"error":{"code":"store_unavailable","message":"the store is away"}}"#,
    )
    .await;
    let dead = closed_url();
    let client = client_for(&[&dead, &failing, &live]);
    let reply = client.hello(&hello()).await.unwrap();
    assert_eq!((reply.name.as_str(), reply.lease_secs), ("b", 30));
    assert_eq!((count(&failing_heads), count(&live_heads)), (1, 1));
    assert_eq!(client.current_url().as_str(), format!("{live}/"));
    let head = live_heads.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("post /api/v1/agent/hello http/1.1"),
        "{head}"
    );
    assert!(
        head.contains(&format!(
            "authorization: bearer {}",
            CREDENTIAL.to_lowercase()
        )),
        "{head}"
    );
    // The next call goes straight to the URL that answered.
    client.hello(&hello()).await.unwrap();
    assert_eq!((count(&failing_heads), count(&live_heads)), (1, 2));
}

#[tokio::test]
async fn a_refused_credential_or_bad_request_does_not_fail_over() {
    let (live, live_heads) = answering("200 OK", HELLO_REPLY).await;
    let (refusing, _) = answering(
        "401 Unauthorized",
        r#"{"error":{"code":"unauthenticated","message":"unknown or revoked agent credential"}}"#,
    )
    .await;
    let err = client_for(&[&refusing, &live])
        .hello(&hello())
        .await
        .unwrap_err();
    assert!(is_credential_refused(&err), "{err}");
    assert!(
        err.message.contains("unknown or revoked agent credential"),
        "{err}"
    );
    assert!(!err.retryable);
    let (invalid, _) = answering(
        "400 Bad Request",
        r#"{"error":{"code":"invalid_input","message":"must be below 4","field":"slots[0]"}}"#,
    )
    .await;
    let err = client_for(&[&invalid, &live])
        .lease(vec![7])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.ends_with("slots[0]: must be below 4"), "{err}");
    assert_eq!(count(&live_heads), 0, "no other URL was tried");
}

#[tokio::test]
async fn a_call_tries_each_url_once_then_gives_the_last_error() {
    let (gateway, gateway_heads) = answering("502 Bad Gateway", "upstream gone").await;
    let dead = closed_url();
    let err = client_for(&[&gateway, &dead])
        .hello(&hello())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err}");
    assert!(err.retryable);
    assert!(err.message.contains(&dead), "{err}");
    assert_eq!(count(&gateway_heads), 1, "one pass over the URLs");
    // The other way round, the error is what the gateway said.
    let client = client_for(&[&dead, &gateway]);
    let err = client.hello(&hello()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Remote, "{err}");
    assert!(err.retryable);
    assert!(
        err.message.contains("502 Bad Gateway: upstream gone"),
        "{err}"
    );
    assert_eq!(count(&gateway_heads), 2);
    // A pass that found nothing leaves the next call starting where it did.
    assert_eq!(client.current_url().as_str(), format!("{dead}/"));
}
