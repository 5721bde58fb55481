//! `Endpoint::test` against the real servers: a healthy endpoint of each kind (written to
//! and left as it was), and each kind of mistake a user makes getting its own diagnosis
//! without the secret in it: S3 over http with the wrong provider, a root that cannot be
//! written, a root that does not exist yet (a warning when its parent does).

mod common;

use chrono::Utc;
use common::{Kind, endpoint, env, moto_s3, rclone, sftp_config, smb_config, unique};
use file_orbit::endpoint::{
    AwsCredentials, Endpoint, EndpointConfig, HostKeyCheck, LocalConfig, Problem, S3Config,
    SftpAuth, TestOptions,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::{TransferJob, TransferSpec};
use file_orbit::{ErrorKind, Secret};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const WRONG: &str = "wrong-Pa55-canary-31";

async fn diagnose(config: EndpointConfig) -> file_orbit::endpoint::Diagnosis {
    let endpoint = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "under-test".into(),
        config,
    };
    let diagnosis = endpoint.test(rclone()).await;
    let shown = format!("{diagnosis} {diagnosis:?}");
    assert!(!shown.contains(WRONG), "secret leaked: {shown}");
    assert!(shown.contains("under-test"), "endpoint not named: {shown}");
    println!("{diagnosis}");
    diagnosis
}

#[tokio::test]
async fn healthy_endpoints_of_every_kind_pass() {
    for kind in common::KINDS {
        let endpoint = endpoint(kind, "healthy");
        let diagnosis = endpoint.test(rclone()).await;
        assert!(diagnosis.is_ok(), "{kind:?}: {diagnosis}");
        assert_eq!(diagnosis.warning, None, "{kind:?}: {diagnosis:?}");
        assert!(
            diagnosis
                .message
                .contains("probe file was written and removed"),
            "{kind:?}: {diagnosis}"
        );
        assert_eq!(
            root_names(&endpoint).await,
            Vec::<String>::new(),
            "{kind:?}"
        );
    }
    let key = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "sftp-key".into(),
        config: EndpointConfig::Sftp(file_orbit::endpoint::SftpConfig {
            auth: SftpAuth::KeyFile {
                path: PathBuf::from(env("SFTP_KEY_FILE")),
                passphrase: None,
            },
            ..sftp_config("")
        }),
    };
    let diagnosis = key.test(rclone()).await;
    assert!(diagnosis.is_ok(), "{diagnosis}");
}

#[tokio::test]
async fn wrong_sftp_password_is_an_authentication_problem() {
    let mut config = sftp_config("");
    config.auth = SftpAuth::Password {
        password: Secret::new(WRONG),
    };
    let diagnosis = diagnose(EndpointConfig::Sftp(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::Authentication),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn wrong_smb_password_is_an_authentication_problem() {
    let mut config = smb_config("");
    config.password = Secret::new(WRONG);
    let diagnosis = diagnose(EndpointConfig::Smb(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::Authentication),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn wrong_s3_secret_is_an_authentication_problem() {
    // moto accepts any key; rclone serve s3 checks them.
    let mut config = moto_s3(&env("RCLONE_S3_BUCKET"), "");
    config.endpoint_url = Some(env("RCLONE_S3_ENDPOINT"));
    config.credentials = AwsCredentials::new(env("RCLONE_S3_ACCESS_KEY_ID"), Secret::new(WRONG));
    let diagnosis = diagnose(EndpointConfig::S3(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::Authentication),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn wrong_port_is_connection_refused() {
    let mut config = sftp_config("");
    config.port = 1;
    let diagnosis = diagnose(EndpointConfig::Sftp(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::ConnectionRefused),
        "{diagnosis}"
    );
    assert!(diagnosis.message.contains("127.0.0.1:1"), "{diagnosis}");
}

#[tokio::test]
async fn unknown_host_is_a_dns_problem() {
    let mut config = smb_config("");
    config.host = "no-such-host.invalid".into();
    let diagnosis = diagnose(EndpointConfig::Smb(config)).await;
    assert_eq!(diagnosis.problem, Some(Problem::Dns), "{diagnosis}");
}

#[tokio::test]
async fn missing_bucket_is_not_found() {
    let diagnosis = diagnose(EndpointConfig::S3(moto_s3("fo-no-such-bucket", ""))).await;
    assert_eq!(diagnosis.problem, Some(Problem::NotFound), "{diagnosis}");
    assert!(
        diagnosis.message.contains("fo-no-such-bucket"),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn missing_share_is_not_found() {
    let mut config = smb_config("");
    config.share = "nosuchshare".into();
    let diagnosis = diagnose(EndpointConfig::Smb(config)).await;
    assert_eq!(diagnosis.problem, Some(Problem::NotFound), "{diagnosis}");
    assert!(diagnosis.message.contains("nosuchshare"), "{diagnosis}");
}

#[tokio::test]
async fn missing_sftp_directory_is_not_found() {
    let diagnosis = diagnose(EndpointConfig::Sftp(sftp_config("no/such/dir"))).await;
    assert_eq!(diagnosis.problem, Some(Problem::NotFound), "{diagnosis}");
}

#[tokio::test]
async fn a_wrong_pinned_host_key_is_refused() {
    let mut config = sftp_config("");
    config.host_key = HostKeyCheck::Pinned {
        keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                .into(),
        ],
    };
    let diagnosis = diagnose(EndpointConfig::Sftp(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::HostKeyMismatch),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn an_unknown_host_key_is_refused() {
    let mut config = sftp_config("");
    let empty = tempfile::NamedTempFile::new().unwrap();
    config.host_key = HostKeyCheck::KnownHostsFile {
        path: empty.path().to_path_buf(),
    };
    let diagnosis = diagnose(EndpointConfig::Sftp(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::HostKeyMismatch),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn invalid_config_names_the_field() {
    let mut config = moto_s3("Bad_Bucket", "");
    config.credentials.secret_access_key = Some(Secret::new(WRONG));
    let diagnosis = diagnose(EndpointConfig::S3(config)).await;
    assert_eq!(
        diagnosis.problem,
        Some(Problem::InvalidConfig),
        "{diagnosis}"
    );
    assert!(diagnosis.message.contains("bucket"), "{diagnosis}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    // Accepts the TCP connection (so the network probe passes) and then stays silent,
    // as a hung server or a half-open firewall does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut config = sftp_config("");
    config.port = port;
    let diagnosis = diagnose(EndpointConfig::Sftp(config)).await;
    silent.abort();
    assert_eq!(diagnosis.problem, Some(Problem::Timeout), "{diagnosis}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_problem() {
    let mut config = moto_s3("fo-tls-check", "");
    config.endpoint_url = Some(env("MOTO_ENDPOINT").replace("http://", "https://"));
    let diagnosis = diagnose(EndpointConfig::S3(config)).await;
    assert_eq!(diagnosis.problem, Some(Problem::Tls), "{diagnosis}");
}

#[tokio::test]
async fn a_directory_the_account_may_not_read_is_permission_denied() {
    // A directory only root (this test) may open, in the SFTP user's home and in the
    // SMB share.
    let name = format!("private-{}", std::process::id());
    for (base, config) in [
        ("SFTP_HOME", EndpointConfig::Sftp(sftp_config(&name))),
        ("SMB_SHARE_DIR", EndpointConfig::Smb(smb_config(&name))),
    ] {
        let private = PathBuf::from(env(base)).join(&name);
        std::fs::create_dir_all(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let diagnosis = diagnose(config).await;
        std::fs::remove_dir(&private).unwrap();
        assert_eq!(
            diagnosis.problem,
            Some(Problem::PermissionDenied),
            "{diagnosis}"
        );
    }
}

/// The two S3 test servers over plain http, as JSON a user writes: no `provider`.
fn http_s3_endpoints() -> Vec<Endpoint> {
    let moto = json!({
        "name": "moto-http", "type": "s3", "bucket": "fo-tests", "prefix": unique("http"),
        "endpoint_url": env("MOTO_ENDPOINT"), "region": env("MOTO_REGION"),
        "access_key_id": env("MOTO_ACCESS_KEY_ID"),
        "secret_access_key": env("MOTO_SECRET_ACCESS_KEY"), "force_path_style": true,
    });
    let rclone_s3 = json!({
        "name": "rclone-s3-http", "type": "s3", "bucket": env("RCLONE_S3_BUCKET"),
        "prefix": unique("http"), "endpoint_url": env("RCLONE_S3_ENDPOINT"),
        "region": env("RCLONE_S3_REGION"), "access_key_id": env("RCLONE_S3_ACCESS_KEY_ID"),
        "secret_access_key": env("RCLONE_S3_SECRET_ACCESS_KEY"), "force_path_style": true,
    });
    [moto, rclone_s3]
        .into_iter()
        .map(|body| {
            let endpoint: Endpoint = serde_json::from_value(body).unwrap();
            // (With provider AWS, creating moto's existing bucket answers 409.)
            common::ensure_bucket(&with_provider(&endpoint, "Other"));
            endpoint
        })
        .collect()
}

fn with_provider(endpoint: &Endpoint, provider: &str) -> Endpoint {
    let EndpointConfig::S3(s3) = &endpoint.config else {
        panic!("not S3");
    };
    Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: endpoint.name.clone(),
        config: EndpointConfig::S3(S3Config {
            provider: Some(provider.into()),
            ..s3.clone()
        }),
    }
}

/// Copies a small local file to `upload.txt` on `destination`.
async fn upload(destination: &Endpoint) -> file_orbit::Result<()> {
    let source = endpoint(Kind::Local, "local-src");
    std::fs::write(common::local_root(&source).join("upload.txt"), "payload").unwrap();
    let spec = TransferSpec::file(
        &source.name,
        "upload.txt",
        &destination.name,
        PathTemplate::parse("upload.txt").unwrap(),
    );
    let job = TransferJob::start(rclone(), &spec, &source, destination, Utc::now()).await?;
    job.wait().await.map(|_| ())
}

/// Names at the root of `endpoint` (one level).
async fn root_names(endpoint: &Endpoint) -> Vec<String> {
    let fs = endpoint.to_rclone(rclone(), "").unwrap();
    let reply = rclone()
        .rpc_async("operations/list", json!({"fs": fs, "remote": ""}))
        .await
        .unwrap();
    reply["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["Path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn s3_over_http_without_a_provider_uploads() {
    for s3 in http_s3_endpoints() {
        let EndpointConfig::S3(config) = &s3.config else {
            unreachable!()
        };
        assert_eq!(config.provider, None);
        let diagnosis = s3.test(rclone()).await;
        assert!(diagnosis.is_ok(), "{}: {diagnosis}", s3.name);
        assert!(diagnosis.message.contains("probe"), "{diagnosis}");
        upload(&s3)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", s3.name));
        assert_eq!(root_names(&s3).await, ["upload.txt"], "{}", s3.name);
    }
}

#[tokio::test]
async fn provider_aws_over_plain_http_says_what_to_change() {
    for s3 in http_s3_endpoints() {
        let aws = with_provider(&s3, "AWS");
        let diagnosis = aws.test(rclone()).await;
        assert_eq!(
            diagnosis.problem,
            Some(Problem::InvalidConfig),
            "{}: {diagnosis}",
            s3.name
        );
        for advice in ["not writable", "provider to Other", "https endpoint_url"] {
            assert!(diagnosis.message.contains(advice), "{diagnosis}");
        }
        let err = upload(&aws).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        assert!(!err.retryable, "{err}");
        assert!(err.message.contains("provider to Other"), "{err}");
        // The probe left nothing behind.
        assert_eq!(root_names(&s3).await, Vec::<String>::new(), "{}", s3.name);
    }
}

/// A directory the account may list but not write (root's, mode 0755) in the SFTP user's
/// home and in the SMB share: the test says it is not writable, unless asked not to write.
#[tokio::test]
async fn a_root_the_account_may_not_write_is_not_writable() {
    let name = unique("readonly");
    for (base, config) in [
        ("SFTP_HOME", EndpointConfig::Sftp(sftp_config(&name))),
        ("SMB_SHARE_DIR", EndpointConfig::Smb(smb_config(&name))),
    ] {
        let dir = PathBuf::from(env(base)).join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let diagnosis = diagnose(config.clone()).await;
        let read_only = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "under-test".into(),
            config,
        }
        .test_with(rclone(), TestOptions { write_probe: false })
        .await;
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(
            diagnosis.problem,
            Some(Problem::PermissionDenied),
            "{base}: {diagnosis}"
        );
        assert!(diagnosis.message.contains("not writable"), "{diagnosis}");
        assert!(read_only.is_ok(), "{base}: {read_only}");
        assert!(left.is_empty(), "{base}: {left:?}");
    }
}

/// A root that does not exist yet but whose parent does: the first transfer creates it,
/// so the test passes with a warning, and leaves the root as it was (absent).
#[tokio::test]
async fn a_missing_root_the_first_transfer_creates_is_a_warning() {
    let name = unique("newdir");
    let local_parent = tempfile::tempdir().unwrap();
    let local_root = local_parent.path().join(&name);
    for (created, config) in [
        (
            PathBuf::from(env("SFTP_HOME")).join(&name),
            EndpointConfig::Sftp(sftp_config(&name)),
        ),
        (
            PathBuf::from(env("SMB_SHARE_DIR")).join(&name),
            EndpointConfig::Smb(smb_config(&name)),
        ),
        (
            local_root.clone(),
            EndpointConfig::Local(LocalConfig {
                root: local_root.clone(),
            }),
        ),
    ] {
        let diagnosis = diagnose(config.clone()).await;
        assert!(diagnosis.is_ok(), "{diagnosis}");
        let warning = diagnosis.warning.clone().unwrap_or_default();
        assert!(warning.contains("does not exist yet"), "{diagnosis:?}");
        assert!(warning.contains(&name), "{diagnosis:?}");
        assert!(!created.exists(), "{} was left behind", created.display());

        // Only read from: the root must exist.
        let read_only = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "under-test".into(),
            config,
        }
        .test_with(rclone(), TestOptions { write_probe: false })
        .await;
        assert_eq!(read_only.problem, Some(Problem::NotFound), "{read_only}");
    }
    // Two levels missing stays a failure.
    let deeper = diagnose(EndpointConfig::Sftp(sftp_config(&format!("{name}/sub")))).await;
    assert_eq!(deeper.problem, Some(Problem::NotFound), "{deeper}");
}
