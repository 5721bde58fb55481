//! Endpoints: a name plus a typed, validated config for local disk, S3, SFTP or SMB, and
//! their conversion to rclone's JSON-object remote form through a whitelist of options.
//! Nothing user-supplied is spliced into a connection string; command-running rclone
//! options (`ssh`, `*_command`) cannot be set.

mod aws;
mod bandwidth;
mod diagnosis;
mod listing;
mod placement;

pub(crate) use aws::check_endpoint_url;
pub use aws::{AwsCredentials, StaticKeys};
pub use bandwidth::{Bandwidth, MIN_RATE, Rates};
pub use diagnosis::{Diagnosis, Problem, TestOptions};
pub use listing::{ListEntry, Listing, MAX_LIST_LIMIT, MAX_LIST_PATH_CHARS, relative_folder};
pub use placement::{
    EndpointPlacement, MAX_PLACES, check_agent_names, reach_tokens, valid_agent_name,
};

use crate::error::{Error, ErrorKind, Result};
use crate::rclone::Rclone;
use crate::rclone::methods::Fs;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A named place files move from or to. Unknown fields are refused by each config type
/// (serde cannot deny them here, beside `flatten`).
///
/// ```
/// use file_orbit_core::endpoint::{Endpoint, EndpointConfig};
///
/// let endpoint: Endpoint = serde_json::from_str(
///     r#"{"name": "partner", "type": "sftp", "host": "sftp.example.com", "user": "acme",
///         "root": "outbox", "auth": {"method": "password", "password": "hunter2"}}"#,
/// )?;
/// endpoint.validate()?;
/// assert!(matches!(endpoint.config, EndpointConfig::Sftp(_)));
/// // Secrets never print.
/// assert!(!format!("{endpoint:?}").contains("hunter2"));
///
/// // Bad input names the field.
/// let err = serde_json::from_str::<Endpoint>(
///     r#"{"name": "in", "type": "local", "root": "/data", "ssh": "rm -rf /"}"#,
/// )
/// .unwrap_err();
/// assert!(err.to_string().contains("ssh"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    /// The most every transfer to and from this endpoint may move together, live: a rate
    /// (`10M`), upload:download (`10M:2M`), `off`, or a weekly timetable (`08:00,512k
    /// 19:00,off`, `Mon-08:00,1M Sat-00:00,off`) in the server's local time. Server-side
    /// copies within the endpoint move no bytes through File Orbit and are not charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, example = "08:00,512k 19:00,off"))]
    pub bandwidth: Option<Bandwidth>,
    /// The agents that may run this endpoint's transfers (by name or label); absent:
    /// anywhere, the control plane's own workers included.
    #[serde(default, skip_serializing_if = "EndpointPlacement::is_anywhere")]
    pub placement: EndpointPlacement,
    #[serde(flatten)]
    pub config: EndpointConfig,
}

/// The typed configuration of each kind of endpoint (`type = "local" | "s3" | "sftp" | "smb"`).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EndpointConfig {
    Local(LocalConfig),
    S3(S3Config),
    Sftp(SftpConfig),
    Smb(SmbConfig),
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Absolute directory every path of this endpoint is inside.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub root: PathBuf,
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// rclone's S3 provider name (`AWS`, `Minio`, `Ceph`, `Other`, ...); unset, it is
    /// `Other` when `endpoint_url` is given and `AWS` otherwise (`S3Config::provider_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub bucket: String,
    /// Key prefix inside the bucket every path of this endpoint is under.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint URL for non-AWS servers, e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Static credentials (`access_key_id`, `secret_access_key`, `session_token` beside
    /// the other fields); without them the environment / instance role is used.
    #[serde(flatten)]
    pub credentials: AwsCredentials,
    #[serde(default)]
    pub force_path_style: Option<bool>,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub server_side_encryption: Option<String>,
}

impl S3Config {
    /// The provider rclone is told: the configured one, else `Other` for a server at an
    /// `endpoint_url` (MinIO, Ceph, rclone serve s3, ...: provider `AWS` cannot upload to
    /// them over plain http) and `AWS` without one.
    pub fn provider_name(&self) -> &str {
        match (&self.provider, &self.endpoint_url) {
            (Some(provider), _) => provider,
            (None, Some(_)) => "Other",
            (None, None) => "AWS",
        }
    }
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    pub host: String,
    #[serde(default = "default_sftp_port")]
    pub port: u16,
    pub user: String,
    pub auth: SftpAuth,
    /// How the server's host key is checked; on by default (`~/.ssh/known_hosts`).
    #[serde(default)]
    pub host_key: HostKeyCheck,
    /// Directory every path of this endpoint is under (relative to the login directory
    /// unless it starts with `/`).
    #[serde(default)]
    pub root: String,
    /// Let rclone run `md5sum`/`sha1sum` over SSH for server-side hashes (needs a shell
    /// account; leave off for SFTP-only servers).
    #[serde(default)]
    pub server_hashes: bool,
}

fn default_sftp_port() -> u16 {
    22
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum SftpAuth {
    Password {
        password: Secret,
    },
    KeyFile {
        #[cfg_attr(feature = "server", schema(value_type = String))]
        path: PathBuf,
        #[serde(default)]
        passphrase: Option<Secret>,
    },
    KeyPem {
        pem: Secret,
        #[serde(default)]
        passphrase: Option<Secret>,
    },
    Agent,
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum HostKeyCheck {
    /// An OpenSSH known_hosts file.
    KnownHostsFile {
        #[cfg_attr(feature = "server", schema(value_type = String))]
        path: PathBuf,
    },
    /// The server's public keys, `"<algorithm> <base64 key>"` each.
    Pinned { keys: Vec<String> },
    /// No host-key check: the explicit, insecure opt-out.
    InsecureSkip,
}

impl Default for HostKeyCheck {
    fn default() -> Self {
        HostKeyCheck::KnownHostsFile {
            path: PathBuf::from("~/.ssh/known_hosts"),
        }
    }
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbConfig {
    pub host: String,
    #[serde(default = "default_smb_port")]
    pub port: u16,
    /// `user` or `DOMAIN\user` (the domain part then overrides `domain`).
    pub user: String,
    pub password: Secret,
    #[serde(default = "default_smb_domain")]
    pub domain: String,
    pub share: String,
    /// Directory inside the share every path of this endpoint is under.
    #[serde(default)]
    pub root: String,
}

fn default_smb_port() -> u16 {
    445
}

fn default_smb_domain() -> String {
    "WORKGROUP".into()
}

impl SmbConfig {
    /// Parses `//host/share/path` (or `\\host\share\path`) into host, share and root.
    pub fn from_unc(unc: &str, user: &str, password: Secret) -> Result<SmbConfig> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                "smb endpoint",
                format!("unc path {unc:?} {why}; expected //host/share/path"),
            )
        };
        let normalised = unc.replace('\\', "/");
        let rest = normalised
            .strip_prefix("//")
            .ok_or_else(|| invalid("does not start with //"))?;
        let mut parts = rest.splitn(3, '/');
        let host = parts
            .next()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("has no host"))?;
        let share = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("has no share"))?;
        let root = parts.next().unwrap_or("").trim_matches('/').to_string();
        Ok(SmbConfig {
            host: host.to_string(),
            port: default_smb_port(),
            user: user.to_string(),
            password,
            domain: default_smb_domain(),
            share: share.to_string(),
            root,
        })
    }

    /// The domain and bare user name, `DOMAIN\user` taking precedence over `domain`.
    fn domain_and_user(&self) -> (&str, &str) {
        match self.user.split_once('\\') {
            Some((domain, user)) => (domain, user),
            None => (&self.domain, &self.user),
        }
    }
}

impl Endpoint {
    /// Checks every field; the error names the endpoint, the field and the bad value
    /// (never a secret).
    pub fn validate(&self) -> Result<()> {
        let context = format!("endpoint {:?}", self.name);
        let err = |field: &str, why: String| Err(Error::invalid_field(&context, field, why));
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return err("name", format!("{:?} must be non-empty text", self.name));
        }
        if let Err((field, why)) = self.placement.check() {
            return err(field, why);
        }
        match &self.config {
            EndpointConfig::Local(local) => {
                if !local.root.is_absolute() {
                    return err("root", format!("{:?} must be an absolute path", local.root));
                }
                check_inside("root", &local.root.to_string_lossy())
                    .or_else(|why| err("root", why))?;
            }
            EndpointConfig::S3(s3) => {
                if !valid_bucket(&s3.bucket) {
                    return err(
                        "bucket",
                        format!(
                            "{:?} is not a valid bucket name (3-63 of a-z 0-9 . -)",
                            s3.bucket
                        ),
                    );
                }
                if let Some(url) = &s3.endpoint_url {
                    check_endpoint_url(url).or_else(|why| err("endpoint_url", why))?;
                }
                if let Err((field, why)) = s3.credentials.check() {
                    return err(field, why);
                }
                if let Some(provider) = &s3.provider {
                    check_plain("provider", provider).or_else(|why| err("provider", why))?;
                }
                check_inside("prefix", &s3.prefix).or_else(|why| err("prefix", why))?;
            }
            EndpointConfig::Sftp(sftp) => {
                check_host(&sftp.host).or_else(|why| err("host", why))?;
                if sftp.port == 0 {
                    return err("port", "0 is not a port".into());
                }
                check_plain("user", &sftp.user).or_else(|why| err("user", why))?;
                check_inside("root", &sftp.root).or_else(|why| err("root", why))?;
                match &sftp.host_key {
                    HostKeyCheck::KnownHostsFile { path } if path.as_os_str() == "none" => {
                        return err(
                            "host_key.path",
                            "\"none\" would disable host-key checking; use check = \"insecure_skip\"".into(),
                        );
                    }
                    HostKeyCheck::Pinned { keys } if keys.is_empty() => {
                        return err("host_key.keys", "at least one key is needed".into());
                    }
                    HostKeyCheck::Pinned { keys } => {
                        for key in keys {
                            if key.split_whitespace().count() != 2 || key.contains(',') {
                                return err(
                                    "host_key.keys",
                                    format!("{key:?} is not \"<algorithm> <base64 key>\""),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
            EndpointConfig::Smb(smb) => {
                check_host(&smb.host).or_else(|why| err("host", why))?;
                if smb.port == 0 {
                    return err("port", "0 is not a port".into());
                }
                check_plain("user", &smb.user).or_else(|why| err("user", why))?;
                check_plain("domain", &smb.domain).or_else(|why| err("domain", why))?;
                if smb.share.is_empty() || smb.share.contains(['/', '\\']) {
                    return err("share", format!("{:?} must be one share name", smb.share));
                }
                check_inside("root", &smb.root).or_else(|why| err("root", why))?;
            }
        }
        Ok(())
    }

    /// The endpoint as rclone's JSON-object remote rooted at `path` (relative to the
    /// endpoint's own root). Passwords are obscured as rclone requires.
    pub fn to_rclone(&self, rclone: &Rclone, path: &str) -> Result<Fs> {
        self.validate()?;
        let mut config = Map::new();
        let mut set = |key: &str, value: Value| {
            config.insert(key.to_string(), value);
        };
        let obscure =
            |secret: &Secret| -> Result<Value> { Ok(rclone.obscure(secret.expose())?.into()) };
        let root = match &self.config {
            EndpointConfig::Local(local) => {
                set("type", "local".into());
                join(&local.root.display().to_string(), path)
            }
            EndpointConfig::S3(s3) => {
                set("type", "s3".into());
                set("provider", s3.provider_name().into());
                if let Some(region) = &s3.region {
                    set("region", region.clone().into());
                }
                if let Some(url) = &s3.endpoint_url {
                    set("endpoint", url.clone().into());
                }
                match s3.credentials.static_keys() {
                    Some((id, secret, token)) => {
                        set("access_key_id", id.into());
                        set("secret_access_key", secret.expose().into());
                        if let Some(token) = token {
                            set("session_token", token.expose().into());
                        }
                    }
                    None => set("env_auth", "true".into()),
                }
                if let Some(style) = s3.force_path_style {
                    set("force_path_style", style.to_string().into());
                }
                if let Some(class) = &s3.storage_class {
                    set("storage_class", class.clone().into());
                }
                if let Some(sse) = &s3.server_side_encryption {
                    set("server_side_encryption", sse.clone().into());
                }
                join(&join(&s3.bucket, &s3.prefix), path)
            }
            EndpointConfig::Sftp(sftp) => {
                set("type", "sftp".into());
                set("host", sftp.host.clone().into());
                set("port", sftp.port.to_string().into());
                set("user", sftp.user.clone().into());
                match &sftp.auth {
                    SftpAuth::Password { password } => set("pass", obscure(password)?),
                    SftpAuth::KeyFile { path, passphrase } => {
                        set("key_file", path.display().to_string().into());
                        if let Some(pass) = passphrase {
                            set("key_file_pass", obscure(pass)?);
                        }
                    }
                    SftpAuth::KeyPem { pem, passphrase } => {
                        set("key_pem", pem.expose().replace('\n', "\\n").into());
                        if let Some(pass) = passphrase {
                            set("key_file_pass", obscure(pass)?);
                        }
                    }
                    SftpAuth::Agent => set("key_use_agent", "true".into()),
                }
                match &sftp.host_key {
                    HostKeyCheck::KnownHostsFile { path } => {
                        set("known_hosts_file", path.display().to_string().into())
                    }
                    HostKeyCheck::Pinned { keys } => set("host_keys", keys.join(",").into()),
                    HostKeyCheck::InsecureSkip => set("known_hosts_file", "none".into()),
                }
                // Fixed by us, never by the user: rclone auto-detection costs a round trip
                // per connection and once raced into "hash unsupported".
                if sftp.server_hashes {
                    set("shell_type", "unix".into());
                    set("md5sum_command", "md5sum".into());
                    set("sha1sum_command", "sha1sum".into());
                } else {
                    set("shell_type", "none".into());
                }
                join(&sftp.root, path)
            }
            EndpointConfig::Smb(smb) => {
                let (domain, user) = smb.domain_and_user();
                set("type", "smb".into());
                set("host", smb.host.clone().into());
                set("port", smb.port.to_string().into());
                set("user", user.to_string().into());
                set("domain", domain.to_string().into());
                set("pass", obscure(&smb.password)?);
                join(&join(&smb.share, &smb.root), path)
            }
        };
        config.insert("_root".into(), root.into());
        // Read by our shim (not rclone): the Fs moves its bytes through this endpoint's
        // bandwidth limiter, shared by every transfer of the process.
        config.insert("orbit_endpoint".into(), self.name.clone().into());
        Ok(Fs::Config(config))
    }
}

/// `base/path` with exactly one separator; `path` is already normalised and relative.
fn join(base: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    match (base.trim_end_matches('/'), path) {
        (base, "") => base.to_string(),
        ("", path) => path.to_string(),
        (base, path) => format!("{base}/{path}"),
    }
}

fn valid_bucket(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-'])
}

fn check_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    ok.then_some(())
        .ok_or_else(|| format!("{host:?} is not a host name or IP address"))
}

/// Plain text: no control characters, no separators rclone could misread.
fn check_plain(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} {value:?} must be non-empty text without control characters"
        ));
    }
    Ok(())
}

/// The one rule for every root and prefix (local, SFTP and SMB roots, S3 prefixes): no
/// `..` segment (separated by `/` or `\`), no control characters.
fn check_inside(field: &str, value: &str) -> Result<(), String> {
    if value.split(['/', '\\']).any(|part| part == "..") || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} {value:?} must not contain a .. segment or control characters"
        ));
    }
    Ok(())
}
