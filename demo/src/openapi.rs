//! The OpenAPI document, generated from the handlers' annotations, and the pages that serve
//! it: `/openapi.json`; `/docs/`, Swagger UI (its files are inside the binary: no network at
//! build or run time), where a request can be tried with a token; and `/explorer`, which
//! shows the tenants, where each one's tables are, and the SQL its last requests sent.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, ops, public, tenant};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "tenancy demo", description = "One API, three ways to keep tenants apart. \
        Tenant routes are served under /api (tenant from the X-Tenant header or the subdomain) \
        and under /t/{tenant}/api. Errors are application/problem+json."),
    paths(
        tenant::list_projects, tenant::create_project, tenant::get_project,
        tenant::update_project, tenant::delete_project, tenant::list_tasks, tenant::create_task,
        tenant::get_task, tenant::update_task, tenant::delete_task, tenant::summary,
        admin::tenants::create_tenant, admin::tenants::list_tenants, admin::tenants::get_tenant,
        admin::tenants::delete_tenant,
        admin::explorer::tenant_tables, admin::explorer::tenant_statements,
        admin::moves::move_tenant, admin::moves::get_job, admin::suspension::suspend_tenant,
        admin::suspension::resume_tenant, admin::plans::list_plans, admin::plans::put_plan,
        admin::plans::tenant_usage,
        admin::tenants::migrate, admin::users::create_user, admin::users::create_token,
        admin::users::list_tokens, admin::users::revoke_token, admin::users::put_member,
        admin::users::delete_member, public::signup, ops::healthz, ops::readyz, ops::metrics,
    ),
    modifiers(&Security, &Conventions)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for name in ["bearer", "admin"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

// ANCHOR: conventions
/// What every route of the app does alike, written into each operation so that the document
/// says what the app answers (schemathesis checks every response against it):
/// - each `{name}` of a path is a string path parameter;
/// - errors are `application/problem+json` (the handlers' annotations say `Problem`);
/// - a route behind a token answers 401 without a valid one; for a tenant route, 404 when
///   the tenant is not the token's, and 429 over a rate limit;
/// - a body is 400 when it is not JSON, 413 when too large, 422 when a value is refused;
///   a query is 422 when a value is refused;
/// - a tenant read takes an optional `X-Tenancy-Lsn` header (400 when it is not a position);
/// - any route that reaches the database answers 503 while it is unavailable.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
        let problem = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let names: Vec<String> = path
                .split('{')
                .skip(1)
                .filter_map(|s| s.split_once('}').map(|(n, _)| n.to_owned()))
                .collect();
            let tenant_route = path.starts_with("/api/");
            // A tenant read takes back a write's position (see `crate::scoped::LSN_HEADER`).
            if tenant_route && let Some(get) = &mut item.get {
                get.parameters.get_or_insert_with(Vec::new).push(
                    ParameterBuilder::new()
                        .name("X-Tenancy-Lsn")
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(
                            "The X-Tenancy-Lsn a write answered: the read then sees that write \
                             (with a read replica); empty, as absent, asks nothing",
                        ))
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String)
                                .pattern(Some("^([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})?$")),
                        ))
                        .build(),
                );
            }
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let params = op.parameters.get_or_insert_with(Vec::new);
                for name in &names {
                    if !params
                        .iter()
                        .any(|p| &p.name == name && p.parameter_in == ParameterIn::Path)
                    {
                        params.push(
                            ParameterBuilder::new()
                                .name(name)
                                .parameter_in(ParameterIn::Path)
                                .required(Required::True)
                                .schema(Some(
                                    utoipa::openapi::ObjectBuilder::new()
                                        .schema_type(utoipa::openapi::schema::Type::String),
                                ))
                                .build(),
                        );
                    }
                }
                let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                let has_header = params.iter().any(|p| p.parameter_in == ParameterIn::Header);
                let responses = &mut op.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let (true, utoipa::openapi::RefOr::T(r)) =
                        (status.starts_with('4') || status.starts_with('5'), response)
                        && let Some(json) = r.content.shift_remove("application/json")
                    {
                        r.content.insert("application/problem+json".into(), json);
                    }
                }
                let mut add = |status: &str, what: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(what).into());
                };
                if op.security.is_some() {
                    add("401", "no bearer token, or one that is not valid");
                }
                if tenant_route {
                    add("403", "the tenant is suspended");
                    add("404", "not found, or not yours (never told apart)");
                    add("429", "over the tenant's or the token's request rate");
                }
                if op.request_body.is_some() {
                    add("400", "the body is not JSON, or not sent as JSON");
                    add("413", "the body is too large");
                    add("422", "a value is refused; nothing was written");
                }
                if has_query {
                    add("422", "a query value is refused");
                }
                if has_header {
                    add("400", "X-Tenancy-Lsn is not a WAL position");
                }
                if path.ends_with("/signup") {
                    add("429", "over the serving tenant's request rate");
                }
                if path != "/healthz" && path != "/openapi.json" {
                    add(
                        "503",
                        "the database is unavailable, or the statement took too long",
                    );
                }
            }
        }
    }
}
// ANCHOR_END: conventions

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi))
            .default_service(crate::problem::allow("GET")),
    )
    .service(
        web::resource("/docs")
            .route(web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }))
            .default_service(crate::problem::allow("GET")),
    )
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
            .config(utoipa_swagger_ui::Config::from("/openapi.json")),
    )
    .service(
        web::resource("/explorer")
            .route(web::get().to(explorer))
            .default_service(crate::problem::allow("GET")),
    );
}

/// This API, described, for this deployment (see [`this_deployment`]).
pub async fn openapi(state: web::Data<crate::state::AppState>) -> HttpResponse {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    this_deployment(&mut doc, &state);
    HttpResponse::Ok().json(doc)
}

// ANCHOR: this_deployment
/// What only the running app knows, written into the document so that a value it allows is
/// one the app accepts: the placements this strategy serves (every one for hybrid, its own
/// for the others) for `placement` and a move's `to`, the configured plans for a tenant's
/// `plan`, and, where tenants are placed on
/// servers (separate-db, hybrid), the configured server names for `server`. Other strategies
/// ignore `server`, so any string stays allowed there.
pub fn this_deployment(doc: &mut serde_json::Value, state: &crate::state::AppState) {
    use serde_json::{Value, json};
    let kinds: Vec<Value> = match state.strategy.placement_kind() {
        Some(own) => vec![json!(own.as_str())],
        None => tenancy_core::PlacementKind::ALL
            .iter()
            .map(|k| json!(k.as_str()))
            .collect(),
    };
    let schemas = &mut doc["components"]["schemas"];
    for (schema, field) in [("CreateTenant", "placement"), ("MoveToPlacement", "to")] {
        let nullable = field == "placement";
        let mut allowed = kinds.clone();
        if nullable {
            allowed.push(Value::Null);
        }
        schemas[schema]["properties"][field] = json!({
            "type": if nullable { json!(["string", "null"]) } else { json!("string") },
            "enum": allowed,
            "description": "shared, schema or database: those this app serves",
        });
    }
    // A plan is one of the configured plans, or null for the default.
    let mut plans: Vec<Value> = state.plans.iter().map(|p| json!(p.name)).collect();
    plans.push(Value::Null);
    schemas["PutPlan"]["properties"]["plan"] = json!({
        "type": ["string", "null"],
        "enum": plans,
        "description": "one of the plans this app configures (GET /admin/plans); null: the default plan",
    });
    if let Some(servers) = state.placement_servers() {
        for schema in ["CreateTenant", "MoveToPlacement"] {
            let mut allowed: Vec<Value> = servers.iter().map(|s| json!(s)).collect();
            allowed.push(Value::Null);
            schemas[schema]["properties"]["server"] = json!({
                "type": ["string", "null"],
                "enum": allowed,
                "description": "the server to place the tenant's database on",
            });
        }
    }
}
// ANCHOR_END: this_deployment

/// The tenant explorer: one page, its script inline, nothing loaded from elsewhere.
pub async fn explorer() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../static/explorer.html"))
}
