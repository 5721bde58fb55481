//! Where a notification goes: a signed webhook, an email through SMTP, a Slack or a Teams
//! incoming webhook. Each channel's fields, read and checked (`Channel::parse`); secrets
//! (the signing key, the SMTP password, Slack's and Teams' URLs) are `Secret`s. Whether a
//! host may be reached at all is `guard`'s question, not this module's.

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::serde_errors::from_json_value;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// The kinds of channel, as named in `channel.type`.
pub const CHANNEL_TYPES: [&str; 4] = ["webhook", "email", "slack", "teams"];

/// The longest URL a channel takes.
const MAX_URL_LEN: usize = 2048;
/// The fewest characters of a webhook's signing key.
pub const MIN_SIGNING_KEY_LEN: usize = 16;
/// The most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 50;

/// A channel, by type. As JSON: `{"type": "webhook", "url": "...", "signing_key": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Channel {
    Webhook(WebhookChannel),
    Email(EmailChannel),
    Slack(SlackChannel),
    Teams(TeamsChannel),
}

/// A JSON POST of the documented schema (`file-orbit.notification/v1`), signed with
/// HMAC-SHA256 over `<timestamp>.<body>` in `X-File-Orbit-Signature: t=<unix>,v1=<hex>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// `http` or `https`, without user or password in it.
    pub url: String,
    /// The HMAC key receivers verify with (at least 16 characters).
    pub signing_key: Secret,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No TLS at all (port 25 by default): only for a relay on a trusted network; a
    /// password is refused with it.
    None,
}

/// Mail through an SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Default by `tls`: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender, `ops@example.com` or `File Orbit <ops@example.com>`.
    pub from: String,
    /// 1 to 50 recipients.
    pub to: Vec<String>,
    /// A PEM file of the CAs that sign the server's certificate, when not a public CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl EmailChannel {
    /// The port given, else the usual one for `tls`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

/// A Slack incoming webhook (a message with blocks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    /// The webhook's URL, itself the credential.
    pub webhook_url: Secret,
}

/// A Teams Workflows webhook (a message with an Adaptive Card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsChannel {
    /// The workflow's URL, itself the credential.
    pub webhook_url: Secret,
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Email(_) => "email",
            Channel::Slack(_) => "slack",
            Channel::Teams(_) => "teams",
        }
    }

    /// Reads a channel written as JSON (`type` and the type's fields) and checks it;
    /// errors name the field (`type`, `url`, `to[1]`, ...) and never hold a secret.
    pub fn parse(written: Value) -> Result<Channel> {
        let context = "channel";
        let kind = match written.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(Error::invalid_field(context, "type", "must be a string")),
            None => return Err(Error::invalid_field(context, "type", "is required")),
        };
        let mut fields = written;
        if let Some(object) = fields.as_object_mut() {
            object.remove("type");
        }
        let channel = match kind.as_str() {
            "webhook" => from_json_value(context, fields).map(Channel::Webhook),
            "email" => from_json_value(context, fields).map(Channel::Email),
            "slack" => from_json_value(context, fields).map(Channel::Slack),
            "teams" => from_json_value(context, fields).map(Channel::Teams),
            other => Err(Error::invalid_field(
                context,
                "type",
                format!(
                    "unknown type {:?}; one of {}",
                    other.chars().take(40).collect::<String>(),
                    CHANNEL_TYPES.join(", ")
                ),
            )),
        }?;
        channel.validate()?;
        Ok(channel)
    }

    /// Checks the fields (no network); errors name the field.
    pub fn validate(&self) -> Result<()> {
        let context = "channel";
        match self {
            Channel::Webhook(webhook) => {
                check_url(&webhook.url, false).map_err(|why| invalid(context, "url", why))?;
                if webhook.signing_key.expose().chars().count() < MIN_SIGNING_KEY_LEN {
                    return Err(invalid(
                        context,
                        "signing_key",
                        format!("must be at least {MIN_SIGNING_KEY_LEN} characters"),
                    ));
                }
            }
            Channel::Slack(SlackChannel { webhook_url })
            | Channel::Teams(TeamsChannel { webhook_url }) => {
                check_url(webhook_url.expose(), true)
                    .map_err(|why| invalid(context, "webhook_url", why))?;
            }
            Channel::Email(email) => email.validate()?,
        }
        Ok(())
    }

    /// The URL a webhook-like channel posts to (none for email).
    pub fn url(&self) -> Option<&str> {
        match self {
            Channel::Webhook(webhook) => Some(&webhook.url),
            Channel::Slack(slack) => Some(slack.webhook_url.expose()),
            Channel::Teams(teams) => Some(teams.webhook_url.expose()),
            Channel::Email(_) => None,
        }
    }

    /// The field holding the host the channel reaches (`url`, `webhook_url`, `host`).
    pub fn host_field(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "url",
            Channel::Slack(_) | Channel::Teams(_) => "webhook_url",
            Channel::Email(_) => "host",
        }
    }
}

impl EmailChannel {
    fn validate(&self) -> Result<()> {
        let context = "channel";
        if !is_host(&self.host) {
            return Err(invalid(
                context,
                "host",
                "must be a host name or an IP address",
            ));
        }
        if self.port == Some(0) {
            return Err(invalid(context, "port", "must be 1 to 65535"));
        }
        match (&self.username, &self.password) {
            (Some(user), _) if user.is_empty() || user.len() > 256 => {
                return Err(invalid(context, "username", "must be 1 to 256 characters"));
            }
            (Some(_), None) => {
                return Err(invalid(context, "password", "is required with username"));
            }
            (None, Some(_)) => {
                return Err(invalid(context, "username", "is required with password"));
            }
            _ => {}
        }
        if self
            .password
            .as_ref()
            .is_some_and(|password| password.expose() == "***")
        {
            return Err(invalid(
                context,
                "password",
                "\"***\" is how secrets are shown, not a value: send the real password",
            ));
        }
        if self.password.is_some() && self.tls == SmtpTls::None {
            return Err(invalid(
                context,
                "tls",
                "\"none\" would send the password in clear; use \"starttls\" or \"tls\"",
            ));
        }
        check_mailbox(&self.from).map_err(|why| invalid(context, "from", why))?;
        if self.to.is_empty() || self.to.len() > MAX_RECIPIENTS {
            return Err(invalid(
                context,
                "to",
                format!("must list 1 to {MAX_RECIPIENTS} addresses"),
            ));
        }
        for (i, to) in self.to.iter().enumerate() {
            check_mailbox(to).map_err(|why| invalid(context, &format!("to[{i}]"), why))?;
        }
        if let Some(ca) = &self.ca_file {
            if !ca.is_absolute() {
                return Err(invalid(context, "ca_file", "must be an absolute path"));
            }
        }
        Ok(())
    }
}

fn invalid(context: &str, field: &str, why: impl Into<String>) -> Error {
    Error::invalid_field(context, field, why)
}

/// Checks a channel's URL: http(s), a host, no credentials inside, at most 2,048
/// characters. `secret`: the URL is a credential, so the reason never quotes it.
fn check_url(text: &str, secret: bool) -> std::result::Result<(), String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(text).map_err(|err| {
        if secret {
            format!("is not a URL ({err})")
        } else {
            format!("{:?} is not a URL ({err})", text)
        }
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user or password (use signing_key)".into());
    }
    Ok(())
}

/// Checks an address as mail takes it (`a@b.c` or `Name <a@b.c>`).
fn check_mailbox(text: &str) -> std::result::Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|_| {
            format!(
                "{:?} is not a mail address",
                text.chars().take(100).collect::<String>()
            )
        })
}

/// A DNS name (letters, digits, `-`, dots between labels) or an IP address.
fn is_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}
