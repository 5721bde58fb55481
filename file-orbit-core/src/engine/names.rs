//! The names of stored objects that are written as bodies (sources, notifications): the
//! one rule a name follows, and the name given beside a body (a path's, a table's) that
//! may also name itself inside.

use crate::error::{Error, Result};

/// Checks `name` (of a `context`: `source`, `notification`): 1 to 200 characters, not
/// only spaces, without '/' or control characters. The error names field `name`.
pub(crate) fn check_name(context: &str, name: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.len() > 200
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(Error::invalid_field(
            context,
            "name",
            "must be 1 to 200 characters, not only spaces, without '/' or control characters",
        ));
    }
    Ok(())
}

/// The name of a body: `given` beside it (a path's), which a `name` `inside` it must
/// match, or `inside` alone; one of them is required.
pub(crate) fn name_of(
    context: &str,
    given: Option<&str>,
    inside: Option<String>,
) -> Result<String> {
    match (given, inside) {
        (Some(given), Some(inside)) if given != inside => Err(Error::invalid_field(
            context,
            "name",
            format!("{inside:?} differs from the name it is stored under, {given:?}"),
        )),
        (Some(given), _) => Ok(given.to_string()),
        (None, Some(inside)) => Ok(inside),
        (None, None) => Err(Error::invalid_field(context, "name", "is required")),
    }
}
