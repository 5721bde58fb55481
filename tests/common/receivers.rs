//! The notification receivers `scripts/test-servers.sh` starts (`scripts/notify-receivers.py`):
//! an SMTP server with STARTTLS and AUTH, and an HTTP receiver that verifies webhook
//! signatures and checks Slack and Teams payloads. Each test uses names of its own; this
//! sets their mode and reads what they received.

use super::env;
use file_orbit::Secret;
use file_orbit::notify::{
    Channel, EmailChannel, SlackChannel, SmtpTls, TeamsChannel, WebhookChannel,
};
use serde_json::{Value, json};

/// The HTTP receiver's base URL.
pub fn base() -> String {
    env("NOTIFY_URL")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into()
}

/// Sets receiver `name`'s mode (`up`, `down`, `hang`, ...) and signing key.
pub fn control(name: &str, settings: Value) {
    let status = agent()
        .put(&format!("{}/control/{name}", base()))
        .header("Content-Type", "application/json")
        .send(settings.to_string())
        .expect("the receiver answers")
        .status();
    assert!(status.is_success(), "control {name}: {status}");
}

fn read(path: &str) -> Value {
    agent()
        .get(&format!("{}{path}", base()))
        .call()
        .expect("the receiver answers")
        .body_mut()
        .read_to_string()
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .expect("the receiver answers JSON")
}

/// What webhook-like receiver `name` accepted.
pub fn accepted(name: &str) -> Vec<Value> {
    read(&format!("/received/{name}"))["accepted"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The requests receiver `name` refused (down, bad signature, bad shape).
pub fn refused(name: &str) -> Vec<Value> {
    read(&format!("/received/{name}"))["refused"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The mails the SMTP server accepted for `address`.
pub fn mails(address: &str) -> Vec<Value> {
    read(&format!("/received/mail/{}", address.to_lowercase()))["accepted"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The signing key webhooks of these tests use (the receiver's default, a canary).
pub const SIGNING_KEY: &str = "webhook-canary-key-5Jm2Vx8Rq";

/// A webhook channel to receiver `name`.
pub fn webhook(name: &str) -> Channel {
    Channel::Webhook(WebhookChannel {
        url: format!("{}/webhook/{name}", base()),
        signing_key: Secret::new(SIGNING_KEY),
    })
}

pub fn slack(name: &str) -> Channel {
    Channel::Slack(SlackChannel {
        webhook_url: Secret::new(format!("{}/slack/{name}", base())),
    })
}

pub fn teams(name: &str) -> Channel {
    Channel::Teams(TeamsChannel {
        webhook_url: Secret::new(format!("{}/teams/{name}", base())),
    })
}

/// An email channel through the SMTP server with STARTTLS and AUTH, to `to`.
pub fn email(to: &str) -> Channel {
    Channel::Email(EmailChannel {
        host: env("SMTP_HOST"),
        port: Some(env("SMTP_PORT").parse().unwrap()),
        tls: SmtpTls::Starttls,
        username: Some(env("SMTP_USER")),
        password: Some(Secret::new(env("SMTP_PASSWORD"))),
        from: "File Orbit <orbit@orbit.test>".into(),
        to: vec![to.to_string()],
        ca_file: Some(env("NOTIFY_CA").into()),
    })
}

/// The allow-list the tests give: the receivers' loopback address.
pub fn allow() -> Vec<String> {
    vec!["127.0.0.1".into()]
}

/// The receiver in its default mode, nothing received.
pub fn fresh(name: &str) {
    control(name, json!({"mode": "up"}));
}
