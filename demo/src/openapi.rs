//! The OpenAPI document, generated from the handlers' annotations.

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
        admin::migrate, admin::create_user, admin::create_token, admin::put_member,
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
