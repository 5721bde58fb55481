//! Path templates for destination paths: parsing `{variable}` templates once, rendering them
//! for one file, and refusing any rendered path that would leave the destination root.
//!
//! A template such as `incoming/{source}/{date:%Y/%m/%d}/{filename}` is parsed into literal
//! and variable parts. Rendering substitutes the variables from a [`TemplateContext`] and then
//! checks the *final* string: the result must be a relative path that stays inside the
//! destination root. Values may come from untrusted event data (an S3 object key, a file name
//! dropped by a partner), so a `..` segment, an absolute path, a backslash, a Windows drive
//! prefix or a control character is refused with an error, never silently repaired.
//!
//! Variables (all date and time values are taken from [`TemplateContext::now`], in UTC):
//!
//! | variable      | value                                                               |
//! |---------------|---------------------------------------------------------------------|
//! | `{year}`      | four-digit year                                                     |
//! | `{month}` `{day}` `{hour}` `{minute}` `{second}` | two digits, zero-padded          |
//! | `{date:FMT}`  | `now` formatted with the chrono strftime format `FMT`               |
//! | `{timestamp}` | unix seconds                                                        |
//! | `{relpath}`   | the file's path relative to the transfer's source root (`/`-separated) |
//! | `{reldir}`    | the directory part of `relpath`, empty at top level                 |
//! | `{filename}`  | the last segment of `relpath`                                       |
//! | `{stem}`      | `filename` without its last extension (`.bashrc` stays `.bashrc`)   |
//! | `{ext}`       | the last extension of `filename` without the dot, empty if none     |
//! | `{source}`    | the source endpoint's name                                          |
//!
//! `{{` and `}}` stand for literal braces. An empty template, or `.`, is the destination
//! root itself.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};

/// The variable names a template may use, for error messages.
const KNOWN_VARIABLES: &str = "year, month, day, hour, minute, second, date:FMT, timestamp, \
                               filename, stem, ext, relpath, reldir, source";

/// A parsed destination-path template. Compares, displays and serialises as its original text.
#[derive(Clone)]
pub struct PathTemplate {
    text: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Var(Var),
}

#[derive(Clone, Debug)]
enum Var {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Date(Vec<Item<'static>>),
    Timestamp,
    Filename,
    Stem,
    Ext,
    Relpath,
    Reldir,
    Source,
}

impl Var {
    /// True for values taken from the context's (possibly untrusted) strings.
    fn is_event_data(&self) -> bool {
        matches!(
            self,
            Var::Filename | Var::Stem | Var::Ext | Var::Relpath | Var::Reldir | Var::Source
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Var::Year => "year",
            Var::Month => "month",
            Var::Day => "day",
            Var::Hour => "hour",
            Var::Minute => "minute",
            Var::Second => "second",
            Var::Date(_) => "date",
            Var::Timestamp => "timestamp",
            Var::Filename => "filename",
            Var::Stem => "stem",
            Var::Ext => "ext",
            Var::Relpath => "relpath",
            Var::Reldir => "reldir",
            Var::Source => "source",
        }
    }
}

/// The longest template (and source name) `PathTemplate::preview` takes, in characters.
pub const MAX_PREVIEW_CHARS: usize = 1024;

/// What a template is rendered with: the time of the transfer and the file being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContext {
    /// The time used by every date and time variable (UTC).
    pub now: DateTime<Utc>,
    /// The file's path relative to the transfer's source root, with `/` separators.
    pub relpath: String,
    /// The source endpoint's name.
    pub source: String,
}

impl TemplateContext {
    pub fn new(now: DateTime<Utc>, relpath: impl Into<String>, source: impl Into<String>) -> Self {
        TemplateContext {
            now,
            relpath: relpath.into(),
            source: source.into(),
        }
    }
}

impl PathTemplate {
    /// Parses `text` into literal and variable parts, validating every variable and date format.
    pub fn parse(text: &str) -> Result<PathTemplate> {
        let fail = |message: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("parsing path template {text:?}"),
                message,
            )
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            let next = &text[pos + c.len_utf8()..];
            match c {
                '{' if next.starts_with('{') => {
                    literal.push('{');
                    pos += 2;
                }
                '}' if next.starts_with('}') => {
                    literal.push('}');
                    pos += 2;
                }
                '}' => {
                    return Err(fail(format!(
                        "stray '}}' at byte {pos} (write '}}}}' for a literal brace)"
                    )));
                }
                '{' => {
                    // The variable ends at the next '}'; another '{' first means this one is
                    // not closed.
                    let close = match next.find(['{', '}']) {
                        Some(i) if next.as_bytes()[i] == b'}' => i,
                        _ => {
                            return Err(fail(format!(
                                "unclosed '{{' at byte {pos} (write '{{{{' for a literal brace)"
                            )));
                        }
                    };
                    let inner = &next[..close];
                    let var = parse_variable(inner, pos).map_err(fail)?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(var));
                    pos += 1 + close + 1;
                }
                _ => {
                    literal.push(c);
                    pos += c.len_utf8();
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(PathTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// `template` rendered now for the sample source file `file` (relative to the source
    /// root) from the source endpoint `source`: what a transfer would write (a console's
    /// live preview). Errors name `template` (too long, unparsable, leaving the root),
    /// `file` or `source`.
    pub fn preview(template: &str, file: &str, source: &str) -> Result<String> {
        let context = "previewing a path template";
        for (field, text) in [("template", template), ("source", source)] {
            if text.chars().count() > MAX_PREVIEW_CHARS {
                return Err(Error::invalid_field(
                    context,
                    field,
                    format!("must be at most {MAX_PREVIEW_CHARS} characters"),
                ));
            }
        }
        let file = crate::endpoint::relative_folder(file).map_err(|err| err.with_field("file"))?;
        if file.is_empty() {
            return Err(Error::invalid_field(context, "file", "must name a file"));
        }
        let ctx = TemplateContext::new(Utc::now(), file, source);
        PathTemplate::parse(template)
            .and_then(|parsed| parsed.render(&ctx))
            .map_err(|err| err.with_field("template"))
    }

    /// The template's original text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Renders the template for one file and returns the normalised relative path, joined
    /// with `/`. Empty and `.` segments are dropped, so an empty result (the templates `""`
    /// and `"."`) means the destination root itself; anything that could leave the root (a
    /// `..` segment, an absolute path, a backslash, a drive prefix, a control character) is
    /// an error.
    pub fn render(&self, ctx: &TemplateContext) -> Result<String> {
        let fail = |message: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("rendering path template {:?}", self.text),
                message,
            )
        };

        let mut out = String::new();
        // Whether a variable (even an empty one) has been rendered: a '/' in a literal after
        // it is a separator, so `{reldir}/{filename}` works at top level.
        let mut after_variable = false;
        let mut absolute = false;
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    if out.is_empty() && !after_variable && text.starts_with('/') {
                        absolute = true;
                    }
                    out.push_str(text);
                }
                Part::Var(var) => {
                    let value = render_variable(var, ctx).map_err(fail)?;
                    if value.starts_with('/') && (out.is_empty() || var.is_event_data()) {
                        return Err(fail(format!(
                            "{{{}}} is the absolute path {value:?}; only relative paths are \
                             allowed",
                            var.name()
                        )));
                    }
                    out.push_str(&value);
                    after_variable = true;
                }
            }
        }
        normalise(&out, absolute).map_err(fail)
    }
}

/// Parses the inside of `{...}` found at byte `pos`.
fn parse_variable(inner: &str, pos: usize) -> std::result::Result<Var, String> {
    if inner.is_empty() {
        return Err(format!(
            "empty variable '{{}}' at byte {pos} (write '{{{{}}}}' for literal braces)"
        ));
    }
    let (name, format) = match inner.split_once(':') {
        Some((name, format)) => (name, Some(format)),
        None => (inner, None),
    };
    let var = match name {
        "year" => Var::Year,
        "month" => Var::Month,
        "day" => Var::Day,
        "hour" => Var::Hour,
        "minute" => Var::Minute,
        "second" => Var::Second,
        "timestamp" => Var::Timestamp,
        "filename" => Var::Filename,
        "stem" => Var::Stem,
        "ext" => Var::Ext,
        "relpath" => Var::Relpath,
        "reldir" => Var::Reldir,
        "source" => Var::Source,
        "date" => {
            let Some(format) = format else {
                return Err(format!(
                    "variable {{date}} at byte {pos} needs a format, e.g. {{date:%Y-%m-%d}}"
                ));
            };
            if format.is_empty() {
                return Err(format!(
                    "variable {{{inner}}} at byte {pos} has an empty date format"
                ));
            }
            let items = StrftimeItems::new(format).parse_to_owned().map_err(|_| {
                format!(
                    "invalid date format {format:?} in {{{inner}}} at byte {pos} \
                     (see chrono's strftime specifiers)"
                )
            })?;
            return Ok(Var::Date(items));
        }
        _ => {
            return Err(format!(
                "unknown variable {{{inner}}} at byte {pos} (known: {KNOWN_VARIABLES})"
            ));
        }
    };
    if format.is_some() {
        return Err(format!(
            "variable {{{inner}}} at byte {pos}: {{{name}}} takes no format"
        ));
    }
    Ok(var)
}

fn render_variable(var: &Var, ctx: &TemplateContext) -> std::result::Result<String, String> {
    let now = &ctx.now;
    Ok(match var {
        Var::Year => format!("{:04}", now.year()),
        Var::Month => format!("{:02}", now.month()),
        Var::Day => format!("{:02}", now.day()),
        Var::Hour => format!("{:02}", now.hour()),
        Var::Minute => format!("{:02}", now.minute()),
        Var::Second => format!("{:02}", now.second()),
        Var::Timestamp => now.timestamp().to_string(),
        Var::Date(items) => {
            let mut out = String::new();
            write!(out, "{}", now.format_with_items(items.iter()))
                .map_err(|_| format!("could not format {now} with the {{date:...}} format"))?;
            out
        }
        Var::Relpath => ctx.relpath.clone(),
        Var::Reldir => split_relpath(&ctx.relpath).0.to_string(),
        Var::Filename => filename(ctx)?.to_string(),
        Var::Stem => split_extension(filename(ctx)?).0.to_string(),
        Var::Ext => split_extension(filename(ctx)?).1.to_string(),
        Var::Source => ctx.source.clone(),
    })
}

/// Splits a relative path into its directory part (empty at top level) and its last segment.
fn split_relpath(relpath: &str) -> (&str, &str) {
    relpath.rsplit_once('/').unwrap_or(("", relpath))
}

/// The last segment of the context's relpath; an empty or `.` name is an error.
fn filename(ctx: &TemplateContext) -> std::result::Result<&str, String> {
    let name = split_relpath(&ctx.relpath).1;
    if name.is_empty() || name == "." {
        return Err(format!(
            "relpath {:?} has no file name for {{filename}}, {{stem}} or {{ext}}",
            ctx.relpath
        ));
    }
    Ok(name)
}

/// Splits a file name into stem and extension at the last dot; a leading dot (`.bashrc`) or
/// `..` is not an extension.
fn split_extension(name: &str) -> (&str, &str) {
    if name == ".." {
        return (name, "");
    }
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

/// Normalises a rendered path and refuses anything that could escape the destination root.
fn normalise(rendered: &str, absolute: bool) -> std::result::Result<String, String> {
    if let Some(c) = rendered.chars().find(|c| c.is_ascii_control()) {
        return Err(format!(
            "rendered path {rendered:?} contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if rendered.contains('\\') {
        return Err(format!(
            "rendered path {rendered:?} contains a backslash; use '/' as the separator"
        ));
    }
    if absolute {
        return Err(format!(
            "rendered path {rendered:?} is absolute; only paths relative to the destination \
             are allowed"
        ));
    }
    let mut segments = Vec::new();
    for segment in rendered.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "rendered path {rendered:?} contains a '..' segment, which could leave the \
                     destination"
                ));
            }
            _ => {
                let bytes = segment.as_bytes();
                if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
                    return Err(format!(
                        "rendered path {rendered:?} contains the Windows drive prefix {:?}",
                        &segment[..2]
                    ));
                }
                segments.push(segment);
            }
        }
    }
    Ok(segments.join("/"))
}

impl FromStr for PathTemplate {
    type Err = Error;

    fn from_str(text: &str) -> Result<PathTemplate> {
        PathTemplate::parse(text)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PathTemplate").field(&self.text).finish()
    }
}

impl PartialEq for PathTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PathTemplate {}

impl Serialize for PathTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PathTemplate::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// In the OpenAPI document: a string, the template's text.
#[cfg(feature = "server")]
impl utoipa::PartialSchema for PathTemplate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(format!(
                "A path with {{variables}} ({KNOWN_VARIABLES}), e.g. `archive/{{date:%Y/%m}}/{{filename}}`"
            )))
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for PathTemplate {}

#[cfg(test)]
mod tests;
