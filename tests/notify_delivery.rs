//! Delivery of notification messages to the real receivers `scripts/test-servers.sh`
//! starts (`scripts/notify-receivers.py`: SMTP with STARTTLS and AUTH, SMTPS, and an HTTP
//! receiver verifying webhook signatures and Slack/Teams shapes), and what needs no
//! receiver: a closed port, and the guard's refusals (of a host, of what a name resolves
//! to, of a redirect). Errors must say whether a retry helps and never hold a secret.

mod common;

use common::{env, unique};
use file_orbit::ErrorKind;
use file_orbit::Secret;
use file_orbit::notify::deliver::Delivery;
use file_orbit::notify::guard::AllowList;
use file_orbit::notify::{
    Channel, EmailChannel, ErrorFacts, Item, JobFacts, Message, NotifyEvent, Side, SlackChannel,
    SmtpTls, TeamsChannel, WebhookChannel,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn delivery(allow: &[&str], timeout: Duration) -> Delivery {
    let allow: Vec<String> = allow.iter().map(|a| a.to_string()).collect();
    Delivery::new(AllowList::parse(&allow).unwrap(), timeout).unwrap()
}

fn item(id: i64) -> Item {
    Item {
        event: NotifyEvent::JobDead,
        at: chrono::Utc::now(),
        audit_id: id,
        subject: format!("job/{id}"),
        job: Some(JobFacts {
            id,
            url: format!("http://127.0.0.1:8080/api/v1/jobs/{id}"),
            state: "dead".into(),
            template: Some("nightly".into()),
            source: Side {
                endpoint: "partner-in".into(),
                path: format!("/inbox/file-{id}.csv"),
            },
            destination: Side {
                endpoint: "archive".into(),
                path: "/2026/12/".into(),
            },
            attempt: 3,
            max_attempts: 3,
            chain: id,
        }),
        source: None,
        endpoint: None,
        worker: None,
        error: Some(ErrorFacts {
            kind: "Connection".into(),
            message: "connection refused <by> peer & co".into(),
        }),
    }
}

/// A message of `n` dead jobs (a digest when more than one; 50 listed at most).
fn message(n: usize) -> Message {
    let items: Vec<Item> = (1..=n.min(50) as i64).map(item).collect();
    Message {
        id: unique("msg"),
        notification: "ops".into(),
        event: if n == 1 { "job_dead" } else { "digest" }.into(),
        created_at: chrono::Utc::now(),
        count: n as u64,
        counts: BTreeMap::from([("job_dead".to_string(), n as u64)]),
        omitted: (n - items.len()) as u64,
        items,
        test: false,
    }
}

// ---------------------------------------------------------------- the receivers' protocol

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Sets receiver `name`'s mode, signing key, redirect target.
async fn control(name: &str, settings: Value) {
    let url = format!("{}/control/{name}", env("NOTIFY_URL"));
    let status = tokio::task::spawn_blocking(move || {
        agent()
            .put(&url)
            .header("Content-Type", "application/json")
            .send(&settings.to_string())
            .expect("the receiver answers")
            .status()
    })
    .await
    .unwrap();
    assert!(status.is_success(), "control {name}: {status}");
}

async fn read(path: String) -> Value {
    let url = format!("{}{path}", env("NOTIFY_URL"));
    let text = tokio::task::spawn_blocking(move || {
        agent()
            .get(&url)
            .call()
            .expect("the receiver answers")
            .body_mut()
            .read_to_string()
            .expect("the receiver answers text")
    })
    .await
    .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// What receiver `name` accepted and refused.
async fn received(name: &str) -> (Vec<Value>, Vec<Value>) {
    let got = read(format!("/received/{name}")).await;
    let list = |key: &str| got[key].as_array().cloned().unwrap_or_default();
    (list("accepted"), list("refused"))
}

async fn mails(address: &str) -> Vec<Value> {
    let got = read(format!("/received/mail/{}", address.to_lowercase())).await;
    got["accepted"].as_array().cloned().unwrap_or_default()
}

/// The HTTP receiver's port (`NOTIFY_URL` is `http://127.0.0.1:<port>`).
fn receiver_port() -> u16 {
    let base = env("NOTIFY_URL");
    base.trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn url(kind: &str, name: &str) -> String {
    format!("{}/{kind}/{name}", env("NOTIFY_URL"))
}

fn webhook(name: &str, key: &str) -> Channel {
    Channel::Webhook(WebhookChannel {
        url: url("webhook", name),
        signing_key: Secret::new(key),
    })
}

fn slack(name: &str) -> Channel {
    Channel::Slack(SlackChannel {
        webhook_url: Secret::new(url("slack", name)),
    })
}

fn teams(name: &str) -> Channel {
    Channel::Teams(TeamsChannel {
        webhook_url: Secret::new(url("teams", name)),
    })
}

fn email(to: &str, tls: SmtpTls, port: &str, password: &str) -> EmailChannel {
    EmailChannel {
        host: env("SMTP_HOST"),
        port: Some(env(port).parse().unwrap()),
        tls,
        username: Some(env("SMTP_USER")),
        password: Some(Secret::new(password)),
        from: "File Orbit <orbit@orbit.test>".into(),
        to: vec![to.to_string()],
        ca_file: Some(env("NOTIFY_CA").into()),
    }
}

// ---------------------------------------------------------------- with the receivers

#[tokio::test]
async fn a_signed_webhook_is_verified_and_a_tampered_body_refused() {
    let name = unique("wh");
    let key = "a-signing-key-of-the-test-0123";
    control(&name, json!({"mode": "up", "signing_key": key})).await;
    let sent = message(1);
    let answer = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&webhook(&name, key), &sent)
        .await
        .unwrap();
    assert_eq!(answer, "HTTP 200 OK");
    let (accepted, refused) = received(&name).await;
    assert_eq!((accepted.len(), refused.len()), (1, 0), "{refused:?}");
    let record = &accepted[0];
    assert_eq!(record["id"], sent.id.as_str());
    assert_eq!(record["headers"]["x-file-orbit-event"], "job_dead");
    let user_agent = record["headers"]["user-agent"].as_str().unwrap();
    assert!(user_agent.starts_with("file-orbit/"), "{user_agent}");
    let body = &record["json"];
    assert_eq!(body["schema"], "file-orbit.notification/v1");
    assert_eq!(body["items"][0]["job"]["id"], 1);
    assert!(!record["body"].as_str().unwrap().contains(key));
    let timestamp = record["headers"]["x-file-orbit-timestamp"]
        .as_str()
        .unwrap();
    let signature = record["headers"]["x-file-orbit-signature"]
        .as_str()
        .unwrap();
    assert!(
        signature.starts_with(&format!("t={timestamp},v1=")),
        "{signature}"
    );

    // The same signature over a changed body: the receiver refuses it.
    let tampered = record["body"]
        .as_str()
        .unwrap()
        .replace("file-1.csv", "file-9.csv");
    let target = url("webhook", &name);
    let (id, signature) = (sent.id.clone(), signature.to_string());
    let status = tokio::task::spawn_blocking(move || {
        agent()
            .post(&target)
            .header("Content-Type", "application/json")
            .header("X-File-Orbit-Id", &id)
            .header("X-File-Orbit-Event", "job_dead")
            .header("X-File-Orbit-Signature", &signature)
            .send(&tampered)
            .unwrap()
            .status()
    })
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 401);

    // Signed with another key: refused for good, as a credential problem.
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&webhook(&name, "another-key-not-the-receivers"), &sent)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Authentication, "{err}");
    assert!(!err.retryable);
    assert!(err.message.contains("HTTP 401 Unauthorized: "), "{err}");
    assert!(err.message.contains("no v1 matches"), "{err}");
    assert!(!err.to_string().contains("another-key"), "{err}");
}

#[tokio::test]
async fn slack_and_teams_receivers_accept_the_shapes_of_a_60_event_digest() {
    let name = unique("chat");
    control(&name, json!({"mode": "up"})).await;
    let delivery = delivery(&["127.0.0.1"], TIMEOUT);
    let digest = message(60);
    assert_eq!(
        delivery.send(&slack(&name), &digest).await.unwrap(),
        "HTTP 200 OK"
    );
    assert_eq!(
        delivery.send(&teams(&name), &digest).await.unwrap(),
        "HTTP 202 Accepted"
    );
    let (accepted, refused) = received(&name).await;
    assert_eq!((accepted.len(), refused.len()), (2, 0), "{refused:?}");
    let blocks = accepted[0]["json"]["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let card = &accepted[1]["json"]["attachments"][0]["content"];
    assert_eq!(
        card["actions"][0]["url"],
        "http://127.0.0.1:8080/api/v1/jobs/1"
    );
}

#[tokio::test]
async fn a_mail_arrives_through_starttls_and_through_implicit_tls_with_a_stable_id() {
    let delivery = delivery(&["127.0.0.1"], TIMEOUT);
    let password = env("SMTP_PASSWORD");
    for (tls, port) in [
        (SmtpTls::Starttls, "SMTP_PORT"),
        (SmtpTls::Tls, "SMTPS_PORT"),
    ] {
        let to = format!("{}@orbit.test", unique("ops"));
        let channel = Channel::Email(email(&to, tls, port, &password));
        let sent = message(3);
        let answer = delivery.send(&channel, &sent).await.unwrap();
        assert!(answer.starts_with("SMTP 250"), "{answer}");
        let got = mails(&to).await;
        assert_eq!(got.len(), 1, "{tls:?}");
        let mail = &got[0];
        assert_eq!(mail["message_id"], format!("<{}@file-orbit>", sent.id));
        assert_eq!(mail["tls"], true);
        assert_eq!(mail["auth_user"], env("SMTP_USER"));
        let subject = mail["subject"].as_str().unwrap();
        assert!(subject.starts_with("[File Orbit] 3 events"), "{subject}");
        let text = mail["text"].as_str().unwrap();
        for id in 1..=3 {
            assert!(
                text.contains(&format!("http://127.0.0.1:8080/api/v1/jobs/{id}")),
                "{text}"
            );
            assert!(
                text.contains(&format!("partner-in:/inbox/file-{id}.csv")),
                "{text}"
            );
        }
        assert!(
            text.contains("Connection: connection refused <by> peer & co"),
            "{text}"
        );
        assert!(text.contains(&format!("Message id: {}", sent.id)), "{text}");
        assert!(!mail["raw"].as_str().unwrap().contains(&password));
    }
}

#[tokio::test]
async fn a_wrong_smtp_password_is_a_final_authentication_error_without_the_password() {
    let to = format!("{}@orbit.test", unique("ops"));
    let wrong = "wrong-password-canary-77";
    let channel = Channel::Email(email(&to, SmtpTls::Starttls, "SMTP_PORT", wrong));
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&channel, &message(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Authentication, "{err}");
    assert!(!err.retryable);
    assert!(err.message.contains("535"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(&env("SMTP_PASSWORD")),
        "{shown}"
    );
    assert!(mails(&to).await.is_empty());
}

#[tokio::test]
async fn a_server_without_the_ca_is_not_trusted() {
    let to = format!("{}@orbit.test", unique("ops"));
    let mut channel = email(&to, SmtpTls::Tls, "SMTPS_PORT", &env("SMTP_PASSWORD"));
    channel.ca_file = None;
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&Channel::Email(channel), &message(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err}");
    assert!(
        err.message
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    assert!(mails(&to).await.is_empty());
}

#[tokio::test]
async fn a_down_receiver_is_retryable_and_the_error_never_quotes_a_secret_url() {
    let name = unique("slack-secret-T0B1X2");
    control(&name, json!({"mode": "down"})).await;
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&slack(&name), &message(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Remote, "{err}");
    assert!(err.retryable);
    assert!(
        err.message
            .starts_with("slack answered HTTP 503 Service Unavailable: "),
        "{err}"
    );
    assert!(err.message.chars().count() <= 260, "{err}");
    assert!(!format!("{err} {err:?}").contains("slack-secret"), "{err}");

    // Back up: the same message goes through.
    control(&name, json!({"mode": "up"})).await;
    let answer = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&slack(&name), &message(1))
        .await;
    assert_eq!(answer.unwrap(), "HTTP 200 OK");
}

#[tokio::test]
async fn an_unknown_path_is_final_and_a_hanging_receiver_times_out_retryably() {
    let name = unique("teams-secret-Q9");
    let missing = Channel::Teams(TeamsChannel {
        webhook_url: Secret::new(url("nowhere", &name)),
    });
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&missing, &message(1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::Remote, false),
        "{err}"
    );
    assert!(err.message.contains("HTTP 404 Not Found"), "{err}");
    assert!(!err.message.contains("teams-secret"), "{err}");

    control(&name, json!({"mode": "hang"})).await;
    let started = std::time::Instant::now();
    let err = delivery(&["127.0.0.1"], Duration::from_secs(1))
        .send(&teams(&name), &message(1))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::Connection, true),
        "{err}"
    );
    assert!(err.message.contains("did not answer within 1 s"), "{err}");
    assert!(!format!("{err} {err:?}").contains("teams-secret"), "{err}");
    control(&name, json!({"mode": "up"})).await;
}

#[tokio::test]
async fn redirects_are_followed_three_times_to_allowed_hosts_only() {
    let key = "a-signing-key-of-the-test-0123";
    let last = unique("hop-last");
    control(&last, json!({"mode": "up", "signing_key": key})).await;
    // hop1 -> hop2 -> hop3 -> last: three redirects.
    let mut target = url("webhook", &last);
    let mut hops = Vec::new();
    for i in (1..=4).rev() {
        let hop = unique(&format!("hop{i}"));
        control(&hop, json!({"mode": "redirect", "redirect_to": target})).await;
        target = url("webhook", &hop);
        hops.push(hop);
    }
    hops.reverse();
    let delivery = delivery(&["127.0.0.1"], TIMEOUT);
    let answer = delivery.send(&webhook(&hops[1], key), &message(1)).await;
    assert_eq!(answer.unwrap(), "HTTP 200 OK");
    assert_eq!(received(&last).await.0.len(), 1);

    let err = delivery
        .send(&webhook(&hops[0], key), &message(1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::Remote, false),
        "{err}"
    );
    assert!(
        err.message.contains("redirected more than 3 times"),
        "{err}"
    );
    assert_eq!(received(&last).await.0.len(), 1);

    // To a name not listed, and to the metadata address: refused, without the path.
    let port = receiver_port();
    for (to, says) in [
        (
            format!("http://localhost:{port}/webhook/{last}?token=XSECRETX"),
            "refused a redirect: host \"localhost\" is not in notifier.allow".to_string(),
        ),
        (
            "http://169.254.169.254/latest/meta-data/XSECRETX".to_string(),
            "refused a redirect: address 169.254.169.254 (a link-local address)".to_string(),
        ),
    ] {
        let hop = unique("hop-out");
        control(&hop, json!({"mode": "redirect", "redirect_to": to})).await;
        let err = delivery.send(&slack(&hop), &message(1)).await.unwrap_err();
        assert_eq!(
            (err.kind, err.retryable),
            (ErrorKind::PermissionDenied, false),
            "{err}"
        );
        assert!(err.message.starts_with(&says), "{err}");
        assert!(!format!("{err:?}").contains("XSECRETX"), "{err:?}");
    }
    assert_eq!(received(&last).await.0.len(), 1);
}

#[tokio::test]
async fn a_name_is_reached_only_when_it_and_its_addresses_are_listed() {
    let name = unique("byname");
    control(&name, json!({"mode": "up"})).await;
    let port = receiver_port();
    let channel = Channel::Slack(SlackChannel {
        webhook_url: Secret::new(format!("http://localhost:{port}/slack/{name}")),
    });
    // The name is listed, but what it resolves to is not: the resolver refuses it.
    let err = delivery(&["localhost"], TIMEOUT)
        .send(&channel, &message(1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::PermissionDenied, false),
        "{err}"
    );
    assert!(
        err.message.starts_with("host \"localhost\" resolves to "),
        "{err}"
    );
    assert!(
        err.message
            .contains("a loopback address not in notifier.allow"),
        "{err}"
    );
    assert!(!err.message.contains(&name), "{err}");
    assert!(received(&name).await.0.is_empty());

    let both = delivery(&["localhost", "127.0.0.0/8", "::1"], TIMEOUT);
    assert_eq!(
        both.send(&channel, &message(1)).await.unwrap(),
        "HTTP 200 OK"
    );
    assert_eq!(received(&name).await.0.len(), 1);
}

// ---------------------------------------------------------------- without a receiver

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_connection_error() {
    let port = closed_port();
    let delivery = delivery(&["127.0.0.1"], TIMEOUT);
    let secret_url = format!("http://127.0.0.1:{port}/services/T0/B0/XSECRETX");
    for channel in [
        Channel::Webhook(WebhookChannel {
            url: format!("http://127.0.0.1:{port}/hook"),
            signing_key: Secret::new("signing-key-XSECRETX-0123"),
        }),
        Channel::Slack(SlackChannel {
            webhook_url: Secret::new(secret_url.clone()),
        }),
        Channel::Teams(TeamsChannel {
            webhook_url: Secret::new(secret_url.clone()),
        }),
    ] {
        let err = delivery.send(&channel, &message(1)).await.unwrap_err();
        assert_eq!(
            (err.kind, err.retryable),
            (ErrorKind::Connection, true),
            "{err}"
        );
        assert!(
            err.message.starts_with("could not connect to the "),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("XSECRETX"), "{err:?}");
    }
    let mail = Channel::Email(EmailChannel {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::Starttls,
        username: Some("orbit".into()),
        password: Some(Secret::new("smtp-XSECRETX")),
        from: "orbit@orbit.test".into(),
        to: vec!["ops@orbit.test".into()],
        ca_file: None,
    });
    let err = delivery.send(&mail, &message(1)).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::Connection, true),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("XSECRETX"), "{err:?}");
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_refused_for_good_without_the_url() {
    let entries = ["127.0.0.1", "*.webhook.office.com"];
    let delivery = delivery(&entries, TIMEOUT);
    let allow = AllowList::parse(&entries.map(String::from)).unwrap();
    let cases = [
        (
            Channel::Slack(SlackChannel {
                webhook_url: Secret::new("https://hooks.slack.com/services/T0/B0/XSECRETX"),
            }),
            "host \"hooks.slack.com\" is not in notifier.allow",
        ),
        (
            Channel::Webhook(WebhookChannel {
                url: "http://169.254.169.254/latest/meta-data/?x=XSECRETX".into(),
                signing_key: Secret::new("signing-key-0123456789"),
            }),
            "address 169.254.169.254 (a link-local address) is not in notifier.allow",
        ),
        (
            Channel::Webhook(WebhookChannel {
                url: "http://2852039166/XSECRETX".into(),
                signing_key: Secret::new("signing-key-0123456789"),
            }),
            "address 169.254.169.254 (a link-local address) is not in notifier.allow",
        ),
        (
            Channel::Teams(TeamsChannel {
                webhook_url: Secret::new("https://[fd00:ec2::254]/XSECRETX"),
            }),
            "address fd00:ec2::254 (the AWS metadata address) is not in notifier.allow",
        ),
        (
            Channel::Email(EmailChannel {
                host: "2852039166".into(),
                port: Some(25),
                tls: SmtpTls::None,
                username: None,
                password: None,
                from: "orbit@orbit.test".into(),
                to: vec!["ops@orbit.test".into()],
                ca_file: None,
            }),
            "address 169.254.169.254 (a link-local address) is not in notifier.allow",
        ),
    ];
    for (channel, says) in cases {
        let err = delivery.send(&channel, &message(1)).await.unwrap_err();
        assert_eq!(
            (err.kind, err.retryable),
            (ErrorKind::PermissionDenied, false),
            "{err}"
        );
        assert_eq!(err.message, says);
        let err = allow.check_channel(&channel).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert_eq!(
            err.field.as_deref(),
            Some(format!("channel.{}", channel.host_field()).as_str())
        );
        assert_eq!(err.message, says);
        assert!(!format!("{err:?}").contains("XSECRETX"));
    }
    let allowed = Channel::Webhook(WebhookChannel {
        url: format!("http://127.0.0.1:{}/hook", closed_port()),
        signing_key: Secret::new("signing-key-0123456789"),
    });
    allow.check_channel(&allowed).await.unwrap();
}

#[test]
fn a_bad_timeout_is_refused_naming_the_field() {
    for timeout in [Duration::ZERO, Duration::from_secs(601)] {
        let err = Delivery::new(AllowList::default(), timeout).err().unwrap();
        assert_eq!(err.field.as_deref(), Some("timeout"));
    }
}

#[tokio::test]
async fn a_request_that_cannot_be_made_is_final() {
    let mut bad = message(1);
    bad.id = "an id\nwith a newline".into();
    let channel = Channel::Webhook(WebhookChannel {
        url: format!("http://127.0.0.1:{}/hook", closed_port()),
        signing_key: Secret::new("signing-key-0123456789"),
    });
    let err = delivery(&["127.0.0.1"], TIMEOUT)
        .send(&channel, &bad)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retryable),
        (ErrorKind::InvalidInput, false),
        "{err}"
    );
    assert!(
        err.message
            .starts_with("the request to the webhook could not be made"),
        "{err}"
    );
}
