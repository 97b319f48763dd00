//! Plans and usage: `GET /admin/plans` (what each plan allows), `PUT /admin/tenants/{slug}/plan`
//! (put a tenant on a plan; every process applies it within a second, through the catalog's
//! notice) and `GET /admin/tenants/{slug}/usage` (what the tenant uses against its plan).

use actix_web::web;
use serde::{Deserialize, Serialize};
use tenancy_core::usage::{CitusTenantStats, StatementUsage};
use tenancy_core::{Plan, Storage};

use super::find;
use super::tenants::TenantView;
use crate::identity::{Admin, Identity};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plans")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(list_plans)),
    )
    .service(
        web::resource("/tenants/{slug}/plan")
            .default_service(crate::problem::allow("PUT"))
            .route(web::put().to(put_plan)),
    )
    .service(
        web::resource("/tenants/{slug}/usage")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(tenant_usage)),
    );
}

/// The plans, and the one a tenant on none is on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlansView {
    /// The plan of a tenant the catalog puts on none (a new sign-up's).
    pub default: String,
    pub plans: Vec<Plan>,
}

/// Every plan and what it allows.
#[utoipa::path(get, path = "/admin/plans", tag = "admin",
    responses((status = 200, body = PlansView)), security(("admin" = [])))]
pub async fn list_plans(state: web::Data<AppState>, _: Admin) -> web::Json<PlansView> {
    web::Json(PlansView {
        default: state.plans.default_plan().name.clone(),
        plans: state.plans.iter().cloned().collect(),
    })
}

/// The plan to put a tenant on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPlan {
    /// One of the plans (`GET /admin/plans`); `null` puts the tenant on the default plan.
    #[schema(max_length = 63)]
    pub plan: Option<String>,
}

/// Put a tenant on a plan: every process holds its writes to the new plan within a second.
/// A tenant put on a plan below what it holds keeps its rows (and can read, change and delete
/// them), and can add none until it is under.
#[utoipa::path(put, path = "/admin/tenants/{slug}/plan", tag = "admin", request_body = PutPlan,
    responses((status = 200, body = TenantView), (status = 404, body = crate::problem::Problem),
              (status = 422, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn put_plan(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    slug: web::Path<String>,
    body: crate::body::Body<PutPlan>,
) -> Result<web::Json<TenantView>, ApiError> {
    let t = find(&state, &slug).await?;
    let plan = body.into_inner().plan;
    if let Some(name) = &plan {
        state.plans.get(name)?;
    }
    let t = state.store.set_plan(t.id, plan.as_deref()).await?;
    // This process at once; the others when the catalog's notice reaches them.
    identity.forget_tenant(t.slug.as_str()).await;
    Ok(web::Json(TenantView::of(t, &state.statics)))
}

/// One limited table: the tenant's rows and the plan's limit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowsUsed {
    pub table: String,
    pub used: u64,
    pub limit: u64,
}

/// What a tenant uses against its plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub slug: String,
    /// The plan it is on, and what that allows.
    pub plan: Plan,
    /// Each table its plan limits: its rows now, and the limit.
    pub rows: Vec<RowsUsed>,
    /// The statements its scopes sent **in this process** since it started (each process
    /// counts its own: sum over processes for the whole).
    pub statements: StatementUsage,
    /// The room its tables take, read now from the database (the same from every process).
    pub storage: Storage,
    /// Citus' own statistics of it (`citus_stat_tenants`), where the store runs on Citus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citus: Option<CitusTenantStats>,
}

/// What a tenant uses: rows against its plan's limits, storage, and the statements its
/// requests sent through this process. A suspended tenant's too.
#[utoipa::path(get, path = "/admin/tenants/{slug}/usage", tag = "admin",
    responses((status = 200, body = UsageView), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn tenant_usage(
    state: web::Data<AppState>,
    _: Admin,
    slug: web::Path<String>,
) -> Result<web::Json<UsageView>, ApiError> {
    let t = find(&state, &slug).await?;
    let usage = state.store.usage(&t).await?;
    let plan = state.plans.of(&t).clone();
    let rows = plan
        .limits
        .rows
        .iter()
        .map(|(table, &limit)| RowsUsed {
            table: table.clone(),
            used: usage
                .storage
                .tables
                .iter()
                .find(|s| &s.table == table)
                .map_or(0, |s| s.rows),
            limit,
        })
        .collect();
    state.storage.insert(t.id, usage.storage.clone()).await;
    Ok(web::Json(UsageView {
        slug: t.slug.to_string(),
        plan,
        rows,
        statements: usage.statements,
        storage: usage.storage,
        citus: usage.citus,
    }))
}
