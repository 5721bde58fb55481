//! The benches' targets on the servers of `scripts/test-servers.sh` (sshd SFTP, Samba SMB,
//! `rclone serve s3`, moto S3): each target's name and label, and the endpoint config of a
//! remote one read from the servers' env file (`source target/test-servers/env`).

use file_orbit::Secret;
use file_orbit::endpoint::{
    AwsCredentials, EndpointConfig, HostKeyCheck, S3Config, SftpAuth, SftpConfig, SmbConfig,
};
use std::path::PathBuf;

pub fn test_env(name: &str) -> Option<String> {
    std::env::var(format!("FILE_ORBIT_TEST_{name}")).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Sftp,
    Smb,
    S3,
    Moto,
}

impl Target {
    pub fn key(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Sftp => "sftp",
            Target::Smb => "smb",
            Target::S3 => "s3",
            Target::Moto => "moto",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Target::Local => "local→local",
            Target::Sftp => "local→SFTP (sshd)",
            Target::Smb => "local→SMB (Samba)",
            Target::S3 => "local→S3 (rclone serve s3)",
            Target::Moto => "local→S3 (moto)",
        }
    }
}

pub fn parse_target(key: &str) -> Target {
    match key {
        "local" => Target::Local,
        "sftp" => Target::Sftp,
        "smb" => Target::Smb,
        "s3" => Target::S3,
        "moto" => Target::Moto,
        other => panic!("unknown target {other:?} in FILE_ORBIT_BENCH_TARGETS"),
    }
}

/// The endpoint config of the remote `target` rooted at `root` (inside its bucket for S3;
/// moto's bucket is `fo-bench`, which the caller creates); None, said on stderr, when the
/// env file lacks what it needs.
pub fn remote_config(target: Target, root: &str) -> Option<EndpointConfig> {
    let need = |names: &[&str]| -> Option<Vec<String>> {
        let values: Option<Vec<String>> = names.iter().map(|n| test_env(n)).collect();
        if values.is_none() {
            eprintln!(
                "skipping {}: FILE_ORBIT_TEST_{}… not set (source target/test-servers/env)",
                target.label(),
                names[0]
            );
        }
        values
    };
    Some(match target {
        Target::Local => panic!("local is no remote target"),
        Target::Sftp => {
            let v = need(&[
                "SFTP_HOST",
                "SFTP_PORT",
                "SFTP_USER",
                "SFTP_PASSWORD",
                "SFTP_KNOWN_HOSTS",
            ])?;
            EndpointConfig::Sftp(SftpConfig {
                host: v[0].clone(),
                port: v[1].parse().unwrap(),
                user: v[2].clone(),
                auth: SftpAuth::Password {
                    password: Secret::new(v[3].clone()),
                },
                host_key: HostKeyCheck::KnownHostsFile {
                    path: PathBuf::from(&v[4]),
                },
                root: root.into(),
                server_hashes: false,
            })
        }
        Target::Smb => {
            let v = need(&[
                "SMB_HOST",
                "SMB_PORT",
                "SMB_USER",
                "SMB_PASSWORD",
                "SMB_SHARE",
            ])?;
            EndpointConfig::Smb(SmbConfig {
                host: v[0].clone(),
                port: v[1].parse().unwrap(),
                user: v[2].clone(),
                password: Secret::new(v[3].clone()),
                domain: "WORKGROUP".into(),
                share: v[4].clone(),
                root: root.into(),
            })
        }
        Target::S3 | Target::Moto => {
            let prefix = if target == Target::S3 {
                "RCLONE_S3"
            } else {
                "MOTO"
            };
            let v = need(&[
                &format!("{prefix}_ENDPOINT"),
                &format!("{prefix}_REGION"),
                &format!("{prefix}_ACCESS_KEY_ID"),
                &format!("{prefix}_SECRET_ACCESS_KEY"),
            ])?;
            let bucket = match target {
                Target::S3 => test_env("RCLONE_S3_BUCKET")?,
                _ => "fo-bench".to_string(),
            };
            let s3 = |prefix: &str| S3Config {
                provider: None,
                bucket: bucket.clone(),
                prefix: prefix.into(),
                region: Some(v[1].clone()),
                endpoint_url: Some(v[0].clone()),
                credentials: AwsCredentials::new(v[2].clone(), Secret::new(v[3].clone())),
                force_path_style: Some(true),
                storage_class: None,
                server_side_encryption: None,
            };
            EndpointConfig::S3(s3(root))
        }
    })
}
