//! Transfers: a `TransferSpec` (source, destination with a path template, mode, filters,
//! conflict policy, verification, parallelism) and its execution through the rclone client
//! as one rclone job with progress and cancellation, followed by verification.

mod filters;
mod lanes;
mod parallelism;
mod renames;

pub use filters::Filters;
pub use parallelism::default_for as default_parallelism;

use crate::endpoint::{Endpoint, EndpointConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::path_template::{PathTemplate, TemplateContext};
use crate::rclone::methods::{
    Check, CopyFile, Empty, FileTransfer, Fs, HashSum, ListItem, ListOptions, MoveFile, Stat,
    SyncCopy, SyncMove, SyncSync, TreeTransfer,
};
use crate::rclone::{JobCanceller, JobOptions, Progress, Rclone, RcloneJob};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use tokio_stream::wrappers::WatchStream;

/// Copy leaves the source; move deletes it after each file arrives; sync makes the
/// destination tree equal the source (deleting extras).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    #[default]
    Copy,
    Move,
    Sync,
}

/// Whether the source path names one file or a directory tree.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    File,
    #[default]
    Tree,
}

/// What to do when the destination already has a file of the same name.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Replace it unless it already matches (size, time or hash).
    #[default]
    Overwrite,
    /// Never touch an existing destination file.
    SkipExisting,
    /// Replace it only when the source is newer.
    NewerOnly,
}

/// What to move where, and how.
///
/// ```
/// use file_orbit_core::transfer::{TransferMode, TransferSpec};
///
/// let spec: TransferSpec = serde_json::from_value(serde_json::json!({
///     "source": "partner", "source_path": "outbox/invoice.pdf",
///     "destination": "archive", "destination_path": "{year}/{month}/{filename}",
///     "mode": "copy", "scope": "file", "verify": true,
/// }))?;
/// spec.validate()?;
/// assert_eq!(spec.mode, TransferMode::Copy);
///
/// // Rules across fields are checked too, naming the field.
/// let moved_and_verified = TransferSpec { mode: TransferMode::Move, ..spec.clone() };
/// assert_eq!(moved_and_verified.validate().unwrap_err().field.as_deref(), Some("verify"));
///
/// // A destination that would leave the endpoint's root is refused.
/// let escaping = TransferSpec { destination_path: "../etc/{filename}".parse()?, ..spec };
/// assert!(escaping.validate().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// Name of the source endpoint.
    pub source: String,
    /// Path inside the source endpoint: the file (scope file) or directory (scope tree).
    #[serde(default)]
    pub source_path: String,
    /// Name of the destination endpoint.
    pub destination: String,
    /// Destination path template: the file's new path (scope file) or the directory the
    /// tree goes into (scope tree), e.g. `archive/{year}/{month}/{filename}`.
    pub destination_path: PathTemplate,
    #[serde(default)]
    pub mode: TransferMode,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// Compare source and destination after the copy (by hash where both sides have one,
    /// else by reading both); a difference fails the transfer. Without it, copies between
    /// two local endpoints skip rclone's own post-copy hash (as `cp` does); copies to or
    /// from a remote keep it.
    #[serde(default)]
    pub verify: bool,
    /// Files transferred in parallel (rclone `Transfers`; checkers are twice it); unset:
    /// 32 when either endpoint is remote (S3, SFTP, SMB), rclone's 4 between two local
    /// endpoints.
    #[serde(default)]
    pub parallelism: Option<u32>,
}

impl TransferSpec {
    /// A copy of the file `source_path` of endpoint `source` to `destination_path` of
    /// endpoint `destination`; every other option at its default (overwrite, no filters,
    /// no verification, the backends' default parallelism).
    pub fn file(
        source: &str,
        source_path: &str,
        destination: &str,
        destination_path: PathTemplate,
    ) -> Self {
        Self {
            source: source.into(),
            source_path: source_path.into(),
            destination: destination.into(),
            destination_path,
            mode: TransferMode::default(),
            scope: Scope::File,
            filters: Filters::default(),
            conflict: ConflictPolicy::default(),
            verify: false,
            parallelism: None,
        }
    }

    /// Like `file`, for the directory tree at `source_path`, which goes into the
    /// directory `destination_path`.
    pub fn tree(
        source: &str,
        source_path: &str,
        destination: &str,
        destination_path: PathTemplate,
    ) -> Self {
        Self {
            scope: Scope::Tree,
            ..Self::file(source, source_path, destination, destination_path)
        }
    }

    /// Checks the combination of options; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let err = |field: &str, why: &str| Err(Error::invalid_field("transfer spec", field, why));
        if self.scope == Scope::File {
            if self.mode == TransferMode::Sync {
                return err("mode", "sync needs scope tree");
            }
            if !self.filters.is_empty() {
                return err("filters", "filters apply to scope tree only");
            }
            if self.source_path.trim_matches('/').is_empty() {
                return err("source_path", "scope file needs the file's path");
            }
        }
        if self.verify && self.mode == TransferMode::Move {
            return err(
                "verify",
                "a move deletes its source, so nothing is left to compare; rclone checks hashes during a move where both sides have them",
            );
        }
        if self.parallelism == Some(0) {
            return err("parallelism", "must be at least 1");
        }
        if let Err((field, why)) = self.filters.validate() {
            return err(&field, &why);
        }
        // A template whose fixed parts leave the destination (`../x`, `/abs`, `..\x`)
        // fails for every file: say so now, not when it runs.
        let example = TemplateContext::new(Utc::now(), "dir/example.txt", self.source.clone());
        if let Err(e) = self.destination_path.render(&example) {
            return err("destination_path", &e.message);
        }
        if self
            .source_path
            .split(['/', '\\'])
            .any(|segment| segment == "..")
        {
            return err(
                "source_path",
                "must stay inside the source endpoint (no ..)",
            );
        }
        Ok(())
    }
}

/// A running transfer.
pub struct TransferJob {
    rclone: &'static Rclone,
    job: RcloneJob<Empty>,
    verification: Option<Verification>,
    /// Where the files went, relative to the destination endpoint.
    pub destination_path: String,
    /// What its errors are about: the source's endpoint, path and scope, the destination.
    about: Route,
    /// What the user should know although it succeeds (names the destination changes).
    warnings: Vec<String>,
    /// The lanes its remotes run on, held until it ends.
    lanes: Vec<lanes::Lane>,
}

/// The endpoints and paths of a transfer, for its error messages.
struct Route {
    source: String,
    source_path: String,
    scope: Scope,
    destination: String,
}

impl Route {
    /// `err` naming the transfer instead of rclone's call, and for a missing source, the
    /// endpoint and path (rclone says only "object not found").
    fn explain(&self, mut err: Error) -> Error {
        err.context = format!(
            "transfer from endpoint {:?} to {:?}",
            self.source, self.destination
        );
        if err.kind == ErrorKind::NotFound {
            let what = match self.scope {
                Scope::File => "file",
                Scope::Tree => "directory",
            };
            err.message = format!(
                "source {what} {:?} not found on endpoint {:?} ({})",
                self.source_path, self.source, err.message
            );
        }
        err
    }
}

enum Verification {
    Tree { src: Fs, dst: Fs },
    File { src: Fs, dst: Fs },
}

/// Whether `path` names a file on `endpoint` (false when it or its directory is missing).
pub async fn file_exists(rclone: &'static Rclone, endpoint: &Endpoint, path: &str) -> Result<bool> {
    let opt = ListOptions {
        no_mod_time: true,
        ..ListOptions::default()
    };
    Ok(stat_file(rclone, endpoint, path, opt).await?.is_some())
}

/// The file `path` on `endpoint` as `operations/stat` lists it with `opt`; None when it,
/// or its directory, is missing or it is a directory.
pub async fn stat_file(
    rclone: &'static Rclone,
    endpoint: &Endpoint,
    path: &str,
    opt: ListOptions,
) -> Result<Option<ListItem>> {
    // Rooted at the endpoint's root, like a one-file transfer, so the lookup reuses the
    // endpoint's connections instead of opening a remote for the file's directory.
    let stat = Stat {
        fs: endpoint.to_rclone(rclone, "")?,
        remote: path.trim_matches('/').to_string(),
        opt,
    };
    match rclone.call_async(&stat).await {
        Ok(reply) => Ok(reply.item.filter(|item| !item.is_dir)),
        Err(err) if err.kind == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Refuses a path of a local endpoint that passes through a symbolic link: a link planted
/// in a shared folder must not redirect the service's writes (or reads) outside the
/// endpoint's root. Components that do not exist yet are fine (rclone creates them).
fn refuse_local_symlinks(endpoint: &Endpoint, path: &str, field: &str) -> Result<()> {
    let EndpointConfig::Local(local) = &endpoint.config else {
        return Ok(());
    };
    let mut at = local.root.clone();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        at.push(segment);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)
                    .map(|target| format!(" (to {})", target.display()))
                    .unwrap_or_default();
                return Err(Error::invalid_field(
                    format!("endpoint {:?}", endpoint.name),
                    field,
                    format!(
                        "{path:?} passes through the symbolic link {}{target}; File Orbit \
                         never follows links inside a local endpoint",
                        at.display()
                    ),
                ));
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Refuses a tree transfer into a local directory that already holds a symbolic link
/// anywhere below it: rclone (v1.76) writes through a linked directory it finds there.
/// Walks the existing destination tree (links are not followed); a link planted after
/// this check and before rclone reaches that directory is not caught.
async fn refuse_links_below(endpoint: &Endpoint, path: &str) -> Result<()> {
    let EndpointConfig::Local(local) = &endpoint.config else {
        return Ok(());
    };
    let top = local.root.join(path);
    let found = tokio::task::spawn_blocking(move || {
        walkdir::WalkDir::new(&top)
            .min_depth(1)
            .into_iter()
            .filter_map(|entry| entry.ok())
            .find(|entry| entry.path_is_symlink())
            .map(|entry| entry.into_path())
    })
    .await
    .map_err(|err| {
        Error::new(
            ErrorKind::Library,
            "checking the destination",
            err.to_string(),
        )
    })?;
    match found {
        Some(link) => Err(Error::invalid_field(
            format!("endpoint {:?}", endpoint.name),
            "destination_path",
            format!(
                "{path:?} holds the symbolic link {}; File Orbit never writes through links \
                 inside a local endpoint (remove it, or choose another folder)",
                link.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Splits `a/b/c.txt` into (`a/b`, `c.txt`).
fn split_parent(path: &str) -> (&str, &str) {
    let path = path.trim_matches('/');
    path.rsplit_once('/').unwrap_or(("", path))
}

impl TransferJob {
    /// Starts `spec` from `source` to `destination` (the endpoints it names), rendering the
    /// destination template at `now`.
    pub async fn start(
        rclone: &'static Rclone,
        spec: &TransferSpec,
        source: &Endpoint,
        destination: &Endpoint,
        now: DateTime<Utc>,
    ) -> Result<TransferJob> {
        spec.validate()?;
        for (field, named, endpoint) in [
            ("source", &spec.source, source),
            ("destination", &spec.destination, destination),
        ] {
            if *named != endpoint.name {
                return Err(Error::invalid_field(
                    "transfer spec",
                    field,
                    format!("names {named:?} but endpoint {:?} was given", endpoint.name),
                ));
            }
        }
        let source_path = spec.source_path.trim_matches('/');
        let context = TemplateContext::new(now, source_path, source.name.clone());
        let mut destination_path = spec.destination_path.render(&context)?;
        if destination_path.is_empty() && spec.scope == Scope::File {
            // The destination root: the file keeps its name there.
            destination_path = split_parent(source_path).1.to_string();
        }
        refuse_local_symlinks(source, source_path, "source_path")?;
        refuse_local_symlinks(destination, &destination_path, "destination_path")?;
        if spec.scope == Scope::Tree {
            refuse_links_below(destination, &destination_path).await?;
        }

        // Retrying is the engine's job (with backoff, across workers): rclone retries only
        // briefly inside one attempt. Its defaults (3 full passes, 10 low-level retries)
        // made one attempt against a refused SFTP port take 11.5 s.
        let mut config = Map::new();
        config.insert("Retries".into(), 1.into());
        config.insert("LowLevelRetries".into(), 3.into());
        // Between two local endpoints, like `cp`: no post-copy hash of both files unless the
        // spec asks for `verify` (rclone then copies in the kernel; the hashes cost 6× the
        // copy of a 1 GiB file). Copies to and from remotes keep rclone's hash check.
        let both_local = matches!(
            (&source.config, &destination.config),
            (EndpointConfig::Local(_), EndpointConfig::Local(_))
        );
        if both_local && !spec.verify {
            config.insert("IgnoreChecksum".into(), true.into());
        }
        if let Some(transfers) = spec
            .parallelism
            .or_else(|| parallelism::default_for(source, destination))
        {
            config.insert("Transfers".into(), transfers.into());
            config.insert("Checkers".into(), transfers.saturating_mul(2).into());
        }
        match spec.conflict {
            ConflictPolicy::Overwrite => {}
            ConflictPolicy::SkipExisting => {
                config.insert("IgnoreExisting".into(), true.into());
            }
            ConflictPolicy::NewerOnly => {
                config.insert("UpdateOlder".into(), true.into());
            }
        }
        let filter = (!spec.filters.is_empty()).then(|| spec.filters.to_rclone());
        let options = JobOptions {
            config: Some(config),
            filter,
            ..JobOptions::default()
        };

        let mut warnings = Vec::new();
        let mut held = Vec::new();
        let (job, verification) = match spec.scope {
            Scope::File => {
                // Both remotes rooted at their endpoint's root, the paths inside them: every
                // one-file job on an endpoint then names the same rclone remote, so rclone's
                // remote cache hands all of them one backend and its pool of warm
                // connections. A remote per directory cost a new SSH (or SMB) session with
                // its handshake for every job into another directory.
                let mut transfer = FileTransfer {
                    src_fs: source.to_rclone(rclone, "")?,
                    src_remote: source_path.to_string(),
                    dst_fs: destination.to_rclone(rclone, "")?,
                    dst_remote: destination_path.trim_matches('/').to_string(),
                };
                for fs in [&mut transfer.src_fs, &mut transfer.dst_fs] {
                    if let Some(lane) = lanes::Lane::take(fs) {
                        lane.apply(fs);
                        held.push(lane);
                    }
                }
                let job = match spec.mode {
                    TransferMode::Move => rclone.start(&MoveFile(transfer), options).await?,
                    _ => rclone.start(&CopyFile(transfer), options).await?,
                };
                let verification = Verification::File {
                    src: source.to_rclone(rclone, source_path)?,
                    dst: destination.to_rclone(rclone, &destination_path)?,
                };
                (job, verification)
            }
            Scope::Tree => {
                warnings = renames::renamed_on_arrival(
                    rclone,
                    source,
                    source_path,
                    destination,
                    options.filter.clone(),
                )
                .await?;
                let tree = TreeTransfer {
                    src_fs: source.to_rclone(rclone, source_path)?,
                    dst_fs: destination.to_rclone(rclone, &destination_path)?,
                    create_empty_src_dirs: true,
                };
                let verification = Verification::Tree {
                    src: tree.src_fs.clone(),
                    dst: tree.dst_fs.clone(),
                };
                let job = match spec.mode {
                    TransferMode::Copy => rclone.start(&SyncCopy(tree), options).await?,
                    TransferMode::Sync => rclone.start(&SyncSync(tree), options).await?,
                    TransferMode::Move => {
                        let request = SyncMove {
                            tree,
                            delete_empty_src_dirs: true,
                        };
                        rclone.start(&request, options).await?
                    }
                };
                (job, verification)
            }
        };
        Ok(TransferJob {
            rclone,
            job,
            verification: spec.verify.then_some(verification),
            destination_path,
            about: Route {
                source: source.name.clone(),
                source_path: source_path.to_string(),
                scope: spec.scope,
                destination: destination.name.clone(),
            },
            warnings,
            lanes: held,
        })
    }

    /// Progress updates until the transfer (not its verification) ends.
    pub fn progress(&self) -> WatchStream<Progress> {
        self.job.progress()
    }

    /// What the user should know although the transfer succeeds: the names an SFTP or SMB
    /// destination holds differently (`"new\nline.txt" arrives as "new␊line.txt"`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A receiver of progress snapshots that outlives `wait`.
    pub fn progress_receiver(&self) -> tokio::sync::watch::Receiver<Progress> {
        self.job.progress_receiver()
    }

    /// Stops the transfer; `wait` then returns an `ErrorKind::Cancelled` error.
    pub async fn cancel(&self) -> Result<()> {
        self.job.cancel().await
    }

    /// A handle that can stop the transfer while another task waits for it.
    pub fn canceller(&self) -> JobCanceller {
        self.job.canceller()
    }

    /// Waits for the transfer, then verifies it when the spec asked for it.
    pub async fn wait(self) -> Result<Progress> {
        let _lanes = self.lanes;
        let progress = self.job.progress_receiver();
        let rclone = self.rclone;
        let about = self.about;
        self.job.wait().await.map_err(|err| about.explain(err))?;
        if let Some(verification) = self.verification {
            verification.run(rclone).await?;
        }
        let last = progress.borrow().clone();
        Ok(last)
    }
}

impl Verification {
    async fn run(self, rclone: &'static Rclone) -> Result<()> {
        let failed = |what: String| {
            Err(Error::new(
                ErrorKind::Remote,
                "verifying the transfer",
                what,
            ))
        };
        match self {
            Verification::Tree { src, dst } => {
                let mut check = Check::new(src, dst);
                check.one_way = true;
                let mut reply = rclone.call_async(&check).await?;
                if reply.hash_type.as_deref() == Some("none") {
                    // No hash both sides know: compare the bytes.
                    check.download = true;
                    reply = rclone.call_async(&check).await?;
                }
                if !reply.success {
                    return failed(format!(
                        "{}; differ: {:?}, missing on destination: {:?}, errors: {:?}",
                        reply.status, reply.differ, reply.missing_on_dst, reply.error
                    ));
                }
                Ok(())
            }
            Verification::File { src, dst } => {
                let hash = |fs: Fs| HashSum {
                    fs,
                    hash_type: "md5".into(),
                    download: true,
                };
                let source = rclone.call_async(&hash(src)).await?;
                let destination = rclone.call_async(&hash(dst)).await?;
                let digest = |lines: &[String]| {
                    lines
                        .first()
                        .and_then(|line| line.split_whitespace().next())
                        .map(str::to_string)
                };
                let (a, b) = (digest(&source.hashsum), digest(&destination.hashsum));
                if a.is_none() || a != b {
                    return failed(format!("md5 of source {a:?} and destination {b:?} differ"));
                }
                Ok(())
            }
        }
    }
}
