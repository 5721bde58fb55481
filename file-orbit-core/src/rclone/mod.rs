//! The one in-process rclone client: loads and initialises librclone once, keeps the user's
//! rclone.conf and rclone's signal handling out of our process, routes rclone's log to
//! `tracing`, and turns rc calls into typed results and secret-free `Error`s.

mod job;
pub mod methods;
mod redact;

pub use job::{JobCanceller, JobOptions, Progress, RcloneJob};
pub use librclone_sys::RCLONE_VERSION as PINNED_RCLONE_VERSION;
pub use redact::redact;

use crate::error::{Error, ErrorKind, Result};
use methods::RcMethod;
use serde_json::Value;
use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The oldest rclone File Orbit accepts: v1.76.0 refuses HTTPS→HTTP redirects, keeps
/// credentials from following a redirect to another host and local operations inside the
/// chosen folder, and gives filters the glob syntax File Orbit documents.
const MIN_RCLONE: [u64; 3] = [1, 76, 0];

/// How to start the process-wide client. Only the first `Rclone::init` uses them.
#[derive(Debug, Clone, Default)]
pub struct RcloneOptions {
    /// librclone.so to load instead of `$FILE_ORBIT_LIBRCLONE` or the one cargo built.
    pub library_path: Option<PathBuf>,
}

/// The process-wide rclone client. Cheap to share: `&'static`.
///
/// ```no_run
/// use file_orbit_core::rclone::methods::{Fs, SyncCopy, TreeTransfer};
/// use file_orbit_core::rclone::{JobOptions, Rclone};
///
/// # async fn example() -> file_orbit_core::Result<()> {
/// let rclone = Rclone::global()?; // loads and initialises librclone once per process
/// let copy = SyncCopy(TreeTransfer {
///     src_fs: Fs::local("/data/in"),
///     dst_fs: Fs::local("/data/out"),
///     create_empty_src_dirs: false,
/// });
/// let job = rclone.start(&copy, JobOptions::default()).await?;
/// job.wait().await?;
/// # Ok(())
/// # }
/// ```
pub struct Rclone {
    library: &'static librclone_sys::LibRclone,
    library_path: &'static str,
    version: methods::VersionInfo,
    /// SHA-256 of a secret → its obscured form. rclone's obscuring is randomised; reusing
    /// one form per secret keeps remotes identical, so rclone's Fs cache (and its SSH
    /// connection) is reused instead of logging in again for every transfer.
    obscured: Mutex<std::collections::HashMap<[u8; 32], String>>,
}

static CLIENT: OnceLock<Rclone> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());

impl Rclone {
    /// The client, started with default options on first use.
    pub fn global() -> Result<&'static Rclone> {
        Self::init(RcloneOptions::default())
    }

    /// Loads and initialises librclone once; later calls return the same client.
    pub fn init(options: RcloneOptions) -> Result<&'static Rclone> {
        if let Some(client) = CLIENT.get() {
            return Ok(client);
        }
        let _guard = STARTING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = CLIENT.get() {
            return Ok(client);
        }
        let loaded = librclone_sys::load(options.library_path.as_deref())
            .map_err(|err| Error::new(ErrorKind::Library, "loading librclone", err.to_string()))?;
        let library = &loaded.library;
        // SAFETY: the functions come from the library loaded above, which stays loaded
        // forever; STARTING makes this run once. Signals first: rclone must never install
        // its SIGINT/SIGTERM handler (it would os.Exit our host process).
        unsafe {
            library.RcloneIgnoreSignals();
            library.RcloneInitialize();
            library.RcloneSetLogCallback(Some(forward_rclone_log));
        }
        let mut client = Rclone {
            library,
            library_path: &loaded.path,
            version: methods::VersionInfo::default(),
            obscured: Mutex::new(std::collections::HashMap::new()),
        };
        // An empty config path keeps rclone's config in memory: the user's rclone.conf is
        // neither read nor written.
        client.rpc("config/setpath", &serde_json::json!({ "path": "" }))?;
        client.version = client.call(&methods::CoreVersion {})?;
        client.check_version()?;
        Ok(CLIENT.get_or_init(|| client))
    }

    fn check_version(&self) -> Result<()> {
        let found = &self.version.decomposed;
        if found.as_slice() < MIN_RCLONE.as_slice() {
            return Err(Error::new(
                ErrorKind::Library,
                "loading librclone",
                format!(
                    "{} is rclone {}, File Orbit needs v1.76.0 or newer",
                    self.library_path, self.version.version
                ),
            ));
        }
        if self.version.version != librclone_sys::RCLONE_VERSION {
            tracing::warn!(
                library = self.library_path,
                found = %self.version.version,
                pinned = librclone_sys::RCLONE_VERSION,
                "librclone is not the rclone version File Orbit was built and tested with"
            );
        }
        Ok(())
    }

    /// rclone's `core/version` as read at start.
    pub fn version(&self) -> &methods::VersionInfo {
        &self.version
    }

    /// Where librclone was loaded from.
    pub fn library_path(&self) -> &str {
        self.library_path
    }

    /// Calls an rc method with JSON parameters and returns its JSON reply. Blocking; safe
    /// to call from many threads at once.
    pub fn rpc(&self, method: &str, input: &Value) -> Result<Value> {
        let context = || format!("rclone {method}");
        let c_method = CString::new(method).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                context(),
                "method name contains NUL",
            )
        })?;
        let c_input = CString::new(input.to_string()).map_err(|_| {
            Error::new(ErrorKind::InvalidInput, context(), "parameters contain NUL")
        })?;
        // SAFETY: both strings are valid NUL-terminated C strings that outlive the call
        // (rclone copies them); the output is a C string rclone allocated that we copy and
        // free exactly once with RcloneFreeString.
        let (status, output) = unsafe {
            let result = self
                .library
                .RcloneRPC(c_method.as_ptr().cast_mut(), c_input.as_ptr().cast_mut());
            let output = if result.Output.is_null() {
                String::new()
            } else {
                let text = CStr::from_ptr(result.Output).to_string_lossy().into_owned();
                self.library.RcloneFreeString(result.Output);
                text
            };
            (result.Status, output)
        };
        let reply: Value = serde_json::from_str(&output).map_err(|err| {
            Error::new(
                ErrorKind::Protocol,
                context(),
                format!("rclone answered status {status} with invalid JSON"),
            )
            .with_source(err)
        })?;
        if status == 200 {
            Ok(reply)
        } else {
            Err(error_from_reply(method, status, &reply))
        }
    }

    /// rclone's obscured form of `clear`, the same one for the same secret in this process.
    pub fn obscure(&self, clear: &str) -> Result<String> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(clear.as_bytes()).into();
        let mut cache = self
            .obscured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(obscured) = cache.get(&key) {
            return Ok(obscured.clone());
        }
        let obscured = self
            .call(&methods::CoreObscure {
                clear: clear.to_string(),
            })?
            .obscured;
        cache.insert(key, obscured.clone());
        Ok(obscured)
    }

    /// Calls a typed rc method (blocking).
    pub fn call<M: RcMethod>(&self, request: &M) -> Result<M::Reply> {
        let input = to_json(M::NAME, request)?;
        let reply = self.rpc(M::NAME, &input)?;
        from_json(M::NAME, reply)
    }

    /// `rpc` on tokio's blocking pool, for short calls from async code.
    pub async fn rpc_async(&'static self, method: &str, input: Value) -> Result<Value> {
        let method = method.to_string();
        tokio::task::spawn_blocking(move || self.rpc(&method, &input))
            .await
            .map_err(|err| Error::new(ErrorKind::Protocol, "rclone call", err.to_string()))?
    }

    /// `call` on tokio's blocking pool, for short calls from async code.
    pub async fn call_async<M: RcMethod>(&'static self, request: &M) -> Result<M::Reply> {
        let input = to_json(M::NAME, request)?;
        let reply = self.rpc_async(M::NAME, input).await?;
        from_json(M::NAME, reply)
    }

    /// Starts a long rc method as an rclone job and returns a handle for its progress,
    /// cancellation and result.
    pub async fn start<M: RcMethod>(
        &'static self,
        request: &M,
        options: JobOptions,
    ) -> Result<RcloneJob<M::Reply>> {
        let input = to_json(M::NAME, request)?;
        RcloneJob::start(self, M::NAME, input, options).await
    }
}

fn to_json<T: serde::Serialize>(method: &str, request: &T) -> Result<Value> {
    serde_json::to_value(request).map_err(|err| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("rclone {method}"),
            "parameters are not JSON",
        )
        .with_source(err)
    })
}

fn from_json<T: serde::de::DeserializeOwned>(method: &str, reply: Value) -> Result<T> {
    serde_json::from_value(reply).map_err(|err| {
        Error::new(
            ErrorKind::Protocol,
            format!("rclone {method}"),
            format!("unexpected reply: {err}"),
        )
    })
}

/// Maps rclone's `{"error","input","path","status"}` to our `Error`. The echoed `input`
/// is dropped (it carries credentials) and the message is redacted.
fn error_from_reply(method: &str, status: c_int, reply: &Value) -> Error {
    let message = reply
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("rclone failed without a message");
    error_from_message(method, status, message)
}

/// Our `Error` for rclone's error `message` from `method`, answered with HTTP-like `status`.
/// A failure whose cause is a setting gets what to change appended (`setting_advice`).
fn error_from_message(method: &str, status: c_int, message: &str) -> Error {
    let mut message = redact(message);
    let kind = match status {
        400 => ErrorKind::InvalidInput,
        404 => ErrorKind::NotFound,
        _ => classify(&message),
    };
    if let Some(advice) = setting_advice(&message) {
        message = format!("{message}: {advice}");
    }
    Error::new(kind, format!("rclone {method}"), message)
}

/// What to change when rclone's message shows a setting that cannot work.
fn setting_advice(message: &str) -> Option<&'static str> {
    message.to_lowercase().contains(SEEK_ERROR).then_some(
        "uploads to this S3 server over plain http need a provider other than AWS: \
         set the endpoint's provider to Other (or Minio, Ceph, ... as the server is), \
         or use an https endpoint_url",
    )
}

/// The AWS SDK's complaint when provider AWS signs an upload's payload over plain http.
const SEEK_ERROR: &str = "request stream is not seekable";

/// The kind of a failure from rclone's message: the one place that reads rclone's (and
/// its backends') error texts. Lower-cased substrings, most specific first.
pub fn classify(message: &str) -> ErrorKind {
    const PATTERNS: &[(&str, ErrorKind)] = &[
        ("context canceled", ErrorKind::Cancelled),
        (SEEK_ERROR, ErrorKind::InvalidInput),
        ("unable to authenticate", ErrorKind::Authentication),
        ("knownhosts:", ErrorKind::Authentication),
        ("host key mismatch", ErrorKind::Authentication),
        ("logon failure", ErrorKind::Authentication),
        ("attempted logon is invalid", ErrorKind::Authentication),
        ("invalidaccesskeyid", ErrorKind::Authentication),
        ("signaturedoesnotmatch", ErrorKind::Authentication),
        ("invalidtoken", ErrorKind::Authentication),
        ("accessdenied", ErrorKind::PermissionDenied),
        ("access denied", ErrorKind::PermissionDenied),
        ("access is denied", ErrorKind::PermissionDenied),
        ("permission denied", ErrorKind::PermissionDenied),
        ("nosuchbucket", ErrorKind::NotFound),
        ("bad network name", ErrorKind::NotFound),
        ("network name not found", ErrorKind::NotFound),
        ("directory not found", ErrorKind::NotFound),
        ("object not found", ErrorKind::NotFound),
        ("no such file or directory", ErrorKind::NotFound),
        ("no such host", ErrorKind::Connection),
        ("connection refused", ErrorKind::Connection),
        ("i/o timeout", ErrorKind::Connection),
        ("deadline exceeded", ErrorKind::Connection),
        ("connection reset", ErrorKind::Connection),
        ("network is unreachable", ErrorKind::Connection),
        ("x509:", ErrorKind::Connection),
        ("tls:", ErrorKind::Connection),
        ("broken pipe", ErrorKind::Connection),
    ];
    let lower = message.to_lowercase();
    PATTERNS
        .iter()
        .find(|(pattern, _)| lower.contains(pattern))
        .map_or(ErrorKind::Remote, |(_, kind)| *kind)
}

/// Receives every rclone log line. Levels are slog's (DEBUG -4, INFO 0, NOTICE 2, WARN 4,
/// ERROR 8). rclone's own echo of failed rc calls goes to DEBUG: the caller gets the error.
extern "C" fn forward_rclone_log(level: c_int, text: *const c_char) {
    if text.is_null() {
        return;
    }
    // A panic must not unwind into Go.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: rclone passes a valid NUL-terminated string that lives for this call.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let line = redact(text.trim_end());
        if line.starts_with("rc: \"") || level < 0 {
            tracing::debug!(target: "rclone", "{line}");
        } else if level < 4 {
            tracing::info!(target: "rclone", "{line}");
        } else if level < 8 {
            tracing::warn!(target: "rclone", "{line}");
        } else {
            tracing::error!(target: "rclone", "{line}");
        }
    });
}
