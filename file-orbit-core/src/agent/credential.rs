//! The agent's credential on disk and its enrolment: read the credential file (refused
//! when group or others may read or write it), or exchange the one-time enrolment token
//! for a credential and write it with mode 0600 through a temporary file and a rename, so
//! a crash never leaves half a credential. It never logs or prints the credential.

use super::client::{AgentClient, is_credential_refused};
use super::config::{AgentConfig, ENROLMENT_TOKEN_ENV, is_token};
use super::protocol::{AgentAbout, EnrolRequest};
use crate::engine::CREDENTIAL_PREFIX;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const FIELD: &str = "agent.credential_file";

fn file_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::invalid_field(
        "worker configuration",
        FIELD,
        format!("{}: {message}", path.display()),
    )
}

/// The credential in `path`, trimmed; None when the file does not exist. Refused when the
/// file is open to group or others, or does not hold an agent credential.
pub fn read_credential(path: &Path) -> Result<Option<Secret>> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(path, err)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "is open to group or others (mode {mode:04o}); the credential must be \
                 private to the agent's user: chmod 600 it"
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|err| file_error(path, err))?;
    let credential = text.trim();
    if !is_token(credential, CREDENTIAL_PREFIX) {
        return Err(file_error(
            path,
            "does not hold an agent credential (foa_ and 43 characters)",
        ));
    }
    Ok(Some(Secret::new(credential)))
}

/// A temporary file beside a credential file, created with mode 0600, renamed over it
/// once written; removed if dropped before.
pub struct PendingCredential {
    temporary: PathBuf,
    target: PathBuf,
    file: std::fs::File,
    committed: bool,
}

impl PendingCredential {
    /// Creates the temporary file beside `target` (a stale one of an earlier crash is
    /// replaced): done before enrolling, so a folder the agent cannot write is found out
    /// before the one-time token is spent.
    pub fn create(target: &Path) -> Result<PendingCredential> {
        let name = target
            .file_name()
            .ok_or_else(|| file_error(target, "names no file"))?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(".tmp");
        let temporary = target.with_file_name(temporary_name);
        match std::fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(file_error(&temporary, err)),
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|err| file_error(&temporary, err))?;
        Ok(PendingCredential {
            temporary,
            target: target.to_path_buf(),
            file,
            committed: false,
        })
    }

    /// Writes `credential`, flushes it to disk and renames the file over the target.
    pub fn commit(mut self, credential: &Secret) -> Result<()> {
        let temporary = self.temporary.clone();
        let io = |err: std::io::Error| file_error(&temporary, err);
        self.file
            .write_all(credential.expose().as_bytes())
            .map_err(io)?;
        self.file.write_all(b"\n").map_err(io)?;
        self.file.sync_all().map_err(io)?;
        std::fs::rename(&self.temporary, &self.target)
            .map_err(|err| file_error(&self.target, err))?;
        self.committed = true;
        // The rename itself survives a crash once the folder is synced.
        if let Some(folder) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(folder) = std::fs::File::open(folder) {
                let _ = folder.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PendingCredential {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The agent's credential: from `config.credential_file`, else by enrolling with the
/// enrolment token (then written to the file before it is used). Hands it to `client`.
pub async fn obtain(
    client: &AgentClient,
    config: &AgentConfig,
    about: &AgentAbout,
) -> Result<Secret> {
    let path = &config.credential_file;
    if let Some(credential) = read_credential(path)? {
        client.set_credential(credential.clone());
        return Ok(credential);
    }
    let token = config.enrolment_token.as_ref().ok_or_else(|| {
        file_error(
            path,
            format!(
                "does not exist and there is no enrolment token to enrol with \
                 (agent.enrolment_token or ${ENROLMENT_TOKEN_ENV})"
            ),
        )
    })?;
    let pending = PendingCredential::create(path)?;
    let request = EnrolRequest {
        token: token.expose().to_string(),
        about: about.clone(),
    };
    let reply = client.enrol(&request).await.map_err(|err| {
        if is_credential_refused(&err) {
            Error {
                message: format!(
                    "the enrolment token was refused (used, expired or unknown: ask an admin \
                     for a new one): {}",
                    err.message
                ),
                ..err
            }
        } else {
            err
        }
    })?;
    if !is_token(&reply.credential, CREDENTIAL_PREFIX) {
        return Err(Error::new(
            ErrorKind::Protocol,
            "control plane enrol",
            "the control plane answered something that is not an agent credential",
        ));
    }
    let credential = Secret::new(reply.credential);
    pending.commit(&credential)?;
    tracing::info!(name = %reply.name, file = %path.display(), "enrolled; credential stored");
    client.set_credential(credential.clone());
    Ok(credential)
}
