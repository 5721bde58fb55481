//! Typed requests and replies for the rc methods File Orbit uses. Each request knows its
//! method name and reply type (`RcMethod`); field names follow rclone's JSON exactly.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request to one rc method, with the type of its reply.
pub trait RcMethod: Serialize {
    const NAME: &'static str;
    type Reply: DeserializeOwned;
}

/// An rclone file system: a path/remote string (`/data`, `:local:/data`) or rclone's
/// JSON-object form (`{"type":"sftp","host":..,"_root":..}`), never a hand-built
/// connection string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fs {
    Path(String),
    Config(Map<String, Value>),
}

impl Fs {
    /// A directory on the local disk.
    pub fn local(path: impl AsRef<std::path::Path>) -> Self {
        let mut config = Map::new();
        config.insert("type".into(), "local".into());
        config.insert("_root".into(), path.as_ref().display().to_string().into());
        Fs::Config(config)
    }
}

/// A reply with nothing in it (most mutating methods).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Empty {}

macro_rules! rc_method {
    ($request:ty, $name:literal, $reply:ty) => {
        impl RcMethod for $request {
            const NAME: &'static str = $name;
            type Reply = $reply;
        }
    };
}

/// `rc/noop`: echoes its parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Noop(pub Map<String, Value>);
rc_method!(Noop, "rc/noop", Map<String, Value>);

/// `core/version`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoreVersion {}
rc_method!(CoreVersion, "core/version", VersionInfo);

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub decomposed: Vec<u64>,
    #[serde(rename = "goVersion")]
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub linking: String,
}

/// `core/obscure`: rclone's reversible obscuring (required for sftp/smb passwords; not encryption).
#[derive(Debug, Clone, Serialize)]
pub struct CoreObscure {
    pub clear: String,
}
rc_method!(CoreObscure, "core/obscure", Obscured);

#[derive(Debug, Clone, Deserialize)]
pub struct Obscured {
    pub obscured: String,
}

/// `core/bwlimit`: reads or sets the ONE process-wide bandwidth limit (`rate` like "10M", "off").
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoreBwLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}
rc_method!(CoreBwLimit, "core/bwlimit", BwLimit);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BwLimit {
    pub bytes_per_second: i64,
    pub rate: String,
}

/// `core/stats` for one stats group (File Orbit uses one group per job).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoreStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}
rc_method!(CoreStats, "core/stats", Stats);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub bytes: u64,
    pub total_bytes: u64,
    pub transfers: u64,
    pub total_transfers: u64,
    pub checks: u64,
    pub total_checks: u64,
    pub deletes: u64,
    pub renames: u64,
    pub errors: u64,
    pub speed: f64,
    pub eta: Option<f64>,
    pub elapsed_time: f64,
    pub fatal_error: bool,
    pub retry_error: bool,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `core/stats-delete`: drops a stats group once its job is done.
#[derive(Debug, Clone, Serialize)]
pub struct CoreStatsDelete {
    pub group: String,
}
rc_method!(CoreStatsDelete, "core/stats-delete", Empty);

/// `job/status`.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub jobid: i64,
}
rc_method!(JobStatus, "job/status", JobStatusReply);

#[derive(Debug, Clone, Deserialize)]
pub struct JobStatusReply {
    pub id: i64,
    pub group: String,
    pub finished: bool,
    pub success: bool,
    pub error: String,
    pub duration: f64,
    #[serde(default)]
    pub output: Option<Value>,
}

/// `job/stop`: cancels a running job.
#[derive(Debug, Clone, Serialize)]
pub struct JobStop {
    pub jobid: i64,
}
rc_method!(JobStop, "job/stop", Empty);

/// The reply of any call made with `_async: true`.
#[derive(Debug, Clone, Deserialize)]
pub struct AsyncJob {
    pub jobid: i64,
}

/// `operations/copyfile` and `operations/movefile` take the same parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileTransfer {
    pub src_fs: Fs,
    pub src_remote: String,
    pub dst_fs: Fs,
    pub dst_remote: String,
}

/// `operations/copyfile`: copies one file.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct CopyFile(pub FileTransfer);
rc_method!(CopyFile, "operations/copyfile", Empty);

/// `operations/movefile`: moves one file.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct MoveFile(pub FileTransfer);
rc_method!(MoveFile, "operations/movefile", Empty);

/// `sync/copy`, `sync/sync`, `sync/move` take the same parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeTransfer {
    pub src_fs: Fs,
    pub dst_fs: Fs,
    pub create_empty_src_dirs: bool,
}

/// `sync/copy`: copies a tree, skipping files that already match.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct SyncCopy(pub TreeTransfer);
rc_method!(SyncCopy, "sync/copy", Empty);

/// `sync/sync`: makes the destination equal the source (deletes extras).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct SyncSync(pub TreeTransfer);
rc_method!(SyncSync, "sync/sync", Empty);

/// `sync/move`: moves a tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncMove {
    #[serde(flatten)]
    pub tree: TreeTransfer,
    pub delete_empty_src_dirs: bool,
}
rc_method!(SyncMove, "sync/move", Empty);

/// Listing options of `operations/list` and `operations/stat`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOptions {
    pub recurse: bool,
    pub no_mod_time: bool,
    pub show_hash: bool,
    pub dirs_only: bool,
    pub files_only: bool,
    /// Each item's metadata (`Metadata`): S3 user metadata and system keys, local modes.
    pub metadata: bool,
}

/// `operations/list`.
#[derive(Debug, Clone, Serialize)]
pub struct List {
    pub fs: Fs,
    pub remote: String,
    pub opt: ListOptions,
}
rc_method!(List, "operations/list", ListReply);

#[derive(Debug, Clone, Deserialize)]
pub struct ListReply {
    pub list: Vec<ListItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListItem {
    pub path: String,
    pub name: String,
    pub size: i64,
    #[serde(default)]
    pub mod_time: Option<String>,
    pub is_dir: bool,
    #[serde(default)]
    pub hashes: Option<Map<String, Value>>,
    /// The media type rclone reports (S3: the object's Content-Type; local: by extension).
    #[serde(default)]
    pub mime_type: Option<String>,
    /// With `ListOptions::metadata`: the item's metadata, keys lower case.
    #[serde(default)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// `operations/stat`: one item, or none when it does not exist.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub fs: Fs,
    pub remote: String,
    pub opt: ListOptions,
}
rc_method!(Stat, "operations/stat", StatReply);

#[derive(Debug, Clone, Deserialize)]
pub struct StatReply {
    pub item: Option<ListItem>,
}

/// `operations/check`: compares two trees by size and hash (`download` compares bytes).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub src_fs: Fs,
    pub dst_fs: Fs,
    pub download: bool,
    pub one_way: bool,
    pub combined: bool,
    pub missing_on_src: bool,
    pub missing_on_dst: bool,
    #[serde(rename = "match")]
    pub matched: bool,
    pub differ: bool,
    pub error: bool,
}

impl Check {
    /// A full check of `src_fs` against `dst_fs` reporting every kind of difference.
    pub fn new(src_fs: Fs, dst_fs: Fs) -> Self {
        Check {
            src_fs,
            dst_fs,
            download: false,
            one_way: false,
            combined: false,
            missing_on_src: true,
            missing_on_dst: true,
            matched: false,
            differ: true,
            error: true,
        }
    }
}
rc_method!(Check, "operations/check", CheckReply);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReply {
    pub success: bool,
    pub status: String,
    #[serde(default)]
    pub hash_type: Option<String>,
    #[serde(default)]
    pub missing_on_src: Vec<String>,
    #[serde(default)]
    pub missing_on_dst: Vec<String>,
    #[serde(default, rename = "match")]
    pub matched: Vec<String>,
    #[serde(default)]
    pub differ: Vec<String>,
    #[serde(default)]
    pub error: Vec<String>,
}

/// `operations/hashsum`: one `"<hash>  <path>"` line per file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashSum {
    pub fs: Fs,
    pub hash_type: String,
    pub download: bool,
}
rc_method!(HashSum, "operations/hashsum", HashSumReply);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashSumReply {
    pub hashsum: Vec<String>,
    pub hash_type: String,
}

/// `operations/mkdir`, `operations/deletefile` and `operations/purge` address one path.
#[derive(Debug, Clone, Serialize)]
pub struct FsPath {
    pub fs: Fs,
    pub remote: String,
}

/// `operations/mkdir`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Mkdir(pub FsPath);
rc_method!(Mkdir, "operations/mkdir", Empty);

/// `operations/deletefile`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DeleteFile(pub FsPath);
rc_method!(DeleteFile, "operations/deletefile", Empty);

/// `operations/purge`: removes a directory and everything in it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Purge(pub FsPath);
rc_method!(Purge, "operations/purge", Empty);
