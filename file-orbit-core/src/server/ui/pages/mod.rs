//! The console's pages, one file per navigation section: each reads through the
//! caller's `Orbit` and renders its template.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod dashboard;
pub(crate) mod endpoints;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod transfer;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment may hold unescaped (RFC 3986's unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `name` as one segment of a page's or the API's path (`/api/v1/sources/<segment>`).
pub(crate) fn path_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}
