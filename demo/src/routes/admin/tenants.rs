//! The admin API's tenants: create, list, read and delete one, and migrate every tenant; a
//! tenant as the API shows it.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy_core::Page;
use tenancy_core::{MigrateOptions, MigrationReport, NewTenant, PlacementKind, Slug, Tenant};
use uuid::Uuid;

use super::{find, known_server};
use crate::identity::{Admin, Identity};
use crate::problem::ApiError;
use crate::routes::tenant::PageQuery;
use crate::settings::Purpose;
use crate::state::AppState;
use crate::statics::{Kind, StaticTenants};

/// A tenant as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// `provisioning`, `ready`, `deleting` or `moving`.
    pub state: String,
    /// Where its rows live: `{"kind": "shared"}`, `{"kind": "schema", "schema": ...}` or
    /// `{"kind": "database", "server": ..., "database": ...}`.
    #[schema(value_type = Object)]
    pub placement: serde_json::Value,
    pub schema_version: i32,
    pub created_at: DateTime<Utc>,
    /// `static` (declared in the configuration, with a purpose) or `dynamic` (a customer's).
    pub kind: Kind,
    /// A static tenant's purpose (`signup` or `none`); absent for a dynamic tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// When it was suspended, if it is (its routes answer 403 until it is resumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<DateTime<Utc>>,
    /// The plan it is on; absent: the default plan (`GET /admin/plans`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 63)]
    pub plan: Option<String>,
}

impl TenantView {
    /// `t` as the API shows it, static or dynamic as the configuration says.
    pub fn of(t: Tenant, statics: &StaticTenants) -> Self {
        let purpose = statics.purpose(t.slug.as_str());
        TenantView {
            kind: statics.kind(t.slug.as_str()),
            purpose,
            id: t.id.as_uuid(),
            slug: t.slug.to_string(),
            name: t.name,
            state: t.state.as_str().to_owned(),
            placement: serde_json::to_value(&t.placement).unwrap_or_default(),
            schema_version: t.schema_version,
            created_at: t.created_at,
            suspended_at: t.suspended_at,
            plan: t.plan,
        }
    }
}

/// What creating a tenant needs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(schema_with = crate::rules::schema::slug)]
    pub slug: String,
    #[schema(schema_with = crate::rules::schema::tenant_name)]
    pub name: String,
    /// separate-db only: the server to place it on.
    pub server: Option<String>,
    /// Where its rows go: `shared`, `schema` or `database`, the names a tenant's
    /// `placement.kind` reads (default: the store's own; for hybrid, the configured
    /// `default_placement`). A store of one strategy refuses a placement not its own.
    pub placement: Option<PlacementKind>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MigrateQuery {
    /// Tenants migrated at once: 1 to 64 ([`crate::rules::MAX_MIGRATE_CONCURRENCY`]),
    /// default 4.
    #[param(minimum = 1, maximum = 64)]
    pub concurrency: Option<usize>,
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants")
            .default_service(crate::problem::allow("POST, GET"))
            .route(web::post().to(create_tenant))
            .route(web::get().to(list_tenants)),
    )
    .service(
        web::resource("/tenants/{slug}")
            .default_service(crate::problem::allow("GET, DELETE"))
            .route(web::get().to(get_tenant))
            .route(web::delete().to(delete_tenant)),
    )
    .service(
        web::resource("/migrate")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(migrate)),
    );
}

pub(crate) fn name_ok(name: &str) -> Result<String, ApiError> {
    Ok(crate::rules::trimmed(
        crate::rules::TENANT_NAME,
        "name",
        name,
    )?)
}

/// Create a tenant (201), or 409 when the slug is taken.
#[utoipa::path(post, path = "/admin/tenants", tag = "admin", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 409, body = crate::problem::Problem),
              (status = 422, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn create_tenant(
    state: web::Data<AppState>,
    _: Admin,
    body: crate::body::Body<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let slug = Slug::parse(&body.slug)?;
    state.statics.refuse(slug.as_str(), "created")?;
    let name = name_ok(&body.name)?;
    // Exclusive: of two requests for one slug, even at once, one gets 201 and the other 409.
    let mut new = NewTenant::new(slug, name).exclusive();
    known_server(&state, body.server.as_deref())?;
    new.server = body.server;
    new.placement = body.placement;
    let t = state.store.create_tenant(new).await?;
    Ok(HttpResponse::Created().json(TenantView::of(t, &state.statics)))
}

/// List tenants.
#[utoipa::path(get, path = "/admin/tenants", tag = "admin", params(PageQuery),
    responses((status = 200, body = inline(Page<TenantView>))), security(("admin" = [])))]
pub async fn list_tenants(
    state: web::Data<AppState>,
    _: Admin,
    q: web::Query<PageQuery>,
) -> Result<web::Json<Page<TenantView>>, ApiError> {
    let page = state.store.list_tenants(q.into_inner().into()).await?;
    Ok(web::Json(Page {
        items: page
            .items
            .into_iter()
            .map(|t| TenantView::of(t, &state.statics))
            .collect(),
        next: page.next,
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/admin/tenants/{slug}", tag = "admin",
    responses((status = 200, body = TenantView), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn get_tenant(
    state: web::Data<AppState>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<TenantView>, ApiError> {
    Ok(web::Json(TenantView::of(
        find(&state, &slug).await?,
        &state.statics,
    )))
}

/// Delete a dynamic tenant and all its data; 409 for a static one.
#[utoipa::path(delete, path = "/admin/tenants/{slug}", tag = "admin",
    responses((status = 204), (status = 404, body = crate::problem::Problem),
              (status = 409, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = find(&state, &slug).await?;
    state.statics.refuse(t.slug.as_str(), "deleted")?;
    identity.forget_tenant(t.slug.as_str()).await;
    state.store.delete_tenant(t.id).await?;
    identity.forget_tenant(t.slug.as_str()).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Migrate every tenant; the report has a line per tenant that had work.
#[utoipa::path(post, path = "/admin/migrate", tag = "admin", params(MigrateQuery),
    responses((status = 200, description = "the per-tenant report", body = Object)),
    security(("admin" = [])))]
pub async fn migrate(
    state: web::Data<AppState>,
    _: Admin,
    q: web::Query<MigrateQuery>,
) -> Result<web::Json<MigrationReport>, ApiError> {
    let concurrency = q.concurrency.unwrap_or(4);
    if !(1..=crate::rules::MAX_MIGRATE_CONCURRENCY).contains(&concurrency) {
        return Err(ApiError::Unprocessable(format!(
            "invalid concurrency: must be 1 to {}",
            crate::rules::MAX_MIGRATE_CONCURRENCY
        )));
    }
    let options = MigrateOptions { concurrency };
    Ok(web::Json(state.store.migrate_all(options).await?))
}
