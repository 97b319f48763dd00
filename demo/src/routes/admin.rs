//! The admin API under `/admin`: tenants, migrations, users, tokens, memberships. Every route
//! needs the admin token.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy_core::Page;
use tenancy_core::{MigrateOptions, MigrationReport, NewTenant, PlacementKind, Slug, Tenant};
use uuid::Uuid;

use crate::accounts::{self, IssuedToken, NewUser, Role, TokenInfo, User};
use crate::identity::{Admin, Identity};
use crate::problem::ApiError;
use crate::routes::tenant::PageQuery;
use crate::rules::MAX_EXPIRY_SECS;
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub role: Role,
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

pub fn routes(cfg: &mut web::ServiceConfig) {
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
        web::resource("/tenants/{slug}/tables")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(tenant_tables)),
    )
    .service(
        web::resource("/tenants/{slug}/statements")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(tenant_statements)),
    )
    .service(
        web::resource("/tenants/{slug}/move")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(move_tenant)),
    )
    .service(
        web::resource("/jobs/{id}")
            .default_service(crate::problem::allow("GET"))
            .route(web::get().to(get_job)),
    )
    .service(
        web::resource("/tenants/{slug}/members/{user_id}")
            .default_service(crate::problem::allow("PUT, DELETE"))
            .route(web::put().to(put_member))
            .route(web::delete().to(delete_member)),
    )
    .service(
        web::resource("/migrate")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(migrate)),
    )
    .service(
        web::resource("/users")
            .default_service(crate::problem::allow("POST"))
            .route(web::post().to(create_user)),
    )
    .service(
        web::resource("/users/{id}/tokens")
            .default_service(crate::problem::allow("POST, GET"))
            .route(web::post().to(create_token))
            .route(web::get().to(list_tokens)),
    )
    .service(
        web::resource("/tokens/{id}")
            .default_service(crate::problem::allow("DELETE"))
            .route(web::delete().to(revoke_token)),
    );
}

pub(crate) fn name_ok(name: &str) -> Result<String, ApiError> {
    Ok(crate::rules::trimmed(
        crate::rules::TENANT_NAME,
        "name",
        name,
    )?)
}

/// Where tenants are placed on servers (separate-db, hybrid), a server must be one of the
/// configured ones, whatever the placement asked for (the document lists them); the other
/// strategies ignore `server`.
fn known_server(state: &AppState, server: Option<&str>) -> Result<(), ApiError> {
    match (server, state.placement_servers()) {
        (Some(s), Some(known)) if !known.iter().any(|k| k == s) => Err(ApiError::Unprocessable(
            format!("invalid server: {s:?} is not one of {}", known.join(", ")),
        )),
        _ => Ok(()),
    }
}

async fn find(state: &AppState, slug: &str) -> Result<Tenant, ApiError> {
    let slug = Slug::parse(slug).map_err(|_| ApiError::NotFound("tenant not found".into()))?;
    Ok(state.store.tenant_by_slug(&slug).await?)
}

/// A user id from the path; one that is not a UUID names nobody.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("user not found".into()))
}

/// The tenant and the user a `/tenants/{slug}/members/{user_id}` path names.
async fn membership(
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<(Tenant, Uuid), ApiError> {
    let (slug, user) = path.into_inner();
    Ok((find(state, &slug).await?, user_id(&user)?))
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
            Ok(job) if job.step == "done" => {}
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
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("job not found".into()))?;
    Ok(web::Json(state.store.job(id).await?))
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

/// Create a user.
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn create_user(
    state: web::Data<AppState>,
    _: Admin,
    body: crate::body::Body<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts::create_user(&state.control, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(user))
}

/// What issuing a token may say; the body may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The token stops working this many seconds from now (1 to 10 years' worth); left out,
    /// it works until revoked.
    #[schema(schema_with = crate::rules::schema::expires_in_secs, required = false)]
    #[serde(default, deserialize_with = "crate::rules::whole_seconds")]
    pub expires_in_secs: Option<u64>,
}

/// Issue a token for a user; it is shown once.
#[utoipa::path(post, path = "/admin/users/{id}/tokens", tag = "admin",
    request_body(content = Option<NewToken>, description = "optional"),
    responses((status = 201, body = IssuedToken), (status = 404, body = crate::problem::Problem),
              (status = 422, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn create_token(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional: none, or JSON `null`, is no expiry.
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?
    };
    let new: NewToken = if value.is_null() {
        NewToken::default()
    } else {
        crate::body::read(value)?
    };
    let expires_at = match new.expires_in_secs {
        None => None,
        Some(secs) if (1..=MAX_EXPIRY_SECS).contains(&secs) => {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            Some(Utc::now() + chrono::Duration::seconds(secs))
        }
        Some(_) => {
            return Err(ApiError::Unprocessable(format!(
                "invalid expires_in_secs: must be 1 to {MAX_EXPIRY_SECS}"
            )));
        }
    };
    let token = accounts::create_token(&state.control, user_id(&id)?, expires_at).await?;
    Ok(HttpResponse::Created().json(token))
}

/// A user's tokens: ids and dates, never the tokens (they are stored hashed).
#[utoipa::path(get, path = "/admin/users/{id}/tokens", tag = "admin",
    responses((status = 200, body = Vec<TokenInfo>), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<web::Json<Vec<TokenInfo>>, ApiError> {
    Ok(web::Json(
        accounts::list_tokens(&state.control, user_id(&id)?).await?,
    ))
}

/// Revoke a token: every process of the app stops accepting it at once.
#[utoipa::path(delete, path = "/admin/tokens/{id}", tag = "admin",
    responses((status = 204), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("token not found".into()))?;
    accounts::revoke_token(&state.control, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Grant a user a role in a tenant.
#[utoipa::path(put, path = "/admin/tenants/{slug}/members/{user_id}", tag = "admin",
    request_body = Membership, responses((status = 204), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn put_member(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    path: web::Path<(String, String)>,
    body: crate::body::Body<Membership>,
) -> Result<HttpResponse, ApiError> {
    let (t, user) = membership(&state, path).await?;
    accounts::set_membership(&state.control, t.id, user, body.role).await?;
    identity.forget_roles();
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke a user's membership.
#[utoipa::path(delete, path = "/admin/tenants/{slug}/members/{user_id}", tag = "admin",
    responses((status = 204), (status = 404, body = crate::problem::Problem)),
    security(("admin" = [])))]
pub async fn delete_member(
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    _: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (t, user) = membership(&state, path).await?;
    accounts::remove_membership(&state.control, t.id, user).await?;
    identity.forget_roles();
    Ok(HttpResponse::NoContent().finish())
}
