//! The API's route table — every authenticated route with the role it needs, its query
//! parameters and what it does — and the OpenAPI 3.1 document built from it, served at
//! `/api/v1/openapi.json`. The router registers routes only through this table, so the
//! document, the role checks and the routes cannot drift apart.

use super::config::Role;
use serde_json::{Map, Value, json};

/// One authenticated route (`path` in axum's and OpenAPI's `{param}` syntax).
pub struct ApiRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub role: Role,
    pub summary: &'static str,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// The JSON body it reads, if any.
    pub body: Option<&'static str>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    role: Role,
    summary: &'static str,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        role,
        summary,
        query: &[],
        body: None,
    }
}

const LIMIT: (&str, &str) = ("limit", "At most this many items (1-1000, default 100).");

/// Every route behind authentication.
pub const API_ROUTES: &[ApiRoute] = &[
    route(
        "GET",
        "/api/v1/endpoints",
        Role::Viewer,
        "List endpoints (secrets as ***).",
    ),
    route(
        "GET",
        "/api/v1/endpoints/{name}",
        Role::Viewer,
        "Get one endpoint (secrets as ***).",
    ),
    ApiRoute {
        body: Some(
            "The endpoint: `type` (local, s3, sftp, smb) and its fields, optional `name` \
             (must match the path) and `max_concurrent` (default 4). Secrets are write-only.",
        ),
        ..route(
            "PUT",
            "/api/v1/endpoints/{name}",
            Role::Admin,
            "Create (201) or replace (200) an endpoint.",
        )
    },
    route(
        "DELETE",
        "/api/v1/endpoints/{name}",
        Role::Admin,
        "Delete an endpoint no queued or running job or template uses (204).",
    ),
    route(
        "POST",
        "/api/v1/endpoints/{name}/test",
        Role::Operator,
        "Test an endpoint: a diagnosis a person can act on (ok, problem, message, warning); it writes and removes a hidden probe file unless ?write_probe=false (for endpoints only read from).",
    ),
    route(
        "GET",
        "/api/v1/templates",
        Role::Viewer,
        "List transfer templates.",
    ),
    ApiRoute {
        body: Some(
            "The template: name (must match the path), matcher, transfer, priority, retry, next hops, schedule.",
        ),
        ..route(
            "PUT",
            "/api/v1/templates/{name}",
            Role::Admin,
            "Create or replace a transfer template.",
        )
    },
    route(
        "DELETE",
        "/api/v1/templates/{name}",
        Role::Admin,
        "Delete a template and its schedule (204).",
    ),
    route(
        "GET",
        "/api/v1/schedules",
        Role::Viewer,
        "Templates' cron schedules: next tick due, last tick fired.",
    ),
    route(
        "GET",
        "/api/v1/workers",
        Role::Viewer,
        "Worker processes of the cluster seen in the last day: slots, running transfers, last contact, alive.",
    ),
    ApiRoute {
        query: &[
            ("state", "queued, leased, succeeded, dead or cancelled."),
            LIMIT,
            ("offset", "Skip this many jobs (newest first)."),
            (
                "before_id",
                "Only jobs with a smaller id: the page after one ending at that id.",
            ),
        ],
        ..route(
            "GET",
            "/api/v1/jobs",
            Role::Viewer,
            "List jobs, newest first.",
        )
    },
    ApiRoute {
        body: Some(
            "A job request: spec (the transfer), priority, idempotency_key, retry, next_hops; \
             or a batch, {\"jobs\": [job requests]} (at most max_batch_jobs, default 1000; \
             more: 400 naming `jobs`). Each job of a batch is checked on its own; the valid \
             ones are stored in one transaction; the answer lists in order {\"index\", \"id\"} \
             or {\"index\", \"error\": {kind, message, field: \"jobs[i]....\"}}: 201 when \
             every job was stored, 207 when some were not.",
        ),
        ..route(
            "POST",
            "/api/v1/jobs",
            Role::Operator,
            "Submit a job (201 with its id; the same idempotency key gives the same job), \
             or a batch of jobs in one request (one rate-limit token).",
        )
    },
    route("GET", "/api/v1/jobs/{id}", Role::Viewer, "Get one job."),
    route(
        "POST",
        "/api/v1/jobs/{id}/cancel",
        Role::Operator,
        "Cancel a queued job, or ask a running one's worker to stop it (202).",
    ),
    route(
        "POST",
        "/api/v1/jobs/{id}/retry",
        Role::Operator,
        "Queue a dead or cancelled job again.",
    ),
    route(
        "GET",
        "/api/v1/jobs/{id}/events",
        Role::Viewer,
        "Live progress as Server-Sent Events (update ... end).",
    ),
    ApiRoute {
        query: &[LIMIT],
        ..route(
            "GET",
            "/api/v1/events",
            Role::Viewer,
            "List stored events, newest first.",
        )
    },
    route(
        "GET",
        "/api/v1/events/{id}",
        Role::Viewer,
        "Get one event with the jobs it started.",
    ),
    route(
        "POST",
        "/api/v1/events/{id}/replay",
        Role::Operator,
        "Create an event's jobs again.",
    ),
    route(
        "GET",
        "/api/v1/keys",
        Role::Admin,
        "List API keys, the configuration's and the managed ones: name, role, source, \
         created, expires, last used (to the minute), revoked. Never a key or its hash.",
    ),
    ApiRoute {
        body: Some(
            "name (1-64 of A-Z a-z 0-9 . _ -), role (viewer, operator, admin), optional \
             expires_at (RFC 3339) or expires_in_days.",
        ),
        ..route(
            "POST",
            "/api/v1/keys",
            Role::Admin,
            "Mint an API key, stored only as its SHA-256: 201 with the key in `key`, shown \
             only in this answer.",
        )
    },
    route(
        "DELETE",
        "/api/v1/keys/{name}",
        Role::Admin,
        "Revoke a managed API key: refused at once on every node (204).",
    ),
    ApiRoute {
        query: &[LIMIT],
        ..route(
            "GET",
            "/api/v1/audit",
            Role::Viewer,
            "The audit log, newest first.",
        )
    },
    route(
        "GET",
        "/api/v1/audit/verify",
        Role::Viewer,
        "Check the audit log's hash chain.",
    ),
    ApiRoute {
        query: &[
            ("service", "Only this service's files (server, worker)."),
            (
                "level",
                "This level and more severe ones (error, warn, info, debug, trace).",
            ),
            ("job", "Only lines logged for this job id."),
            ("since", "Not before this time (RFC 3339)."),
            ("until", "Not after this time (RFC 3339)."),
            ("limit", "At most this many lines (1-5000, default 200)."),
        ],
        ..route(
            "GET",
            "/api/v1/logs",
            Role::Operator,
            "Log lines, newest first.",
        )
    },
    route("GET", "/metrics", Role::Viewer, "Prometheus metrics."),
];

/// The route of `method` + `path`, if the table has it.
pub fn api_route(method: &str, path: &str) -> Option<&'static ApiRoute> {
    API_ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> Value {
    let error = json!({"$ref": "#/components/responses/Error"});
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, operation: Value| {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = operation;
    };
    for route in API_ROUTES {
        let mut parameters: Vec<Value> = path_params(route.path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(route.query.iter().map(|(name, about)| {
            json!({"name": name, "in": "query", "required": false, "description": about,
                   "schema": {"type": "string"}})
        }));
        let success = match (route.method, route.path) {
            ("POST", "/api/v1/jobs" | "/api/v1/keys") => "201",
            _ => "200",
        };
        let mut operation = json!({
            "summary": route.summary,
            "description": format!("Needs the {:?} role (or a higher one).", route.role),
            "x-required-role": route.role,
            "security": [{"bearer": []}],
            "parameters": parameters,
            "responses": {
                success: {"description": "Success", "content": {"application/json": {}}},
                "400": error, "401": error, "403": error, "404": error, "429": error,
            },
        });
        if (route.method, route.path) == ("POST", "/api/v1/jobs") {
            operation["responses"]["207"] = json!({
                "description": "A batch in which some jobs were not stored: each has its error",
                "content": {"application/json": {}},
            });
        }
        if let Some(body) = route.body {
            operation["requestBody"] = json!({
                "required": true, "description": body,
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
        add(route.path, route.method, operation);
    }
    add(
        "/health",
        "GET",
        json!({
            "summary": "Health: 503 when unhealthy. Anyone reads ok or not per component \
                (database, workers, disks); a viewer or above also reads the details \
                (store backend and latency, rclone, queue depth, workers, disk paths and free space).",
            "security": [{}, {"bearer": []}],
            "responses": {"200": {"description": "Healthy"}, "503": {"description": "Unhealthy"},
                          "401": {"description": "Credentials sent but not valid"},
                          "403": {"description": "Credentials of a role below viewer"}},
        }),
    );
    add(
        "/api/v1/openapi.json",
        "GET",
        json!({
            "summary": "This document.",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document"}},
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "File Orbit", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key (fo_...) or an HS256 JWT with a role claim."},
            },
            "responses": {
                "Error": {
                    "description": "An error: kind, message and the field at fault.",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"error": {"type": "object", "properties": {
                            "kind": {"type": "string"}, "message": {"type": "string"},
                            "field": {"type": ["string", "null"]},
                        }}},
                    }}},
                },
            },
        },
    })
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
}
