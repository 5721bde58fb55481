//! Ignore globs of a local watch: which paths below the watched directory are never
//! followed (no filesystem access here, only matching).

use std::path::{Component, Path};

/// Glob patterns: without `/` matched against each path component, with `/` against the
/// whole path below the watched directory.
pub(super) struct Ignore {
    names: globset::GlobSet,
    paths: globset::GlobSet,
}

impl Ignore {
    /// The patterns as one matcher; an error names the field (`ignore[1]`) and says why.
    pub(super) fn new(patterns: &[String]) -> std::result::Result<Ignore, (String, String)> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|err| {
                    (
                        format!("ignore[{index}]"),
                        format!("ignore pattern {pattern:?}: {err}"),
                    )
                })?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |set: globset::GlobSetBuilder| {
            set.build()
                .map_err(|err| ("ignore".to_string(), format!("ignore patterns: {err}")))
        };
        Ok(Ignore {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// `rel` is relative to the watched directory.
    pub(super) fn matches(&self, rel: &Path) -> bool {
        (!self.paths.is_empty() && self.paths.is_match(rel))
            || rel.components().any(|component| match component {
                Component::Normal(name) => self.names.is_match(Path::new(name)),
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::local::DEFAULT_IGNORE;

    fn ignore(patterns: &[&str]) -> Ignore {
        Ignore::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_ignores_partials_temps_and_dotfiles() {
        let set = ignore(DEFAULT_IGNORE);
        for path in [
            "a.csv.1a2b3c4d.partial",
            "x.tmp",
            ".hidden",
            "dir/.x.swp",
            ".git/objects/ab",
            "dir/sub.tmp/file.csv",
        ] {
            assert!(set.matches(Path::new(path)), "{path}");
        }
        for path in ["a.csv", "dir/report.pdf", "tmp/data", "a.partial.csv"] {
            assert!(!set.matches(Path::new(path)), "{path}");
        }
        let with_slash = ignore(&["staging/**"]);
        assert!(with_slash.matches(Path::new("staging/a/b.csv")));
        assert!(!with_slash.matches(Path::new("in/staging/a.csv")));
    }
}
