//! `Endpoint::list_folder`: one folder of an endpoint, non-recursive, through rclone's
//! `operations/list` on the endpoint's remote form, for a person browsing it (folders
//! first, then by name, at most `limit` entries). The folder is a path relative to the
//! endpoint's root: a `..` segment, an absolute path or a control character is refused,
//! never repaired. It reads only; it never writes to the endpoint.

use super::Endpoint;
use super::diagnosis::test_config;
use crate::error::{Error, ErrorKind, Result};
use crate::rclone::Rclone;
use crate::rclone::methods::ListReply;
use serde::Serialize;
use serde_json::json;

/// The longest folder path accepted, in characters.
pub const MAX_LIST_PATH_CHARS: usize = 1024;
/// The most entries one listing returns.
pub const MAX_LIST_LIMIT: usize = 5000;

/// One folder's entries, folders first and then by name.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    /// The folder, normalised (`a/b`; empty for the endpoint's root).
    pub path: String,
    pub entries: Vec<ListEntry>,
    /// Whether the folder holds more entries than were returned.
    pub truncated: bool,
}

/// A file or folder in a listing.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListEntry {
    pub name: String,
    /// Relative to the endpoint's root (the listing's path joined with the name).
    pub path: String,
    pub is_dir: bool,
    /// Bytes; None for a folder.
    pub size: Option<u64>,
    /// The modification time as the remote reports it (RFC 3339), if it does.
    pub modified: Option<String>,
}

/// `path` as a folder relative to an endpoint's root: `/`-separated, empty and `.`
/// segments dropped. A `..` segment, an absolute path (`/x`, `\x`, `C:`), a control
/// character or more than `MAX_LIST_PATH_CHARS` characters is an error naming `path`.
pub fn relative_folder(path: &str) -> Result<String> {
    let refuse = |why: &str| Err(Error::invalid_field("listing a folder", "path", why));
    if path.chars().count() > MAX_LIST_PATH_CHARS {
        return refuse(&format!("must be at most {MAX_LIST_PATH_CHARS} characters"));
    }
    if path.chars().any(char::is_control) {
        return refuse("must not contain control characters");
    }
    let drive = path.as_bytes().get(1) == Some(&b':') && path.as_bytes()[0].is_ascii_alphabetic();
    if path.starts_with(['/', '\\']) || drive {
        return refuse("must be relative to the endpoint's root, not absolute");
    }
    let mut segments = Vec::new();
    for segment in path.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => return refuse("must not contain a .. segment"),
            _ => segments.push(segment),
        }
    }
    Ok(segments.join("/"))
}

impl Endpoint {
    /// Lists the folder `path` (see `relative_folder`) of this endpoint, non-recursive:
    /// at most `limit` (1 to `MAX_LIST_LIMIT`) entries, folders first, then by name.
    /// Failures are rclone's, classified (authentication, not found, connection...), with
    /// the endpoint test's short timeouts and no low-level retries.
    pub async fn list_folder(
        &self,
        rclone: &'static Rclone,
        path: &str,
        limit: usize,
    ) -> Result<Listing> {
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(Error::invalid_field(
                "listing a folder",
                "limit",
                format!("must be from 1 to {MAX_LIST_LIMIT}"),
            ));
        }
        let folder = relative_folder(path)?;
        let fs = self.to_rclone(rclone, &folder)?;
        let input = json!({"fs": fs, "remote": "", "opt": {}, "_config": test_config()});
        let reply = rclone.rpc_async("operations/list", input).await?;
        let reply: ListReply = serde_json::from_value(reply).map_err(|err| {
            Error::new(
                ErrorKind::Protocol,
                "rclone operations/list",
                format!("unexpected reply: {err}"),
            )
        })?;
        let mut items = reply.list;
        items.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
        let truncated = items.len() > limit;
        items.truncate(limit);
        let entries = items
            .into_iter()
            .map(|item| ListEntry {
                path: if folder.is_empty() {
                    item.name.clone()
                } else {
                    format!("{folder}/{}", item.name)
                },
                size: (!item.is_dir).then(|| u64::try_from(item.size).unwrap_or(0)),
                modified: item.mod_time.filter(|time| !time.is_empty()),
                is_dir: item.is_dir,
                name: item.name,
            })
            .collect();
        Ok(Listing {
            path: folder,
            entries,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_normalised_or_refused_naming_path() {
        for (given, expected) in [
            ("", ""),
            (".", ""),
            ("a", "a"),
            ("a//b/./c/", "a/b/c"),
            ("<img src=x>/ü", "<img src=x>/ü"),
        ] {
            assert_eq!(relative_folder(given).unwrap(), expected, "{given:?}");
        }
        let long = "a".repeat(MAX_LIST_PATH_CHARS + 1);
        for bad in [
            "..", "a/../b", "a\\..\\b", "/etc", "\\x", "C:/x", "a\nb", "a\u{7f}", &long,
        ] {
            let err = relative_folder(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("path"), "{bad:?}");
            assert_eq!(err.kind, ErrorKind::InvalidInput);
        }
        assert_eq!(
            relative_folder(&"a".repeat(MAX_LIST_PATH_CHARS))
                .unwrap()
                .len(),
            1024
        );
    }
}
