//! Suspending a customer without deleting them: `POST /admin/tenants/{slug}/suspend` and
//! `/resume`. A suspended tenant keeps its data (an export still works) and gets no scope from
//! the store, so its routes answer 403 in every process within a second (the catalog's
//! notice); a static tenant, which the configuration declares, cannot be suspended.

use actix_web::web;

use super::find;
use super::tenants::TenantView;
use crate::identity::{Admin, Identity};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{slug}/suspend")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(suspend_tenant)),
    )
    .service(
        web::resource("/tenants/{slug}/resume")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(resume_tenant)),
    );
}

/// Suspend a dynamic tenant: its data stays, its routes answer 403 until it is resumed; 409
/// for a static tenant, 404 for one that is not ready (being created, moved or deleted).
#[utoipa::path(post, path = "/admin/tenants/{slug}/suspend", tag = "admin",
    responses((status = 200, body = TenantView), (status = 404, body = crate::problem::Problem),
              (status = 409, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn suspend_tenant(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<TenantView>, ApiError> {
    set_suspended(&state, &identity, &slug, true).await
}

/// Resume a suspended tenant (one not suspended is returned as it is).
#[utoipa::path(post, path = "/admin/tenants/{slug}/resume", tag = "admin",
    responses((status = 200, body = TenantView), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn resume_tenant(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<TenantView>, ApiError> {
    set_suspended(&state, &identity, &slug, false).await
}

async fn set_suspended(
    state: &AppState,
    identity: &Identity,
    slug: &str,
    suspended: bool,
) -> Result<web::Json<TenantView>, ApiError> {
    let t = find(state, slug).await?;
    let t = if suspended {
        state.statics.refuse(t.slug.as_str(), "suspended")?;
        state.store.suspend(t.id).await?
    } else {
        state.store.resume(t.id).await?
    };
    // This process at once; the others when the catalog's notice reaches them.
    identity.forget_tenant(t.slug.as_str()).await;
    Ok(web::Json(TenantView::of(t, &state.statics)))
}
