//! Operations: liveness, readiness and metrics. (The OpenAPI document and its page are served
//! by [`crate::openapi`].)

use actix_web::{HttpResponse, web};
use tenancy_core::sea_orm::ConnectionTrait;

use crate::problem::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(crate::problem::allow("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .default_service(crate::problem::allow("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(crate::problem::allow("GET")),
    );
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String),
              (status = 503, body = crate::problem::Problem)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .control
        .execute_unprepared("SELECT 1")
        .await
        .map_err(|e| ApiError::from(tenancy_core::Error::from(e)))
        .map_err(|e| match e {
            ApiError::Internal(_) => ApiError::Unavailable,
            other => other,
        })?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("ready"))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.control.get_postgres_connection_pool();
    state
        .metrics
        .control_connections
        .set(i64::from(pool.size()));
    let store = state.store.connections();
    let gauge = &state.metrics.store_connections;
    gauge
        .with_label_values(&["open"])
        .set(i64::from(store.open));
    gauge
        .with_label_values(&["idle"])
        .set(i64::from(store.idle));
    tenant_metrics(&state).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// The per-tenant series: the busiest tenants of this process by slug (looked up in the
/// catalog, one query for all of them), the rest as `other`. A tenant deleted since it was
/// counted is counted under `other`.
async fn tenant_metrics(state: &AppState) {
    let (busiest, mut other) = tenancy_core::usage::busiest(state.metrics_tenants);
    let mut named = Vec::with_capacity(busiest.len());
    for (id, usage) in busiest {
        match state.store.tenant(id).await {
            Ok(t) => named.push((t.slug.to_string(), usage)),
            Err(_) => {
                other.statements += usage.statements;
                other.micros += usage.micros;
                other.rows += usage.rows;
            }
        }
    }
    state.metrics.tenants(&named, other);
}
