//! `/api/v1/endpoints/{name}/files` (one folder of an endpoint, for browsing) and
//! `/api/v1/paths/preview` (a destination path template rendered as a transfer would,
//! now, for a sample file).

use super::{ApiResult, Body, Bounded, Path, Query, Shared};
use crate::endpoint::Listing;
use crate::path_template::PathTemplate;
use crate::server::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/endpoints/{name}/files?path=&limit=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilesQuery {
    /// The folder, relative to the endpoint's root (default: the root); no `..` segment,
    /// no leading `/`, no control characters.
    #[param(max_length = 1024, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    path: Option<String>,
    /// At most this many entries (default 1000).
    #[param(inline)]
    limit: Option<Bounded<1, 5000>>,
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}/files", tag = "endpoints",
    summary = "List one folder of an endpoint (not recursive): folders first, then by name.",
    description = "It connects to the endpoint (with the endpoint test's short timeouts). A remote \
        failure is a 502 whose kind says what failed (`remote_authentication`, `connection`, ...); \
        a folder that does not exist is a 404.",
    params(("name" = String, Path, description = "The endpoint's name."), FilesQuery),
    responses((status = 200, description = "The folder's entries", body = Listing),
        (status = 404, description = "No endpoint of that name, or no such folder", body = ErrorBody),
        (status = 502, description = "The endpoint failed (authentication, connection, ...)", body = ErrorBody)))]
pub(crate) async fn list_files(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<FilesQuery>,
) -> ApiResult {
    let path = query.path.unwrap_or_default();
    let limit = query.limit.map_or(1000, |limit| limit.0);
    let limit = usize::try_from(limit).unwrap_or(1000);
    Ok(Json(state.orbit.list_files(&name, &path, limit).await?).into_response())
}

/// The body of `POST /api/v1/paths/preview`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathPreview {
    /// A destination path template, e.g. `archive/{year}/{month}/{filename}`.
    #[schema(max_length = 1024)]
    template: String,
    /// A source file's path relative to the source root (default `example/report.csv`).
    #[schema(max_length = 1024)]
    file: Option<String>,
    /// The source endpoint's name, for `{source}` (default `source`).
    #[schema(max_length = 1024)]
    source: Option<String>,
}

/// A rendered destination path (relative to the destination's root; empty: the root).
#[derive(Serialize, ToSchema)]
pub(crate) struct PreviewedPath {
    path: String,
}

#[utoipa::path(post, path = "/api/v1/paths/preview", tag = "templates",
    summary = "Render a destination path template now, for a sample file.",
    description = "The rendering transfers use, with the current time (UTC). A template that does \
        not parse or renders a path that would leave the destination is a 400 naming `template`.",
    request_body = PathPreview,
    responses((status = 200, description = "The rendered path", body = PreviewedPath)))]
pub(crate) async fn preview_path(Body(body): Body<PathPreview>) -> ApiResult {
    let path = PathTemplate::preview(
        &body.template,
        body.file.as_deref().unwrap_or(DEFAULT_PREVIEW_FILE),
        body.source.as_deref().unwrap_or("source"),
    )
    .map_err(|err| {
        let field = err.field.clone().unwrap_or_else(|| "template".into());
        ApiError::invalid(&field, err.message)
    })?;
    Ok(Json(PreviewedPath { path }).into_response())
}

/// The sample file a preview renders for unless told another.
const DEFAULT_PREVIEW_FILE: &str = "example/report.csv";
