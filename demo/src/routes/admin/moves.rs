//! The admin API's moves: a live tenant to another placement (hybrid) or to another worker of
//! a Citus cluster, one at a time per process, driven in the background; and a job's
//! progress.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use tenancy_core::{JobId, MoveStep, PlacementKind};

use super::{find, known_server};
use crate::identity::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

/// Where to move a tenant: to another placement (hybrid only), or to another worker of a
/// Citus cluster (shared-schema or separate-schema on a coordinator).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MoveTenant {
    /// To another placement.
    Placement(MoveToPlacement),
    /// To another worker of a Citus cluster.
    Node(MoveToNode),
}

/// A move to another placement (hybrid only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveToPlacement {
    /// `shared`, `schema` or `database`, the names a tenant's `placement.kind` reads.
    pub to: PlacementKind,
    /// separate-db: the server to move it to (a database tenant may move between servers).
    pub server: Option<String>,
}

/// A move to another worker of a Citus cluster.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveToNode {
    /// The worker, `host:port` as the coordinator lists it (`pg_dist_node`).
    pub node: String,
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{slug}/move")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(move_tenant)),
    )
    .service(
        web::resource("/jobs/{id}")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(get_job)),
    );
}

// ANCHOR: move_tenant
/// Move a live tenant to another placement (`to`, hybrid only) or to another worker of a
/// Citus cluster (`node`): 202 with the job, whose progress `GET /admin/jobs/{id}` reports.
/// Its reads go on throughout; during a placement move its writes get 503 with `Retry-After`
/// for the short window of the copy, during a node move they wait for Citus' switch.
#[utoipa::path(post, path = "/admin/tenants/{slug}/move", tag = "admin", request_body = MoveTenant,
    responses((status = 202, body = tenancy_core::Job), (status = 404, body = crate::problem::Problem),
              (status = 409, body = crate::problem::Problem),
              (status = 422, body = crate::problem::Problem),
              (status = 429, body = crate::problem::Problem,
               description = "a move is already running in this process; retry after Retry-After")),
    security(("admin" = [])))]
pub async fn move_tenant(
    state: web::Data<AppState>,
    _: Admin,
    slug: web::Path<String>,
    body: crate::body::Body<MoveTenant>,
) -> Result<HttpResponse, ApiError> {
    let t = find(&state, &slug).await?;
    state.statics.refuse(t.slug.as_str(), "moved")?;
    let body = match body.into_inner() {
        MoveTenant::Placement(body) => body,
        MoveTenant::Node(MoveToNode { node }) => return move_to_node(state, t, node).await,
    };
    let to = body.to;
    known_server(&state, body.server.as_deref())?;
    let Some(mover) = state.mover.clone() else {
        return Err(ApiError::Conflict(format!(
            "this app serves {}, which moves no tenant: run it with --strategy hybrid",
            state.strategy
        )));
    };
    let permit = may_move(&state, &t)?;
    // Already there: a conflict with the tenant's state, not a bad value.
    let job = mover
        .start(t.id, to, body.server)
        .await
        .map_err(|e| match e {
            tenancy_core::Error::Invalid {
                field: "to",
                reason,
            } => ApiError::Conflict(reason),
            e => e.into(),
        })?;
    let id = t.id;
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = mover.run(id, &|_| {}).await {
            tracing::warn!(tenant = %id, error = %e.chain(), "a move failed and was rolled back");
        }
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/admin/jobs/{}", job.id)))
        .json(job))
}
// ANCHOR_END: move_tenant

/// Whether `t` may start a move now: it must be ready, and this process runs one move at a
/// time (a move holds catalog connections for its copy, and moves without bound would starve
/// every other request of them). The permit is held until the move ends.
fn may_move(
    state: &AppState,
    t: &tenancy_core::Tenant,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if t.state != tenancy_core::TenantState::Ready {
        return Err(ApiError::Conflict(format!(
            "tenant {} is {}, not ready",
            t.slug, t.state
        )));
    }
    state
        .moves
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooMany(1))
}

/// A move to another worker of a Citus cluster: recorded, then driven in the background.
async fn move_to_node(
    state: web::Data<AppState>,
    t: tenancy_core::Tenant,
    node: String,
) -> Result<HttpResponse, ApiError> {
    let permit = may_move(&state, &t)?;
    let job = state
        .store
        .start_node_move(&t, &node)
        .await
        .map_err(|e| match e {
            // Already there: a conflict with the tenant's state, not a bad value.
            tenancy_core::Error::Invalid {
                field: "node",
                reason,
            } if reason.contains("already") => ApiError::Conflict(reason),
            tenancy_core::Error::Unsupported(reason) => ApiError::Conflict(reason),
            e => e.into(),
        })?;
    let store = state.store.clone();
    let id = t.id;
    tokio::spawn(async move {
        let _permit = permit;
        match store.run_node_move(id).await {
            Ok(job) if job.step == MoveStep::Done => {}
            Ok(job) => tracing::warn!(tenant = %id, error = ?job.error, "a node move failed"),
            Err(e) => tracing::warn!(tenant = %id, error = %e, "a node move failed"),
        }
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/admin/jobs/{}", job.id)))
        .json(job))
}

/// A job's progress.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "admin",
    responses((status = 200, body = tenancy_core::Job), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn get_job(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<web::Json<tenancy_core::Job>, ApiError> {
    let id: JobId = id
        .parse()
        .map_err(|_| ApiError::NotFound("job not found".into()))?;
    Ok(web::Json(state.store.job(id).await?))
}
