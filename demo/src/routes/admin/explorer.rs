//! What the explorer page shows of a tenant: where its tables are and what they hold, and the
//! SQL its last requests sent.

use actix_web::web;

use super::find;
use crate::identity::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{slug}/tables")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(tenant_tables)),
    )
    .service(
        web::resource("/tenants/{slug}/statements")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(tenant_statements)),
    );
}

// ANCHOR: tenant_tables
/// Where each of a tenant's tables physically is (database, schema, table), how many of the
/// tenant's rows it holds, and the first five of them: what the explorer page shows.
#[utoipa::path(get, path = "/admin/tenants/{slug}/tables", tag = "admin",
    responses((status = 200, body = Vec<tenancy_core::TableLayout>),
              (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn tenant_tables(
    state: web::Data<AppState>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<Vec<tenancy_core::TableLayout>>, ApiError> {
    let t = find(&state, &slug).await?;
    Ok(web::Json(state.store.table_layout(&t, 5).await?))
}
// ANCHOR_END: tenant_tables

/// The SQL the last requests sent through the tenant's scope in this process, newest first
/// (statement text only; at most 20).
#[utoipa::path(get, path = "/admin/tenants/{slug}/statements", tag = "admin",
    responses((status = 200, body = Vec<crate::journal::Sent>),
              (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn tenant_statements(
    state: web::Data<AppState>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<Vec<crate::journal::Sent>>, ApiError> {
    let t = find(&state, &slug).await?;
    Ok(web::Json(state.journal.of(t.id)))
}
