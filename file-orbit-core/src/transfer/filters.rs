//! Filters of tree transfers: include/exclude globs, ages and sizes in rclone's syntax,
//! checked when a spec is validated (errors name the field) and turned into the one
//! ordered rule list rclone's `_filter` takes.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// rclone filters for tree transfers: globs on the path relative to the source (`*.csv`,
/// `logs/**`); an exclude beats an include; with includes, everything else is left out.
/// Ages like `"10m"`, `"2d"`; sizes like `"1k"`, `"20M"`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub min_age: Option<String>,
    #[serde(default)]
    pub max_age: Option<String>,
    #[serde(default)]
    pub min_size: Option<String>,
    #[serde(default)]
    pub max_size: Option<String>,
}

impl Filters {
    pub(super) fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// Checks every glob, age and size; errors name the field (`filters.include[0]`).
    pub(super) fn validate(&self) -> std::result::Result<(), (String, String)> {
        for (list, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (index, glob) in globs.iter().enumerate() {
                check_glob(glob).map_err(|why| (format!("filters.{list}[{index}]"), why))?;
            }
        }
        for (field, value, check) in [
            ("min_age", &self.min_age, check_age as fn(&str) -> bool),
            ("max_age", &self.max_age, check_age),
            ("min_size", &self.min_size, check_size),
            ("max_size", &self.max_size, check_size),
        ] {
            if let Some(value) = value {
                if !check(value) {
                    let expected = if field.ends_with("age") {
                        "an age like 30s, 10m, 2h, 7d, 2w, 1M, 1y, or a date like 2026-12-01"
                    } else {
                        "a size like 512, 10k, 20M, 1.5G (B, K, M, G, T, P; binary units)"
                    };
                    return Err((
                        format!("filters.{field}"),
                        format!("{value:?} is not {expected}"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn to_rclone(&self) -> Map<String, Value> {
        let mut filter = Map::new();
        // One ordered rule list: rclone applies IncludeRule and ExcludeRule in no set order.
        let mut rules: Vec<String> = self
            .exclude
            .iter()
            .map(|glob| format!("- {glob}"))
            .collect();
        rules.extend(self.include.iter().map(|glob| format!("+ {glob}")));
        if !self.include.is_empty() {
            rules.push("- **".into());
        }
        if !rules.is_empty() {
            filter.insert("FilterRule".into(), json!(rules));
        }
        for (key, value) in [
            ("MinAge", &self.min_age),
            ("MaxAge", &self.max_age),
            ("MinSize", &self.min_size),
            ("MaxSize", &self.max_size),
        ] {
            if let Some(value) = value {
                filter.insert(key.into(), value.clone().into());
            }
        }
        filter
    }
}

/// Whether rclone will take `glob` as a filter pattern: brackets and braces closed, no
/// empty pattern, no control characters (a glob matches the path relative to the source).
fn check_glob(glob: &str) -> std::result::Result<(), String> {
    if glob.trim().is_empty() {
        return Err("an empty pattern matches nothing; leave it out".into());
    }
    if let Some(c) = glob.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{glob:?} contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|_| ())
        .map_err(|err| format!("{glob:?} is not a valid glob: {}", err.kind()))
}

/// rclone's size syntax: a number with an optional unit (`B`, `K`, `M`, `G`, `T`, `P`, `E`,
/// optionally followed by `i`/`iB`/`B`), or `off`.
fn check_size(text: &str) -> bool {
    if text.eq_ignore_ascii_case("off") {
        return true;
    }
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..].to_ascii_lowercase();
    let unit_ok = matches!(unit.as_str(), "" | "b")
        || ["k", "m", "g", "t", "p", "e"].iter().any(|prefix| {
            unit.strip_prefix(prefix)
                .is_some_and(|rest| matches!(rest, "" | "b" | "i" | "ib"))
        });
    unit_ok
        && digits
            .parse::<f64>()
            .is_ok_and(|n| n.is_finite() && n >= 0.0)
}

/// rclone's age syntax: `off`, a duration made of numbers with units (`ms`, `s`, `m`, `h`,
/// `d`, `w`, `M`, `y`; a bare number is seconds), or a date (`2026-12-01`,
/// `2026-12-01 15:04:05`, RFC 3339).
fn check_age(text: &str) -> bool {
    if text.eq_ignore_ascii_case("off") || text.parse::<f64>().is_ok_and(|n| n >= 0.0) {
        return true;
    }
    let is_date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok()
        || DateTime::parse_from_rfc3339(text).is_ok();
    if is_date {
        return true;
    }
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 || rest[..number_len].parse::<f64>().is_err() {
            return false;
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !matches!(
            &rest[..unit_len],
            "ns" | "us" | "µs" | "ms" | "s" | "m" | "h" | "d" | "w" | "M" | "y"
        ) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}
