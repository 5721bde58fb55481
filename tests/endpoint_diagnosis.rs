//! `Endpoint::test` against the real servers: a healthy endpoint of each kind, and each
//! kind of mistake a user makes getting its own diagnosis without the secret in it.

mod common;

use common::{endpoint, env, moto_s3, rclone, sftp_config, smb_config};
use file_orbit::Secret;
use file_orbit::endpoint::{Endpoint, EndpointConfig, HostKeyCheck, Problem, SftpAuth};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const WRONG: &str = "wrong-Pa55-canary-31";

async fn diagnose(config: EndpointConfig) -> file_orbit::endpoint::Diagnosis {
    let endpoint = Endpoint {
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
    }
    let key = Endpoint {
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
    config.access_key_id = Some(env("RCLONE_S3_ACCESS_KEY_ID"));
    config.secret_access_key = Some(Secret::new(WRONG));
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
    config.secret_access_key = Some(Secret::new(WRONG));
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
