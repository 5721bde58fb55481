//! Endpoint configs as users write them (TOML, JSON): parsing, validation errors that name
//! the field, secrets that never print, and the whitelisted rclone form.

mod common;

use common::rclone;
use file_orbit::endpoint::{Endpoint, EndpointConfig, SmbConfig};
use file_orbit::rclone::methods::Fs;
use file_orbit::{ErrorKind, Secret};

const PASSWORD: &str = "s3cr3t-canary-77";

fn from_toml(text: &str) -> Result<Endpoint, toml::de::Error> {
    toml::from_str(text)
}

fn rclone_keys(endpoint: &Endpoint) -> (Vec<String>, serde_json::Map<String, serde_json::Value>) {
    let Fs::Config(config) = endpoint.to_rclone(rclone(), "sub/dir").unwrap() else {
        panic!("not the JSON-object form");
    };
    let mut keys: Vec<String> = config.keys().cloned().collect();
    keys.sort();
    (keys, config)
}

#[test]
fn every_kind_parses_from_toml_and_maps_to_whitelisted_options() {
    let sftp = from_toml(&format!(
        r#"
        name = "partner"
        type = "sftp"
        host = "sftp.example.com"
        user = "acme"
        root = "outbox"
        auth = {{ method = "password", password = "{PASSWORD}" }}
        host_key = {{ check = "known_hosts_file", path = "/etc/ssh/known_hosts" }}
        "#
    ))
    .unwrap();
    let (keys, config) = rclone_keys(&sftp);
    assert_eq!(
        keys,
        [
            "_root",
            "host",
            "known_hosts_file",
            "orbit_endpoint",
            "pass",
            "port",
            "shell_type",
            "type",
            "user"
        ]
    );
    assert_eq!(config["_root"], "outbox/sub/dir");
    // Read by the shim only: the endpoint's bandwidth limiter.
    assert_eq!(config["orbit_endpoint"], "partner");
    assert_eq!(config["port"], "22");
    assert_ne!(config["pass"], PASSWORD, "sftp passwords must be obscured");

    let s3 = from_toml(
        r#"
        name = "lake"
        type = "s3"
        bucket = "data-lake"
        prefix = "raw"
        region = "eu-west-1"
        "#,
    )
    .unwrap();
    let (keys, config) = rclone_keys(&s3);
    assert_eq!(
        keys,
        [
            "_root",
            "env_auth",
            "orbit_endpoint",
            "provider",
            "region",
            "type"
        ]
    );
    assert_eq!(config["_root"], "data-lake/raw/sub/dir");

    let smb = from_toml(&format!(
        r#"
        name = "filer"
        type = "smb"
        host = "filer.corp"
        user = 'CORP\jdoe'
        password = "{PASSWORD}"
        share = "finance"
        root = "reports"
        "#
    ))
    .unwrap();
    let (keys, config) = rclone_keys(&smb);
    assert_eq!(
        keys,
        [
            "_root",
            "domain",
            "host",
            "orbit_endpoint",
            "pass",
            "port",
            "type",
            "user"
        ]
    );
    assert_eq!(
        (config["domain"].as_str(), config["user"].as_str()),
        (Some("CORP"), Some("jdoe"))
    );
    assert_eq!(config["_root"], "finance/reports/sub/dir");

    let local: Endpoint =
        serde_json::from_str(r#"{"name":"disk","type":"local","root":"/srv/in"}"#).unwrap();
    let (_, config) = rclone_keys(&local);
    assert_eq!(config["_root"], "/srv/in/sub/dir");
}

#[test]
fn secrets_never_print() {
    let endpoint: Endpoint = serde_json::from_str(&format!(
        r#"{{"name":"x","type":"smb","host":"h","user":"u","password":"{PASSWORD}","share":"s"}}"#
    ))
    .unwrap();
    let shown = format!("{endpoint:?} {}", serde_json::to_string(&endpoint).unwrap());
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn command_running_and_unknown_options_are_refused() {
    for field in [
        r#""ssh": "evil""#,
        r#""md5sum_command": "rm -rf /""#,
        r#""shell_type": "unix""#,
    ] {
        let text = format!(
            r#"{{"name":"x","type":"sftp","host":"h","user":"u","auth":{{"method":"agent"}},{field}}}"#
        );
        let err = serde_json::from_str::<Endpoint>(&text)
            .unwrap_err()
            .to_string();
        let name = field.split('"').nth(1).unwrap();
        assert!(err.contains(name), "{field}: {err}");
    }
}

#[test]
fn validation_names_the_field_and_value() {
    let cases = [
        (
            r#"{"name":"x","type":"local","root":"relative/dir"}"#,
            "root",
        ),
        (r#"{"name":"x","type":"s3","bucket":"Not_Valid"}"#, "bucket"),
        (
            r#"{"name":"x","type":"s3","bucket":"ok-bucket","endpoint_url":"ftp://x"}"#,
            "endpoint_url",
        ),
        (
            r#"{"name":"x","type":"s3","bucket":"ok-bucket","access_key_id":"AK"}"#,
            "secret_access_key",
        ),
        (
            r#"{"name":"x","type":"s3","bucket":"ok-bucket","session_token":"T"}"#,
            "session_token",
        ),
        (
            r#"{"name":"x","type":"s3","bucket":"ok-bucket","prefix":"a/../b"}"#,
            "prefix",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"bad host","user":"u","auth":{"method":"agent"}}"#,
            "host",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"h","port":0,"user":"u","auth":{"method":"agent"}}"#,
            "port",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"h","user":"u","auth":{"method":"agent"},"host_key":{"check":"known_hosts_file","path":"none"}}"#,
            "host_key.path",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"h","user":"u","auth":{"method":"agent"},"host_key":{"check":"pinned","keys":["not-a-key"]}}"#,
            "host_key.keys",
        ),
        (
            r#"{"name":"x","type":"smb","host":"h","user":"u","password":"p","share":"a/b"}"#,
            "share",
        ),
        (r#"{"name":" ","type":"local","root":"/x"}"#, "name"),
    ];
    for (text, field) in cases {
        let endpoint: Endpoint = serde_json::from_str(text).unwrap();
        let err = endpoint.validate().unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{text}");
        assert_eq!(err.field.as_deref(), Some(field), "{text}: {err}");
        let err = endpoint.to_rclone(rclone(), "").unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::InvalidInput,
            "to_rclone must validate: {text}"
        );
    }
}

/// One rule for every kind: a `..` segment in a root or prefix is refused, the error
/// naming the field and the value (local and SFTP roots took them before).
#[test]
fn parent_segments_are_refused_in_every_root_and_prefix() {
    let cases = [
        (
            r#"{"name":"x","type":"local","root":"/a/../b"}"#,
            "root",
            "/a/../b",
        ),
        (
            r#"{"name":"x","type":"local","root":"/srv/.."}"#,
            "root",
            "/srv/..",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"h","user":"u","auth":{"method":"agent"},"root":"../../etc"}"#,
            "root",
            "../../etc",
        ),
        (
            r#"{"name":"x","type":"sftp","host":"h","user":"u","auth":{"method":"agent"},"root":"/home/u/../v"}"#,
            "root",
            "/home/u/../v",
        ),
        (
            r#"{"name":"x","type":"smb","host":"h","user":"u","password":"p","share":"s","root":"a\\..\\b"}"#,
            "root",
            r"a\\..\\b",
        ),
        (
            r#"{"name":"x","type":"s3","bucket":"ok-bucket","prefix":"../other"}"#,
            "prefix",
            "../other",
        ),
    ];
    for (text, field, shown) in cases {
        let endpoint: Endpoint = serde_json::from_str(text).unwrap();
        let err = endpoint.validate().unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{text}");
        assert_eq!(err.field.as_deref(), Some(field), "{text}: {err}");
        assert!(
            err.to_string().contains(&format!(": {field}: ")),
            "{text}: {err}"
        );
        assert!(err.message.contains(shown), "{text}: {err}");
        assert!(err.message.contains(".."), "{text}: {err}");
    }
    // Dots inside names are not parent segments.
    let endpoint: Endpoint =
        serde_json::from_str(r#"{"name":"x","type":"local","root":"/srv/..data/a..b"}"#).unwrap();
    endpoint.validate().unwrap();
}

#[test]
fn unc_paths_give_host_share_and_root() {
    let smb = SmbConfig::from_unc(r"\\filer\finance\reports\2026", "u", Secret::new("p")).unwrap();
    assert_eq!(
        (smb.host.as_str(), smb.share.as_str(), smb.root.as_str()),
        ("filer", "finance", "reports/2026")
    );
    let smb = SmbConfig::from_unc("//filer/finance", "u", Secret::new("p")).unwrap();
    assert_eq!((smb.share.as_str(), smb.root.as_str()), ("finance", ""));
    for bad in ["filer/finance", "//filer", "///finance"] {
        let err = SmbConfig::from_unc(bad, "u", Secret::new("p")).unwrap_err();
        assert!(err.message.contains(bad), "{err}");
    }
    let endpoint = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "f".into(),
        config: EndpointConfig::Smb(smb),
    };
    endpoint.validate().unwrap();
}

#[test]
fn the_same_endpoint_gives_the_same_remote_so_rclone_reuses_connections() {
    let endpoint: Endpoint = serde_json::from_str(&format!(
        r#"{{"name":"x","type":"smb","host":"h","user":"u","password":"{PASSWORD}","share":"s"}}"#
    ))
    .unwrap();
    let first = endpoint.to_rclone(rclone(), "a").unwrap();
    assert_eq!(first, endpoint.to_rclone(rclone(), "a").unwrap());
}
