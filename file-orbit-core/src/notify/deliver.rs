//! Sending one message through one channel: an HTTP POST (webhook, Slack, Teams) through a
//! client whose resolver and redirects pass the guard, or a mail through SMTP to the
//! address the guard checked. Answers and errors are for a person and never hold a
//! secret: not a Slack or Teams URL, not the signing key, not the SMTP password.
//! Retrying, leasing and recording are the runner's; this module sends once.

use super::guard::{AllowList, GuardError, GuardedResolver, redirect_policy};
use super::render;
use super::{Channel, EmailChannel, Message, SmtpTls};
use crate::error::{Error, ErrorKind, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The most characters of an answer's body an error quotes.
const QUOTED_CHARS: usize = 200;
/// The most bytes of an answer's body read for an error.
const READ_BYTES: usize = 4096;
const CONTEXT: &str = "notification delivery";

/// Sends messages; one per service (it holds the HTTP client and its connections).
pub struct Delivery {
    allow: Arc<AllowList>,
    client: reqwest::Client,
    timeout: Duration,
}

impl Delivery {
    /// A sender reaching only what `allow` admits, each send bounded by `timeout`
    /// (connecting and the whole request or SMTP session).
    pub fn new(allow: AllowList, timeout: Duration) -> Result<Delivery> {
        if timeout.is_zero() || timeout > Duration::from_secs(600) {
            return Err(Error::invalid_field(
                "notifications",
                "timeout",
                "must be more than 0 and at most 600 seconds",
            ));
        }
        let allow = Arc::new(allow);
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .user_agent(concat!("file-orbit/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(redirect_policy(Arc::clone(&allow)))
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&allow))))
            .build()
            .map_err(|err| {
                Error::new(
                    ErrorKind::Library,
                    CONTEXT,
                    format!("the HTTP client could not be built ({err})"),
                )
                .with_retryable(false)
            })?;
        Ok(Delivery {
            allow,
            client,
            timeout,
        })
    }

    /// Sends `message` once; gives the channel's answer for a person (`HTTP 200 OK`,
    /// `SMTP 250 2.0.0 Ok: queued`). Errors say whether a retry may help (`retryable`):
    /// a refused host is `PermissionDenied`, a refused credential `Authentication`, both
    /// final; no connection, a timeout, HTTP 408/429/5xx and SMTP 4xx may pass.
    pub async fn send(&self, channel: &Channel, message: &Message) -> Result<String> {
        match channel {
            Channel::Webhook(webhook) => {
                let body = render::webhook_body(message);
                let now = chrono::Utc::now().timestamp();
                let signature = render::signature_header(&webhook.signing_key, now, &body);
                let request = self
                    .client
                    .post(self.url(channel, &webhook.url)?)
                    .header("X-File-Orbit-Id", &message.id)
                    .header("X-File-Orbit-Event", &message.event)
                    .header("X-File-Orbit-Timestamp", now.to_string())
                    .header("X-File-Orbit-Signature", signature);
                self.post(channel, request, body).await
            }
            Channel::Slack(slack) => {
                let url = self.url(channel, slack.webhook_url.expose())?;
                self.post(channel, self.client.post(url), render::slack_body(message))
                    .await
            }
            Channel::Teams(teams) => {
                let url = self.url(channel, teams.webhook_url.expose())?;
                self.post(channel, self.client.post(url), render::teams_body(message))
                    .await
            }
            Channel::Email(email) => self.send_mail(email, message).await,
        }
    }

    /// The channel's URL, its host admitted by name (an address literal fully, as reqwest
    /// does not resolve one; a name's addresses are checked by the resolver).
    fn url(&self, channel: &Channel, text: &str) -> Result<Url> {
        let url = Url::parse(text).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                CONTEXT,
                format!("the {} URL is not a URL", channel.kind()),
            )
            .with_retryable(false)
        })?;
        self.allow.check_url(&url).map_err(guard_error)?;
        Ok(url)
    }

    async fn post(
        &self,
        channel: &Channel,
        request: reqwest::RequestBuilder,
        body: Vec<u8>,
    ) -> Result<String> {
        let response = request
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|err| self.request_error(channel, &err))?;
        let status = response.status();
        let answer = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string();
        if status.is_success() {
            return Ok(answer);
        }
        let quoted = quote_body(response).await;
        let message = match quoted.is_empty() {
            true => format!("{} answered {answer}", channel.kind()),
            false => format!("{} answered {answer}: {quoted}", channel.kind()),
        };
        let (kind, retryable) = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (ErrorKind::Authentication, false),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                (ErrorKind::Remote, true)
            }
            status if status.is_server_error() => (ErrorKind::Remote, true),
            _ => (ErrorKind::Remote, false),
        };
        Err(Error::new(kind, CONTEXT, scrub(channel, message)).with_retryable(retryable))
    }

    /// An error of reqwest in our words: its Display quotes the URL, a credential for
    /// Slack and Teams, so only the kind and the innermost cause are used.
    fn request_error(&self, channel: &Channel, err: &reqwest::Error) -> Error {
        let mut cause: &dyn std::error::Error = err;
        while let Some(next) = cause.source() {
            if let Some(guard) = next.downcast_ref::<GuardError>() {
                return guard_error(guard.clone());
            }
            cause = next;
        }
        // reqwest's own words (no source below it) would quote the URL.
        let root = match std::error::Error::source(err) {
            Some(_) => cause.to_string(),
            None => "no detail".to_string(),
        };
        if err.is_builder() {
            let message = format!(
                "the request to the {} could not be made ({root})",
                channel.kind()
            );
            return Error::new(ErrorKind::InvalidInput, CONTEXT, scrub(channel, message))
                .with_retryable(false);
        }
        let message = if err.is_timeout() {
            format!(
                "{} did not answer within {} s",
                channel.kind(),
                self.timeout.as_secs_f32()
            )
        } else if err.is_connect() {
            format!("could not connect to the {} ({root})", channel.kind())
        } else {
            format!("the request to the {} failed ({root})", channel.kind())
        };
        Error::new(ErrorKind::Connection, CONTEXT, scrub(channel, message))
    }

    async fn send_mail(&self, email: &EmailChannel, message: &Message) -> Result<String> {
        let mail = render::email(email, message)?;
        let port = email.port();
        let addrs = self
            .allow
            .guard(&email.host, port)
            .await
            .map_err(guard_error)?;
        let tls_name = email
            .host
            .strip_suffix('.')
            .unwrap_or(&email.host)
            .to_string();
        let tls = match email.tls {
            SmtpTls::Starttls => Tls::Required(self.tls_parameters(email, tls_name)?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters(email, tls_name)?),
            SmtpTls::None => Tls::None,
        };
        let mut last = None;
        for addr in addrs {
            let mut builder =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                    .port(port)
                    .tls(tls.clone())
                    .timeout(Some(self.timeout));
            if let (Some(user), Some(password)) = (&email.username, &email.password) {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ));
            }
            let transport = builder.build();
            let sent = tokio::time::timeout(self.timeout, transport.send(mail.clone())).await;
            match sent {
                Ok(Ok(response)) => {
                    let code: u16 = response.code().into();
                    let line = response.first_line().unwrap_or("").trim();
                    return Ok(format!("SMTP {code} {line}").trim_end().to_string());
                }
                Ok(Err(err)) => {
                    let error = smtp_error(email, &err);
                    if error.kind != ErrorKind::Connection {
                        return Err(error);
                    }
                    last = Some(error);
                }
                Err(_) => {
                    last = Some(Error::new(
                        ErrorKind::Connection,
                        CONTEXT,
                        format!(
                            "the SMTP server did not finish within {} s",
                            self.timeout.as_secs_f32()
                        ),
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Connection,
                CONTEXT,
                "the SMTP host resolves to no address",
            )
        }))
    }

    fn tls_parameters(&self, email: &EmailChannel, name: String) -> Result<TlsParameters> {
        let mut builder = TlsParameters::builder(name);
        if let Some(path) = &email.ca_file {
            let invalid = |why: String| {
                Error::invalid_field("channel", "ca_file", format!("{}: {why}", path.display()))
                    .with_retryable(false)
            };
            let pem =
                std::fs::read(path).map_err(|err| invalid(format!("cannot be read ({err})")))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(invalid("holds no PEM certificate".into()));
            }
            let ca = Certificate::from_pem(&pem)
                .map_err(|err| invalid(format!("is not a PEM certificate ({err})")))?;
            builder = builder.add_root_certificate(ca);
        }
        builder.build_rustls().map_err(|err| {
            Error::new(
                ErrorKind::Library,
                CONTEXT,
                format!("TLS could not be set up ({err})"),
            )
            .with_retryable(false)
        })
    }
}

/// A guard's answer as an error: a refusal is final, an unresolved name may pass.
fn guard_error(err: GuardError) -> Error {
    match err {
        GuardError::Refused(why) => Error::new(ErrorKind::PermissionDenied, CONTEXT, why),
        GuardError::Unresolved(why) => Error::new(ErrorKind::Connection, CONTEXT, why),
        GuardError::TooManyRedirects => {
            Error::new(ErrorKind::Remote, CONTEXT, err.to_string()).with_retryable(false)
        }
    }
}

/// An SMTP failure: a refused login (535) is `Authentication`, other permanent (5xx)
/// answers final `Remote`, transient (4xx) ones `Remote` to retry; no connection, TLS and
/// timeouts `Connection`. lettre's words may quote the server, never the password.
fn smtp_error(email: &EmailChannel, err: &lettre::transport::smtp::Error) -> Error {
    let mut message = format!("SMTP {err}");
    if let Some(password) = &email.password {
        message = message.replace(password.expose(), "***");
    }
    let code = err.status().map(u16::from);
    let (kind, retryable) = match code {
        Some(535) | Some(534) | Some(530) => (ErrorKind::Authentication, false),
        Some(_) if err.is_transient() => (ErrorKind::Remote, true),
        Some(_) => (ErrorKind::Remote, false),
        None if err.is_client() => (ErrorKind::Remote, false),
        None => (ErrorKind::Connection, true),
    };
    Error::new(kind, CONTEXT, message).with_retryable(retryable)
}

/// At most [`QUOTED_CHARS`] of an answer's body, control characters removed.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < READ_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(QUOTED_CHARS)
        .collect()
}

/// Removes a secret URL (and its path) from words that might echo it.
fn scrub(channel: &Channel, message: String) -> String {
    let secret = match channel {
        Channel::Slack(slack) => slack.webhook_url.expose(),
        Channel::Teams(teams) => teams.webhook_url.expose(),
        Channel::Webhook(_) | Channel::Email(_) => return message,
    };
    let mut message = message.replace(secret, "***");
    if let Ok(url) = Url::parse(secret) {
        if url.path().len() > 1 {
            message = message.replace(url.path(), "/***");
        }
        if let Some(query) = url.query().filter(|q| !q.is_empty()) {
            message = message.replace(query, "***");
        }
    }
    message
}
