//! The names of a local tree that an SMB destination holds under another name: rclone
//! stores control characters there as their Unicode symbols (`\n` → `␊`), `:?"*<>|\` as
//! their full-width forms and a trailing space or dot as `␠` / `．`. A tree copy renames
//! them, and the job says which. (With rclone v1.76 SFTP keeps such names as they are; with
//! v1.75 it renamed control characters too.)

use crate::endpoint::{Endpoint, EndpointConfig};
use crate::error::Result;
use crate::rclone::methods::{List, ListOptions};
use crate::rclone::{JobOptions, Rclone};
use serde_json::{Map, Value};

/// The most renamed names reported for one transfer (the rest are counted).
const MAX_REPORTED: usize = 100;

/// The first of the Unicode "control pictures": `␀` + c stands for control character c.
const SYMBOL_FOR_NULL: u32 = 0x2400;
const SYMBOL_FOR_DELETE: char = '\u{2421}';
/// rclone's quote before a character that stands for itself.
const QUOTE: char = '‛';

/// Lists the tree `source_path` of a local `source` (with the transfer's `filter`) and
/// returns one line per name `destination` will hold under another name, e.g.
/// `"in/new\nline.txt" arrives as "in/new␊line.txt"`. Empty for other endpoint kinds.
pub(super) async fn renamed_on_arrival(
    rclone: &'static Rclone,
    source: &Endpoint,
    source_path: &str,
    destination: &Endpoint,
    filter: Option<Map<String, Value>>,
) -> Result<Vec<String>> {
    if !matches!(
        (&source.config, &destination.config),
        (EndpointConfig::Local(_), EndpointConfig::Smb(_))
    ) {
        return Ok(Vec::new());
    }
    let list = List {
        fs: source.to_rclone(rclone, source_path)?,
        remote: String::new(),
        opt: ListOptions {
            recurse: true,
            no_mod_time: true,
            ..ListOptions::default()
        },
    };
    let options = JobOptions {
        filter,
        ..JobOptions::default()
    };
    let listed = rclone.start(&list, options).await?.wait().await?;
    let mut renamed: Vec<String> = listed
        .list
        .iter()
        .filter_map(|item| {
            let (original, arrived) = arrival(&item.path);
            (original != arrived).then(|| format!("{original:?} arrives as {arrived:?}"))
        })
        .collect();
    renamed.sort();
    if renamed.len() > MAX_REPORTED {
        let more = renamed.len() - MAX_REPORTED;
        renamed.truncate(MAX_REPORTED);
        renamed.push(format!("and {more} more renamed names"));
    }
    Ok(renamed)
}

/// A listed path as it is on the local disk and as it arrives. rclone lists a control
/// character either as itself or as its symbol; both arrive as the symbol.
fn arrival(path: &str) -> (String, String) {
    let mut original = String::new();
    let mut arrived = String::new();
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            original.push('/');
            arrived.push('/');
        }
        let mut quoted = false;
        let count = segment.chars().count();
        for (position, c) in segment.chars().enumerate() {
            let last = position + 1 == count;
            let code = u32::from(c);
            let (was, becomes) = match c {
                QUOTE if !quoted => {
                    quoted = true;
                    continue;
                }
                _ if quoted => (c, c),
                '\u{7f}' | SYMBOL_FOR_DELETE => ('\u{7f}', SYMBOL_FOR_DELETE),
                _ if code < 0x20 => (c, symbol_for(code)),
                _ if (SYMBOL_FOR_NULL + 1..SYMBOL_FOR_NULL + 0x20).contains(&code) => {
                    (char::from_u32(code - SYMBOL_FOR_NULL).unwrap_or(c), c)
                }
                ':' | '?' | '"' | '*' | '<' | '>' | '|' | '\\' => {
                    (c, char::from_u32(code + 0xFEE0).unwrap_or(c))
                }
                ' ' if last => (c, '␠'),
                '.' if last => (c, '．'),
                _ => (c, c),
            };
            quoted = false;
            original.push(was);
            arrived.push(becomes);
        }
    }
    (original, arrived)
}

fn symbol_for(code: u32) -> char {
    char::from_u32(SYMBOL_FOR_NULL + code).unwrap_or('\u{fffd}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_symbols_and_windows_ones_full_width() {
        for (listed, original, arrived) in [
            ("a/new\nline.txt", "a/new\nline.txt", "a/new␊line.txt"),
            ("a/new␊line.txt", "a/new\nline.txt", "a/new␊line.txt"),
            ("tab\there\u{7f}", "tab\there\u{7f}", "tab␉here␡"),
            ("a:b?.txt", "a:b?.txt", "a：b？.txt"),
            ("dir. /end.", "dir. /end.", "dir.␠/end．"),
            ("quoted ‛␊", "quoted ␊", "quoted ␊"),
            (
                "plain/ünï 文件.txt",
                "plain/ünï 文件.txt",
                "plain/ünï 文件.txt",
            ),
        ] {
            let (was, becomes) = arrival(listed);
            assert_eq!(
                (was.as_str(), becomes.as_str()),
                (original, arrived),
                "{listed:?}"
            );
        }
    }
}
