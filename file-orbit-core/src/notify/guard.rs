//! The SSRF guard of notifications: which hosts a webhook, Slack, Teams or SMTP channel may
//! reach. A host must be named by the service's `notifier.allow` list, and every
//! address its name resolves to must be public or inside an address range of that list
//! (loopback, private, link-local, metadata ... are refused unless listed). The reqwest
//! resolver and redirect policy here make the HTTP client connect only to checked
//! addresses. Its words name hosts and addresses, never a URL's path or query (Slack's and
//! Teams' URLs are credentials).

use super::Channel;
use crate::error::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::{Host, Url};

/// The most entries `notifier.allow` holds.
pub const MAX_ALLOW_ENTRIES: usize = 256;
/// The longest entry (a DNS name's longest form).
const MAX_ENTRY_LEN: usize = 253;
/// How long resolving one name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most redirects an HTTP channel's answer may lead through.
pub const MAX_REDIRECTS: usize = 3;

/// The hosts notifications may reach, from the service config's `notifier.allow`:
/// exact names (`hooks.slack.com`), wildcards (`*.webhook.office.com`: one or more labels
/// before the suffix), addresses (`127.0.0.1`, `::1`) and ranges (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Lowercase, without a trailing dot.
    names: Vec<String>,
    /// The suffix after `*.`, lowercase, without a trailing dot.
    wildcards: Vec<String>,
    nets: Vec<Net>,
}

/// An address range (a single address is a full-length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    base: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why the guard did not give addresses to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The host or an address it resolves to is not allowed (retrying cannot help).
    Refused(String),
    /// The name could not be resolved (in time): retrying may help.
    Unresolved(String),
    /// An HTTP answer redirected more than [`MAX_REDIRECTS`] times.
    TooManyRedirects,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Refused(why) | GuardError::Unresolved(why) => f.write_str(why),
            GuardError::TooManyRedirects => {
                write!(f, "the answer redirected more than {MAX_REDIRECTS} times")
            }
        }
    }
}

impl std::error::Error for GuardError {}

impl AllowList {
    /// Reads `notifier.allow`; an error names the entry (`allow[3]`).
    pub fn parse(entries: &[String]) -> Result<AllowList> {
        let context = "notifier";
        if entries.len() > MAX_ALLOW_ENTRIES {
            return Err(Error::invalid_field(
                context,
                "allow",
                format!("must list at most {MAX_ALLOW_ENTRIES} entries"),
            ));
        }
        let mut list = AllowList::default();
        for (i, entry) in entries.iter().enumerate() {
            list.add(entry).map_err(|why| {
                Error::invalid_field(
                    context,
                    format!("allow[{i}]"),
                    format!("{:?} {why}", entry.chars().take(60).collect::<String>()),
                )
            })?;
        }
        Ok(list)
    }

    fn add(&mut self, entry: &str) -> std::result::Result<(), String> {
        if entry.is_empty() {
            return Err("must not be empty".into());
        }
        if entry.len() > MAX_ENTRY_LEN {
            return Err(format!("must be at most {MAX_ENTRY_LEN} characters"));
        }
        if let Some((base, prefix)) = entry.split_once('/') {
            let base: IpAddr = base
                .parse()
                .map_err(|_| "is not a range: the part before '/' must be an IP address")?;
            let max = if base.is_ipv4() { 32 } else { 128 };
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("is not a range: the prefix must be 0 to {max}"))?;
            if masked(base, prefix) != base {
                return Err(format!(
                    "has bits set after the prefix; did you mean {}/{prefix}?",
                    masked(base, prefix)
                ));
            }
            self.nets.push(Net { base, prefix });
            return Ok(());
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            self.nets.push(single(ip));
            return Ok(());
        }
        if let Some(suffix) = entry.strip_prefix("*.") {
            let suffix = match Host::parse(suffix) {
                Ok(Host::Domain(name)) => dns_name(&name)?,
                _ => return Err("is not a wildcard: after \"*.\" must come a DNS name".into()),
            };
            if !suffix.contains('.') {
                return Err(
                    "would admit a whole top-level domain: a wildcard needs two or more labels after \"*.\" (as in *.webhook.office.com)"
                        .into(),
                );
            }
            self.wildcards.push(suffix);
            return Ok(());
        }
        match Host::parse(entry) {
            Ok(Host::Domain(name)) => self.names.push(dns_name(&name)?),
            Ok(Host::Ipv4(ip)) => self.nets.push(single(IpAddr::V4(ip))),
            Ok(Host::Ipv6(ip)) => self.nets.push(single(IpAddr::V6(ip))),
            Err(_) => {
                return Err(
                    "is neither a host name, a wildcard (*.example.com), an IP address nor a range (10.0.0.0/8)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Whether `ip` (or the IPv4 address an IPv4-mapped one stands for) is in a listed range.
    fn lists(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|net| net.contains(ip) || net.contains(canonical))
    }

    /// Whether a host name is named by an exact or a wildcard entry.
    fn names(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.names.contains(&name)
            || self.wildcards.iter().any(|suffix| {
                name.strip_suffix(suffix.as_str())
                    .and_then(|head| head.strip_suffix('.'))
                    .is_some_and(|labels| !labels.is_empty())
            })
    }

    /// The first step alone, without resolving: a name must be listed; an address must be
    /// in a listed range (which is all an address needs). For redirects and before a request.
    pub fn check_name(&self, host: &Host<&str>) -> std::result::Result<(), GuardError> {
        match host {
            Host::Domain(name) => {
                if self.names(name) {
                    Ok(())
                } else {
                    Err(GuardError::Refused(format!(
                        "host {name:?} is not in notifier.allow"
                    )))
                }
            }
            Host::Ipv4(ip) => self.check_address(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.check_address(IpAddr::V6(*ip)),
        }
    }

    fn check_address(&self, ip: IpAddr) -> std::result::Result<(), GuardError> {
        if self.lists(ip) {
            return Ok(());
        }
        Err(GuardError::Refused(match non_public(ip) {
            Some(what) => format!("address {ip} ({what}) is not in notifier.allow"),
            None => format!("address {ip} is not in notifier.allow"),
        }))
    }

    /// [`AllowList::check_name`] of an http(s) URL's host; the error never quotes the URL.
    pub fn check_url(&self, url: &Url) -> std::result::Result<(), GuardError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuardError::Refused(format!(
                "a {} URL is not http or https",
                url.scheme().chars().take(20).collect::<String>()
            )));
        }
        match url.host() {
            Some(host) => self.check_name(&host),
            None => Err(GuardError::Refused("the URL names no host".into())),
        }
    }

    /// Whether the guard admits the channel's host (and, for a name, every address it
    /// resolves to now): for checking a notification before it is stored. The error names
    /// the field (`channel.url`, `channel.webhook_url`, `channel.host`).
    pub async fn check_channel(&self, channel: &Channel) -> Result<()> {
        let field = format!("channel.{}", channel.host_field());
        let invalid = |why: String| Error::invalid_field("notification", field.clone(), why);
        let checked = match (channel, channel.url()) {
            (Channel::Email(email), _) => self.check(&email.host, email.port()).await,
            (_, Some(text)) => {
                let url = Url::parse(text).map_err(|_| invalid("is not a URL".into()))?;
                match (url.host(), url.port_or_known_default()) {
                    (Some(host), Some(port)) => self
                        .guard_host(&host, port)
                        .await
                        .map_err(|err| err.to_string()),
                    _ => return Err(invalid("must name a host".into())),
                }
            }
            (_, None) => return Err(invalid("names no host".into())),
        };
        checked.map(|_| ()).map_err(invalid)
    }

    /// [`AllowList::guard`] with its refusal in words for a person, e.g. `host
    /// "meta.example" resolves to 169.254.169.254, a link-local address not in
    /// notifier.allow`.
    pub async fn check(
        &self,
        host: &str,
        port: u16,
    ) -> std::result::Result<Vec<SocketAddr>, String> {
        self.guard(host, port).await.map_err(|err| err.to_string())
    }

    /// Checks a host as written (a name, an address, `[::1]`, or a form the URL standard
    /// reads as an address such as `2852039166`) and gives the addresses to connect to
    /// (see [`AllowList::guard_host`]).
    pub async fn guard(
        &self,
        host: &str,
        port: u16,
    ) -> std::result::Result<Vec<SocketAddr>, GuardError> {
        let parsed = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Host::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => Host::Ipv6(ip),
            Err(_) => Host::parse(host).map_err(|_| {
                GuardError::Refused(format!(
                    "host {:?} is not a host name or an address",
                    host.chars().take(100).collect::<String>()
                ))
            })?,
        };
        let parsed = match &parsed {
            Host::Domain(name) => Host::Domain(name.as_str()),
            Host::Ipv4(ip) => Host::Ipv4(*ip),
            Host::Ipv6(ip) => Host::Ipv6(*ip),
        };
        self.guard_host(&parsed, port).await
    }

    /// Checks a host: (a) it must be allowed (see [`AllowList::check_name`]); (b) a name is
    /// resolved (the system resolver, at most [`RESOLVE_TIMEOUT`]) and EVERY address it
    /// resolves to must be public or in a listed range. Gives the addresses with `port`.
    pub async fn guard_host(
        &self,
        host: &Host<&str>,
        port: u16,
    ) -> std::result::Result<Vec<SocketAddr>, GuardError> {
        self.check_name(host)?;
        let name = match host {
            Host::Domain(name) => *name,
            Host::Ipv4(ip) => return Ok(vec![SocketAddr::new(IpAddr::V4(*ip), port)]),
            Host::Ipv6(ip) => return Ok(vec![SocketAddr::new(IpAddr::V6(*ip), port)]),
        };
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
            .await
            .map_err(|_| {
                GuardError::Unresolved(format!(
                    "resolving host {name:?} took more than {} s",
                    RESOLVE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|err| {
                GuardError::Unresolved(format!("host {name:?} could not be resolved ({err})"))
            })?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(GuardError::Unresolved(format!(
                "host {name:?} resolves to no address"
            )));
        }
        self.judge(name, addrs.iter().map(SocketAddr::ip))?;
        Ok(addrs)
    }

    /// The second step: every address `name` resolved to is public or listed.
    fn judge(
        &self,
        name: &str,
        addrs: impl IntoIterator<Item = IpAddr>,
    ) -> std::result::Result<(), GuardError> {
        for ip in addrs {
            if self.lists(ip) {
                continue;
            }
            if let Some(what) = non_public(ip) {
                return Err(GuardError::Refused(format!(
                    "host {name:?} resolves to {ip}, {what} not in notifier.allow"
                )));
            }
        }
        Ok(())
    }
}

fn single(ip: IpAddr) -> Net {
    Net {
        base: ip,
        prefix: if ip.is_ipv4() { 32 } else { 128 },
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(ip) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask))
        }
        IpAddr::V6(ip) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask))
        }
    }
}

/// A DNS name as listed: lowercase ASCII labels of letters, digits, `-` and `_`, 1 to 63
/// characters each, without the trailing dot.
fn dns_name(name: &str) -> std::result::Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let good = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if good {
        Ok(name)
    } else {
        Err("is not a DNS name (labels of letters, digits and '-', 1 to 63 characters)".into())
    }
}

/// What makes an address not public (`a loopback address`), or None for a public one.
/// IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses are judged by their IPv4 address.
pub fn non_public(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip).map(str::to_string),
        IpAddr::V6(ip) => non_public_v6(ip),
    }
}

fn in_v4(ip: Ipv4Addr, base: [u8; 4], prefix: u8) -> bool {
    Net {
        base: IpAddr::V4(Ipv4Addr::from(base)),
        prefix,
    }
    .contains(IpAddr::V4(ip))
}

fn in_v6(ip: Ipv6Addr, base: [u16; 8], prefix: u8) -> bool {
    Net {
        base: IpAddr::V6(Ipv6Addr::from(base)),
        prefix,
    }
    .contains(IpAddr::V6(ip))
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [([u8; 4], u8, &str); 17] = [
        ([0, 0, 0, 0], 32, "an unspecified address"),
        ([0, 0, 0, 0], 8, "a \"this network\" address (0.0.0.0/8)"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        (
            [192, 0, 0, 0],
            24,
            "an IETF protocol address (192.0.0.0/24)",
        ),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay address"),
    ];
    RANGES
        .iter()
        .find(|(base, prefix, _)| in_v4(ip, *base, *prefix))
        .map(|(_, _, what)| *what)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<String> {
    let embedded = |bits: u32, how: &str| {
        let v4 = Ipv4Addr::from(bits);
        non_public_v4(v4).map(|what| format!("{what} ({how} {v4})"))
    };
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Some("an unspecified address".into());
    }
    if ip.is_loopback() {
        return Some("a loopback address".into());
    }
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        return embedded(bits as u32, "IPv4-mapped");
    }
    if in_v6(ip, [0; 8], 96) {
        return embedded(bits as u32, "IPv4-compatible");
    }
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return embedded(bits as u32, "NAT64 of");
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return embedded((bits >> 80) as u32, "6to4 of");
    }
    const RANGES: [([u16; 8], u8, &str); 10] = [
        (
            [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
            48,
            "a local NAT64 address",
        ),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "a discard-only address"),
        ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "a benchmarking address"),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            "a documentation address",
        ),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "a documentation address"),
        (
            [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
            128,
            "the AWS metadata address",
        ),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "a unique-local address"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "a link-local address"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "a site-local address"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "a multicast address"),
    ];
    RANGES
        .iter()
        .find(|(base, prefix, _)| in_v6(ip, *base, *prefix))
        .map(|(_, _, what)| (*what).to_string())
}

/// reqwest's resolver through the guard: the addresses reqwest connects to are the ones
/// checked, so a DNS answer that changes between a check and the connection changes
/// nothing. (reqwest does not resolve an address literal: [`AllowList::check_url`] before
/// the request and the redirect policy check those.)
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    pub fn new(allow: Arc<AllowList>) -> GuardedResolver {
        GuardedResolver { allow }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = allow.guard(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Follows at most [`MAX_REDIRECTS`] redirects, each only to an http(s) URL whose host
/// passes [`AllowList::check_url`] (the resolver then checks a name's addresses). A
/// refusal is a [`GuardError`] in the request error's sources.
pub fn redirect_policy(allow: Arc<AllowList>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(GuardError::TooManyRedirects);
        }
        match allow.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(GuardError::Refused(why)) => {
                attempt.error(GuardError::Refused(format!("refused a redirect: {why}")))
            }
            Err(other) => attempt.error(other),
        }
    })
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
