//! Tests of the SSRF guard: the allow-list's entries, wildcards, the non-public ranges,
//! and addresses written in the forms the URL standard normalises.

use super::*;

fn list(entries: &[&str]) -> AllowList {
    let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
    AllowList::parse(&entries).unwrap()
}

fn refused(result: std::result::Result<impl fmt::Debug, GuardError>) -> String {
    match result {
        Err(GuardError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn bad_entries_are_refused_naming_their_index() {
    let long = format!("{}.com", "a".repeat(250));
    for (bad, says) in [
        ("", "must not be empty"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "prefix must be 0 to 32"),
        ("fd00::/129", "prefix must be 0 to 128"),
        ("example.com/8", "must be an IP address"),
        ("*.com", "whole top-level domain"),
        ("*", "is not a DNS name"),
        ("a*.example.com", "is not a DNS name"),
        ("*.*.example.com", "is not a DNS name"),
        ("exa mple.com", "is neither"),
        ("*.10.0.0.1", "is not a wildcard"),
        (long.as_str(), "at most 253 characters"),
    ] {
        let entries = vec!["hooks.slack.com".to_string(), bad.to_string()];
        let err = AllowList::parse(&entries).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("allow[1]"), "{bad:?}: {err}");
        assert_eq!(err.context, "notifier");
        assert!(err.message.contains(says), "{bad:?}: {}", err.message);
    }
    let many: Vec<String> = (0..=MAX_ALLOW_ENTRIES)
        .map(|i| format!("h{i}.example.com"))
        .collect();
    let err = AllowList::parse(&many).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("allow"));
    assert!(AllowList::parse(&many[..MAX_ALLOW_ENTRIES]).is_ok());
}

#[test]
fn names_match_exactly_without_case_or_trailing_dot() {
    let allow = list(&["Hooks.Slack.com."]);
    for good in ["hooks.slack.com", "HOOKS.slack.com", "hooks.slack.com."] {
        assert!(allow.check_name(&Host::Domain(good)).is_ok(), "{good}");
    }
    for bad in [
        "slack.com",
        "a.hooks.slack.com",
        "hooks.slack.com.evil.com",
        "hooksxslack.com",
    ] {
        let why = refused(allow.check_name(&Host::Domain(bad)));
        assert_eq!(why, format!("host {bad:?} is not in notifier.allow"));
    }
}

#[test]
fn a_wildcard_takes_one_or_more_labels_before_its_suffix_but_not_the_bare_suffix() {
    let allow = list(&["*.webhook.office.com"]);
    for good in [
        "a.webhook.office.com",
        "prod-12.westeurope.webhook.office.com",
        "A.WEBHOOK.office.com.",
    ] {
        assert!(allow.check_name(&Host::Domain(good)).is_ok(), "{good}");
    }
    for bad in [
        "webhook.office.com",
        ".webhook.office.com",
        "evilwebhook.office.com",
        "a.webhook.office.com.evil.com",
        "office.com",
    ] {
        refused(allow.check_name(&Host::Domain(bad)));
    }
}

/// One address of every range that is not public, and what the guard calls it.
const NOT_PUBLIC: [(&str, &str); 34] = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.10", "documentation"),
    ("203.0.113.10", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("240.0.0.1", "reserved"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    (
        "::ffff:169.254.169.254",
        "link-local address (IPv4-mapped 169.254.169.254)",
    ),
    (
        "::ffff:127.0.0.1",
        "loopback address (IPv4-mapped 127.0.0.1)",
    ),
    ("::7f00:1", "loopback address (IPv4-compatible 127.0.0.1)"),
    (
        "64:ff9b::a9fe:a9fe",
        "link-local address (NAT64 of 169.254.169.254)",
    ),
    ("64:ff9b::a00:1", "private address (NAT64 of 10.0.0.1)"),
    ("fd00:ec2::254", "AWS metadata"),
];

#[test]
fn every_non_public_range_is_named() {
    for (ip, says) in NOT_PUBLIC {
        let ip: IpAddr = ip.parse().unwrap();
        let what = non_public(ip).unwrap_or_else(|| panic!("{ip} judged public"));
        assert!(what.contains(says), "{ip}: {what}");
    }
    for public in [
        "8.8.8.8",
        "1.1.1.1",
        "52.1.2.3",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        let ip: IpAddr = public.parse().unwrap();
        assert_eq!(non_public(ip), None, "{public}");
    }
}

#[test]
fn a_name_resolving_to_a_non_public_address_is_refused_unless_the_address_is_listed() {
    let allow = list(&["meta.example"]);
    for (ip, says) in NOT_PUBLIC {
        let addr: IpAddr = ip.parse().unwrap();
        let why = refused(allow.judge("meta.example", [addr]));
        assert!(
            why.starts_with(&format!("host \"meta.example\" resolves to {addr}, ")),
            "{why}"
        );
        assert!(
            why.contains(says) && why.ends_with("not in notifier.allow"),
            "{why}"
        );
        // Refused even when the other answers are public (a DNS answer can mix them).
        refused(allow.judge("meta.example", ["8.8.8.8".parse().unwrap(), addr]));
        let listed = list(&["meta.example", ip]);
        assert_eq!(listed.judge("meta.example", [addr]), Ok(()), "{ip} listed");
    }
    let ranges = list(&["meta.example", "10.0.0.0/8", "fd00::/8", "169.254.0.0/16"]);
    for ip in [
        "10.200.1.1",
        "fd00:ec2::254",
        "169.254.169.254",
        "::ffff:10.0.0.1",
    ] {
        assert_eq!(
            ranges.judge("meta.example", [ip.parse().unwrap()]),
            Ok(()),
            "{ip}"
        );
    }
    refused(ranges.judge("meta.example", ["172.16.0.1".parse().unwrap()]));
    assert_eq!(
        allow.judge("meta.example", ["8.8.8.8".parse().unwrap()]),
        Ok(())
    );
}

#[test]
fn the_example_message_of_a_metadata_answer() {
    let why = refused(
        list(&["meta.example"]).judge("meta.example", ["169.254.169.254".parse().unwrap()]),
    );
    assert_eq!(
        why,
        "host \"meta.example\" resolves to 169.254.169.254, a link-local address not in notifier.allow"
    );
}

#[tokio::test]
async fn a_listed_address_admits_only_itself_not_a_name_for_it() {
    let allow = list(&["127.0.0.1"]);
    let url = Url::parse("http://127.0.0.1:5080/x").unwrap();
    assert_eq!(allow.check_url(&url), Ok(()));
    let addrs = allow.guard("127.0.0.1", 5080).await.unwrap();
    assert_eq!(addrs, vec!["127.0.0.1:5080".parse().unwrap()]);

    let localhost = Url::parse("http://localhost:5080/x").unwrap();
    let why = refused(allow.check_url(&localhost));
    assert_eq!(why, "host \"localhost\" is not in notifier.allow");
    refused(allow.guard("localhost", 5080).await);

    // The name alone is not enough: it resolves to a loopback address not listed.
    let name_only = list(&["localhost"]);
    assert_eq!(name_only.check_url(&localhost), Ok(()));
    let why = refused(name_only.guard("localhost", 5080).await);
    assert!(why.starts_with("host \"localhost\" resolves to "), "{why}");
    assert!(
        why.contains("a loopback address not in notifier.allow"),
        "{why}"
    );

    // Both: where localhost is 127.0.0.1 alone, the name and that address suffice.
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host("localhost:0")
        .await
        .unwrap()
        .collect();
    if resolved
        .iter()
        .all(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
    {
        let exact = list(&["localhost", "127.0.0.1"]);
        assert_eq!(
            exact.guard("localhost", 5080).await,
            Ok(vec!["127.0.0.1:5080".parse().unwrap()])
        );
    }
    // Every address localhost resolves to (127.0.0.1, and ::1 where /etc/hosts says so).
    let both = list(&["localhost", "127.0.0.0/8", "::1"]);
    let addrs = both.guard("localhost", 5080).await.unwrap();
    assert!(
        !addrs.is_empty()
            && addrs
                .iter()
                .all(|a| a.port() == 5080 && a.ip().is_loopback())
    );
}

#[tokio::test]
async fn addresses_in_normalised_forms_are_judged_by_the_address() {
    let allow = list(&["hooks.slack.com"]);
    for written in [
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
    ] {
        let url = Url::parse(written).unwrap();
        let why = refused(allow.check_url(&url));
        assert!(
            why.contains("169.254.169.254") && why.contains("link-local"),
            "{written}: {why}"
        );
    }
    let why = refused(allow.guard("2852039166", 25).await);
    assert!(
        why.starts_with("address 169.254.169.254 (a link-local address)"),
        "{why}"
    );
    // Listing the IPv4 address admits its IPv4-mapped form too (the same socket).
    let metadata = list(&["169.254.169.254"]);
    let mapped = Url::parse("http://[::ffff:169.254.169.254]/").unwrap();
    assert_eq!(metadata.check_url(&mapped), Ok(()));
    assert_eq!(
        metadata.check_url(&Url::parse("http://2852039166/").unwrap()),
        Ok(())
    );
}

#[test]
fn a_refusal_never_quotes_the_urls_path_or_query() {
    let allow = list(&["hooks.slack.com"]);
    for written in [
        "https://evil.com/services/T000/B000/XXXXSECRET?token=XXXXSECRET",
        "https://10.0.0.1/services/XXXXSECRET",
        "ftp://hooks.slack.com/XXXXSECRET",
    ] {
        let why = refused(allow.check_url(&Url::parse(written).unwrap()));
        assert!(
            !why.contains("XXXXSECRET") && !why.contains("services"),
            "{why}"
        );
    }
}

#[tokio::test]
async fn an_unknown_name_is_unresolved_not_refused() {
    let allow = list(&["no-such-host.invalid"]);
    match allow.guard("no-such-host.invalid", 80).await {
        Err(GuardError::Unresolved(why)) => assert!(why.contains("no-such-host.invalid"), "{why}"),
        other => panic!("expected Unresolved, got {other:?}"),
    }
}

#[tokio::test]
async fn check_says_why_in_words() {
    let allow = list(&["127.0.0.1"]);
    assert_eq!(
        allow.check("evil.com", 443).await,
        Err("host \"evil.com\" is not in notifier.allow".to_string())
    );
    assert_eq!(
        allow.check("127.0.0.1", 25).await,
        Ok(vec!["127.0.0.1:25".parse().unwrap()])
    );
}
