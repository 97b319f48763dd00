//! The OpenAPI document, generated from the handlers' annotations, and the routes that serve
//! it: `/openapi.json` and `/docs`, a page that lists the API.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, ops, tenant};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "tenancy demo", description = "One API, three ways to keep tenants apart. \
        Tenant routes are served under /api (tenant from the X-Tenant header or the subdomain) \
        and under /t/{tenant}/api. Errors are application/problem+json."),
    paths(
        tenant::list_projects, tenant::create_project, tenant::get_project,
        tenant::update_project, tenant::delete_project, tenant::list_tasks, tenant::create_task,
        tenant::get_task, tenant::update_task, tenant::delete_task, tenant::summary,
        admin::create_tenant, admin::list_tenants, admin::get_tenant, admin::delete_tenant,
        admin::migrate, admin::create_user, admin::create_token, admin::list_tokens,
        admin::revoke_token, admin::put_member,
        admin::delete_member, ops::healthz, ops::readyz, ops::metrics,
    ),
    modifiers(&Security)
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(crate::problem::method_not_allowed);
    cfg.service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/docs")
            .route(web::get().to(docs))
            .default_service(not_allowed()),
    );
}

/// This API, described.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// A page that lists the API from `/openapi.json`, with no network needed.
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../static/docs.html"))
}
