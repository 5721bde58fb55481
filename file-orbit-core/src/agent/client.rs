//! The agent's HTTP client for the control plane: one call per protocol step, the
//! credential as a bearer token, the configured CA trusted, bounded timeouts, and failover
//! between the control plane's URLs (a connect error, a timeout or a 502/503/504 moves the
//! call to the next URL, once round them). It decides nothing about what a call means.

use super::config::AgentConfig;
use super::protocol::{
    EnrolReply, EnrolRequest, Hello, HelloReply, LeaseReply, LeaseRequest, Outcome, OutcomesReply,
    OutcomesRequest, ReportReply, ReportRequest, RunningJob,
};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long connecting to one URL may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call may take, on top of the wait it asks for (a lease's long poll).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the agent protocol lives on a control-plane URL.
const API: &str = "api/v1/agent/";

/// A client of the control plane's agent protocol.
pub struct AgentClient {
    http: reqwest::Client,
    urls: Vec<url::Url>,
    /// The URL calls go to first: the last one that answered.
    current: AtomicUsize,
    credential: RwLock<Option<Secret>>,
    wait: Duration,
}

/// How one try at one URL went wrong.
enum Failure {
    /// The URL is unreachable or its server failing: try the next one.
    FailOver(Error),
    /// The answer stands (e.g. 401, 400): no other URL would answer otherwise.
    Final(Error),
}

impl AgentClient {
    /// A client for `config`'s URLs (checked), trusting its `ca_file` on top of the
    /// built-in roots. It has no credential until `set_credential`.
    pub fn new(config: &AgentConfig) -> Result<AgentClient> {
        config.validate()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .user_agent(concat!("file-orbit-agent/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let bad = |message: String| {
                Error::invalid_field(
                    "worker configuration",
                    "agent.ca_file",
                    format!("{}: {message}", path.display()),
                )
            };
            let pem = std::fs::read(path).map_err(|err| bad(err.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| bad(format!("not PEM certificates ({err})")))?;
            if certificates.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|err| {
            Error::new(
                ErrorKind::Library,
                "agent client",
                format!("the HTTP client could not be built ({err})"),
            )
        })?;
        Ok(AgentClient {
            http,
            urls: config.urls()?,
            current: AtomicUsize::new(0),
            credential: RwLock::new(None),
            wait: Duration::from_secs(config.wait_secs),
        })
    }

    /// The credential every call but `enrol` presents.
    pub fn set_credential(&self, credential: Secret) {
        if let Ok(mut held) = self.credential.write() {
            *held = Some(credential);
        }
    }

    /// The URL the next call goes to first.
    pub fn current_url(&self) -> &url::Url {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// Exchanges a one-time enrolment token for the agent's credential.
    pub async fn enrol(&self, request: &EnrolRequest) -> Result<EnrolReply> {
        self.call("enrol", request, CALL_TIMEOUT, false).await
    }

    pub async fn hello(&self, hello: &Hello) -> Result<HelloReply> {
        self.call("hello", hello, CALL_TIMEOUT, true).await
    }

    /// Leases jobs for the free `slots`, waiting up to the configured `wait_secs`.
    pub async fn lease(&self, slots: Vec<usize>) -> Result<LeaseReply> {
        let request = LeaseRequest {
            slots,
            wait_ms: self.wait.as_millis() as u64,
        };
        self.call("lease", &request, self.wait + CALL_TIMEOUT, true)
            .await
    }

    pub async fn report(&self, running: Vec<RunningJob>) -> Result<ReportReply> {
        self.call("report", &ReportRequest { running }, CALL_TIMEOUT, true)
            .await
    }

    pub async fn outcomes(&self, outcomes: Vec<Outcome>) -> Result<OutcomesReply> {
        self.call(
            "outcomes",
            &OutcomesRequest { outcomes },
            CALL_TIMEOUT,
            true,
        )
        .await
    }

    /// `POST`s `body` to the agent protocol's `step` at the current URL, failing over to
    /// the next ones (each at most once) while they are unreachable.
    async fn call<Req: Serialize, Reply: DeserializeOwned>(
        &self,
        step: &str,
        body: &Req,
        timeout: Duration,
        authenticated: bool,
    ) -> Result<Reply> {
        let context = format!("control plane {step}");
        let body = serde_json::to_vec(body)
            .map_err(|err| Error::new(ErrorKind::Protocol, &context, format!("encoding: {err}")))?;
        let credential = match authenticated {
            true => Some(self.bearer(&context)?),
            false => None,
        };
        let count = self.urls.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut last = None;
        for step_over in 0..count {
            let at = (first + step_over) % count;
            let url = &self.urls[at];
            let attempt = self.try_once(&context, url, step, &body, timeout, credential.as_deref());
            match attempt.await {
                Ok(reply) => {
                    if step_over > 0 {
                        tracing::info!(url = %url, "control plane: calls go to this URL now");
                    }
                    return Ok(reply);
                }
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::FailOver(err)) => {
                    tracing::debug!(%err, "control plane URL failed; trying the next");
                    // Only the first caller to see this URL fail moves the others on.
                    let _ = self.current.compare_exchange(
                        at,
                        (at + 1) % count,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Connection, context, "no URL")))
    }

    fn bearer(&self, context: &str) -> Result<String> {
        let held = self.credential.read().ok().and_then(|held| held.clone());
        match held {
            Some(credential) => Ok(format!("Bearer {}", credential.expose())),
            None => Err(Error::new(
                ErrorKind::Authentication,
                context,
                "no agent credential yet (enrol first)",
            )),
        }
    }

    async fn try_once<Reply: DeserializeOwned>(
        &self,
        context: &str,
        base: &url::Url,
        step: &str,
        body: &[u8],
        timeout: Duration,
        credential: Option<&str>,
    ) -> Result<Reply, Failure> {
        let url = base
            .join(API)
            .and_then(|api| api.join(step))
            .map_err(|err| {
                Failure::Final(Error::new(
                    ErrorKind::InvalidInput,
                    context,
                    err.to_string(),
                ))
            })?;
        let mut request = self
            .http
            .post(url)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(credential) = credential {
            request = request.header(AUTHORIZATION, credential);
        }
        let sent = request.send().await;
        let response = sent.map_err(|err| Failure::FailOver(unreachable(context, base, &err)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| Failure::FailOver(unreachable(context, base, &err)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|err| {
                Failure::Final(Error::new(
                    ErrorKind::Protocol,
                    context,
                    format!("{base} answered {status} with an unexpected body ({err})"),
                ))
            });
        }
        let said = api_message(&bytes);
        let message = format!("{base} answered {status}: {said}");
        Err(match status {
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                Failure::FailOver(Error::new(ErrorKind::Remote, context, message))
            }
            StatusCode::UNAUTHORIZED => Failure::Final(credential_refused(context, message)),
            StatusCode::FORBIDDEN => {
                Failure::Final(Error::new(ErrorKind::PermissionDenied, context, message))
            }
            StatusCode::NOT_FOUND => {
                Failure::Final(Error::new(ErrorKind::NotFound, context, message))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                Failure::Final(Error::new(ErrorKind::Remote, context, message).with_retryable(true))
            }
            status if status.is_server_error() => {
                Failure::Final(Error::new(ErrorKind::Remote, context, message))
            }
            _ => Failure::Final(Error::new(ErrorKind::InvalidInput, context, message)),
        })
    }
}

/// The control plane refused the credential (or the enrolment token): 401.
fn credential_refused(context: &str, message: String) -> Error {
    Error::new(ErrorKind::Authentication, context, message)
}

/// Whether `err` is the control plane refusing the agent's credential (a 401: unknown or
/// revoked), which no retry cures.
pub fn is_credential_refused(err: &Error) -> bool {
    err.kind == ErrorKind::Authentication
}

/// The API's error body's `message` (and `field`), or the body's start when it is not one.
fn api_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        message: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => match error.field {
            Some(field) => format!("{field}: {}", error.message),
            None => error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.is_empty() {
                true => "no error body".to_string(),
                false => text.chars().take(200).collect(),
            }
        }
    }
}

/// A request that got no answer from `base`, in words that quote only the URL's base
/// (reqwest's own Display quotes the full URL) and the innermost cause.
fn unreachable(context: &str, base: &url::Url, err: &reqwest::Error) -> Error {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let why = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        format!("could not connect ({cause})")
    } else {
        format!("no answer ({cause})")
    };
    Error::new(ErrorKind::Connection, context, format!("{base}: {why}"))
}
