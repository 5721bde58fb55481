//! The API's contract: the route table (each authenticated handler with the role it needs)
//! and the OpenAPI 3.1 document served at `/api/v1/openapi.json`. Paths, parameters, bodies
//! and answers come from the handlers' `#[utoipa::path]` annotations and the types'
//! `ToSchema` derives; this table adds each route's role and the answers the middleware
//! gives every route (401, 403, 429, 503). The router registers routes only from this table,
//! so the document, the role checks and the routes cannot drift apart.

use super::config::Role;
use super::error::ErrorBody;
use super::handlers::{
    Shared, agents, audit, dashboard, endpoints, events, files, job_stream, jobs, keys, logs,
    notifications, sources, templates,
};
use super::health;
use axum::Json;
use axum::http::Method;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

/// One authenticated route (`path` in axum's and OpenAPI's `{param}` syntax; `method`
/// upper case).
#[derive(Debug, Clone)]
pub struct ApiRoute {
    pub method: String,
    pub path: String,
    pub role: Role,
}

/// Every route behind authentication: the role it needs and its handler, whose annotation
/// gives its method, path and document entry. Reading needs viewer (except logs); running
/// work needs operator; changing configuration and keys needs admin.
pub(super) fn handlers() -> Vec<(Role, UtoipaMethodRouter<Shared>)> {
    use Role::{Admin, Operator, Viewer};
    vec![
        (Viewer, routes!(endpoints::list_endpoints)),
        (Viewer, routes!(endpoints::get_endpoint)),
        (Admin, routes!(endpoints::put_endpoint)),
        (Admin, routes!(endpoints::delete_endpoint)),
        (Operator, routes!(endpoints::test_endpoint)),
        (Operator, routes!(files::list_files)),
        (Viewer, routes!(files::preview_path)),
        (Viewer, routes!(templates::list_templates)),
        (Admin, routes!(templates::put_template)),
        (Admin, routes!(templates::delete_template)),
        (Viewer, routes!(templates::list_schedules)),
        (Viewer, routes!(templates::list_workers)),
        (Viewer, routes!(jobs::list_jobs)),
        (Operator, routes!(jobs::submit_job)),
        (Viewer, routes!(jobs::get_job)),
        (Operator, routes!(jobs::cancel_job)),
        (Operator, routes!(jobs::retry_job)),
        (Viewer, routes!(job_stream::job_events)),
        (Viewer, routes!(events::list_events)),
        (Viewer, routes!(events::get_event)),
        (Operator, routes!(events::replay_event)),
        (Viewer, routes!(sources::list_sources)),
        (Viewer, routes!(sources::get_source)),
        (Admin, routes!(sources::put_source)),
        (Admin, routes!(sources::delete_source)),
        (Operator, routes!(sources::pause_source)),
        (Operator, routes!(sources::resume_source)),
        (Viewer, routes!(notifications::list_notifications)),
        (Viewer, routes!(notifications::get_notification)),
        (Admin, routes!(notifications::put_notification)),
        (Admin, routes!(notifications::delete_notification)),
        (Operator, routes!(notifications::test_notification)),
        (Viewer, routes!(notifications::list_outbox)),
        (Operator, routes!(notifications::retry_outbox_message)),
        (Admin, routes!(keys::list_keys)),
        (Admin, routes!(keys::create_key)),
        (Admin, routes!(keys::revoke_key)),
        (Viewer, routes!(agents::list_agents)),
        (Viewer, routes!(agents::get_agent)),
        (Admin, routes!(agents::create_agent)),
        (Admin, routes!(agents::revoke_agent)),
        (Viewer, routes!(audit::audit_log)),
        (Viewer, routes!(audit::verify_audit)),
        (Viewer, routes!(audit::export_audit)),
        (Viewer, routes!(dashboard::dashboard)),
        (Operator, routes!(logs::read_logs)),
        (Viewer, routes!(health::metrics)),
    ]
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The (method, path) pairs a handler's annotation declares.
fn operations(paths: &utoipa::openapi::path::Paths) -> Vec<(String, String)> {
    let paths = serde_json::to_value(paths).expect("paths serialise");
    let mut found = Vec::new();
    for (path, item) in paths.as_object().into_iter().flatten() {
        for method in METHODS.iter().filter(|method| item.get(**method).is_some()) {
            found.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    found
}

/// Every authenticated route, from `handlers()`.
pub static API_ROUTES: LazyLock<Vec<ApiRoute>> = LazyLock::new(|| {
    handlers()
        .into_iter()
        .flat_map(|(role, (_, paths, _))| {
            operations(&paths)
                .into_iter()
                .map(move |(method, path)| ApiRoute { method, path, role })
        })
        .collect()
});

/// The route of `method` + `path`, if the table has it.
pub fn api_route(method: &str, path: &str) -> Option<&'static ApiRoute> {
    API_ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
}

/// The role a route needs (from `API_ROUTES`: reading needs viewer, except logs; running
/// work needs operator; changing configuration needs admin); None for a route not there.
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    api_route(method, route).map(|route| route.role)
}

/// The routes outside the table (`/health` answers anyone; this document) and what every
/// document shares: the security schemes and the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "File Orbit",
        description = "A managed-file-transfer engine's control plane: endpoints, transfer \
            templates, jobs (with live progress), event sources, events, notifications and their outbox, API keys, the audit log and logs."
    ),
    paths(health::health, document),
    components(schemas(ErrorBody, job_stream::JobUpdate)),
    modifiers(&Security)
)]
struct Unauthenticated;

/// The two credentials, both sent as `Authorization: Bearer ...`.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fo_...")
                    .description(Some(
                        "An API key (`fo_...`): declared in the configuration (its SHA-256) \
                         or minted with POST /api/v1/keys.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT signed with the configured jwt_secret: claim `role` \
                         (viewer, operator, admin); `sub`, `exp` and `nbf` optional.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    summary = "This document (OpenAPI 3.1).",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(super) async fn document() -> Json<&'static Value> {
    Json(&DOCUMENT)
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> Value {
    DOCUMENT.clone()
}

/// The error answer of `status`, described.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

fn build() -> Value {
    let mut doc = Unauthenticated::openapi();
    let mut roles = Vec::new();
    for (role, (schemas, paths, _)) in handlers() {
        roles.extend(
            operations(&paths)
                .into_iter()
                .map(|(method, path)| (method, path, role)),
        );
        for (path, item) in paths.paths {
            match doc.paths.paths.get_mut(&path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    doc.paths.paths.insert(path, item);
                }
            }
        }
        doc.components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
    }
    let mut doc = serde_json::to_value(doc).expect("the document serialises");
    merge_all_of(&mut doc);
    doc["security"] = json!([{"api_key": []}, {"jwt": []}]);
    for (method, path, role) in roles {
        let operation = &mut doc["paths"][&path][method.to_ascii_lowercase()];
        add_route_answers(operation, role);
    }
    doc
}

/// `allOf` of plain object schemas (an endpoint config under its `type` tag, a body that
/// adds fields to one) merged into one object schema, and an `allOf` with a `oneOf` part
/// turned into a `oneOf` of merged objects: the same set of documents, in a form every
/// generator and validator reads (parts that each refuse unknown properties would
/// otherwise refuse each other's).
fn merge_all_of(doc: &mut Value) {
    let components = doc["components"]["schemas"].clone();
    // A part with its `$ref` resolved and, when it is itself an `allOf` (a struct that
    // flattens another, like an S3 config and its AWS credentials), merged, at any depth.
    fn flat(part: &Value, components: &Value) -> Value {
        let part = match part["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            Some(name) => components[name].clone(),
            None => part.clone(),
        };
        if let Some(Value::Array(inner)) = part.get("allOf") {
            let inner: Vec<Value> = inner.iter().map(|p| flat(p, components)).collect();
            if let Some(mut merged) = merge(&inner) {
                if let Some(about) = part.get("description") {
                    merged["description"] = about.clone();
                }
                return merged;
            }
        }
        part
    }
    fn merge(parts: &[Value]) -> Option<Value> {
        let mut merged = json!({"type": "object", "properties": {}});
        let mut required: Vec<Value> = Vec::new();
        for part in parts {
            let object = part.as_object()?;
            let plain = object.keys().all(|key| {
                [
                    "type",
                    "properties",
                    "required",
                    "additionalProperties",
                    "description",
                ]
                .contains(&key.as_str())
            });
            if !plain || part["type"] != "object" {
                return None;
            }
            for (name, property) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][name] = property.clone();
            }
            required.extend(part["required"].as_array().into_iter().flatten().cloned());
            if part["additionalProperties"] == false {
                merged["additionalProperties"] = json!(false);
            }
            if let Some(about) = part.get("description") {
                merged["description"] = about.clone();
            }
        }
        required.dedup();
        if !required.is_empty() {
            merged["required"] = json!(required);
        }
        Some(merged)
    }
    fn walk(value: &mut Value, components: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(parts)) = map.get("allOf") {
                    let parts: Vec<Value> = parts.iter().map(|p| flat(p, components)).collect();
                    let replaced = match parts.iter().position(|part| part["oneOf"].is_array()) {
                        Some(at) => parts[at]["oneOf"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .iter()
                            .map(|variant| {
                                let mut all = parts.clone();
                                all[at] = flat(variant, components);
                                merge(&all)
                            })
                            .collect::<Option<Vec<Value>>>()
                            .map(|variants| json!({"oneOf": variants})),
                        None => merge(&parts),
                    };
                    if let Some(mut replaced) = replaced {
                        if let Some(about) = map.get("description") {
                            replaced["description"] = about.clone();
                        }
                        *value = replaced;
                        return;
                    }
                }
                map.values_mut().for_each(|v| walk(v, components));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, components)),
            _ => {}
        }
    }
    walk(doc, &components);
}

/// The role of an authenticated route and the answers its middleware and extractors give:
/// 401, 403, 429 and 503 everywhere; 400 where it reads parameters or a body; 404 where its
/// path names something; 413 and 415 where it reads a body.
fn add_route_answers(operation: &mut Value, role: Role) {
    let role_name = json!(role);
    let role_name = role_name.as_str().unwrap_or_default().to_string();
    operation["x-required-role"] = json!(role);
    let about = operation["description"].as_str().unwrap_or_default();
    operation["description"] = json!(
        format!("Needs the {role_name} role (or a higher one). {about}")
            .trim_end()
            .to_string()
    );
    let has_params = operation["parameters"]
        .as_array()
        .is_some_and(|params| !params.is_empty());
    let has_path_params = operation["parameters"]
        .as_array()
        .is_some_and(|params| params.iter().any(|param| param["in"] == "path"));
    let has_body = operation.get("requestBody").is_some();
    let mut answers: Vec<(&str, Value)> = vec![
        (
            "401",
            error("No credentials, or not valid ones (with WWW-Authenticate: Bearer)"),
        ),
        (
            "403",
            error(&format!("The caller's role is below {role_name}")),
        ),
        (
            "429",
            error(
                "Too many requests for this key, or failed authentications from this address (with Retry-After)",
            ),
        ),
        (
            "503",
            error(
                "The store is unavailable (`store_unavailable`, with Retry-After) or no answer came within request_timeout_secs (`timeout`)",
            ),
        ),
    ];
    if has_params || has_body {
        answers.push((
            "400",
            error("A parameter or the body is not valid: `field` names it"),
        ));
    }
    if has_path_params {
        answers.push(("404", error("Nothing of that name or id")));
    }
    if has_body {
        answers.push(("413", error("The body is larger than max_body_bytes")));
        answers.push((
            "415",
            error("The body is not sent as Content-Type: application/json"),
        ));
    }
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for (status, answer) in answers {
        responses.entry(status).or_insert(answer);
    }
    sort_responses(responses);
}

fn sort_responses(responses: &mut Map<String, Value>) {
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The document's operations are exactly the table's plus `/health` and this document,
    /// each table route with its role.
    #[test]
    fn the_document_and_the_table_list_the_same_routes() {
        let doc = openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let method = method.to_ascii_uppercase();
                if let Some(route) = api_route(&method, path) {
                    assert_eq!(operation["x-required-role"], json!(route.role));
                }
                documented.insert((method, path.clone()));
            }
        }
        let mut expected: BTreeSet<(String, String)> = API_ROUTES
            .iter()
            .map(|route| (route.method.clone(), route.path.clone()))
            .collect();
        assert_eq!(expected.len(), API_ROUTES.len(), "a route is listed twice");
        expected.insert(("GET".into(), "/health".into()));
        expected.insert(("GET".into(), "/api/v1/openapi.json".into()));
        assert_eq!(documented, expected);
    }

    #[test]
    fn bodies_and_answers_have_schemas() {
        let doc = openapi();
        let operation = |method: &str, path: &str| doc["paths"][path][method].clone();
        let submit = operation("post", "/api/v1/jobs");
        let body = &submit["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/Submission", "{body}");
        for status in [
            "201", "207", "400", "401", "403", "413", "415", "429", "503",
        ] {
            assert!(
                submit["responses"][status].is_object(),
                "POST /jobs {status}"
            );
        }
        let job = &doc["components"]["schemas"]["JobRequest"];
        assert!(job["properties"]["spec"].is_object(), "{job}");
        let endpoint = &doc["components"]["schemas"]["EndpointConfig"];
        let variants = endpoint["oneOf"].as_array().unwrap();
        assert!(variants.len() >= 4, "{endpoint}");
        // Flattened structs merge at any depth: an S3 config carries its AWS credentials
        // as plain properties, not an allOf a generator would skip.
        let s3 = variants
            .iter()
            .find(|v| v["properties"]["type"]["enum"][0] == "s3")
            .unwrap_or_else(|| panic!("no s3 variant: {endpoint}"));
        for field in [
            "bucket",
            "access_key_id",
            "secret_access_key",
            "session_token",
        ] {
            assert!(s3["properties"][field].is_object(), "{field}: {s3}");
        }
        // A source's body: what `Source::parse` reads, unknown fields refused.
        let put_source = operation("put", "/api/v1/sources/{name}");
        let body = &put_source["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/SourcePut", "{body}");
        let source = &doc["components"]["schemas"]["SourcePut"];
        assert_eq!(source["additionalProperties"], false, "{source}");
        assert_eq!(source["required"], json!(["kind", "spec"]), "{source}");
        assert_eq!(source["properties"]["spec"]["type"], "object", "{source}");
        assert!(
            source["properties"]["kind"]["pattern"].is_string(),
            "{source}"
        );
        let metrics = operation("get", "/metrics");
        assert!(
            metrics["responses"]["200"]["content"][crate::server::metrics::CONTENT_TYPE]
                .is_object(),
            "{metrics}"
        );
        let stream = operation("get", "/api/v1/jobs/{id}/events");
        assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
        let id = &operation("get", "/api/v1/jobs/{id}")["parameters"][0]["schema"];
        assert_eq!(
            (id["type"].clone(), id["minimum"].clone()),
            (json!("integer"), json!(1))
        );
        let limit = &operation("get", "/api/v1/audit")["parameters"][0]["schema"];
        assert_eq!(limit["maximum"], 1000, "{limit}");
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    }
}
