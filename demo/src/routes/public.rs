//! Routes of static tenants, served without a token: the sign-up of a tenant whose purpose is
//! `signup` (`www` by default), at `/t/{tenant}/signup`, or at `/signup` with the tenant from
//! the header or the subdomain (`www.localhost:8080/signup`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tenancy_core::sea_orm::TransactionTrait;
use tenancy_core::{NewTenant, Slug};

use crate::accounts::{self, IssuedToken, NewUser, Role, User};
use crate::identity::Identity;
use crate::problem::ApiError;
use crate::routes::admin::tenants::{TenantView, name_ok};
use crate::settings::Purpose;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/t/{tenant}/signup", "/signup"] {
        cfg.service(
            web::resource(path)
                .default_service(crate::problem::allow("POST"))
                .route(web::post().to(signup)),
        );
    }
}

/// What signing up needs: the new tenant and its owner.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// The new tenant's slug.
    #[schema(schema_with = crate::rules::schema::slug)]
    pub slug: String,
    /// The new tenant's name.
    #[schema(schema_with = crate::rules::schema::tenant_name)]
    pub name: String,
    /// The owner's email (a new user).
    #[schema(schema_with = crate::rules::schema::email)]
    pub email: String,
    /// The owner's name.
    #[schema(schema_with = crate::rules::schema::user_name)]
    pub owner: String,
}

/// What a sign-up created: a dynamic tenant, its owner, and the owner's token (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedUp {
    pub tenant: TenantView,
    pub user: User,
    pub token: IssuedToken,
}

// ANCHOR: signup
/// Sign up: creates a dynamic tenant, a user who owns it, and a token for that user (201).
/// Served only by a static tenant whose purpose is `signup` (404 elsewhere), without a token.
/// 409 when the slug or the email is taken; nothing is kept of a sign-up that fails.
#[utoipa::path(post, path = "/t/{tenant}/signup", tag = "public", request_body = SignUp,
    responses((status = 201, body = SignedUp), (status = 404, body = crate::problem::Problem),
              (status = 409, body = crate::problem::Problem),
              (status = 422, body = crate::problem::Problem)))]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    identity: web::Data<Identity>,
    body: crate::body::Body<SignUp>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound("no sign-up here".into());
    let site = identity.tenant_slug(&req).ok_or_else(not_found)?;
    if state.statics.purpose(&site) != Some(Purpose::Signup) {
        return Err(not_found());
    }
    // The site must exist (created at start) and is rate-limited as a tenant.
    let site = identity.tenant(&site).await.map_err(|_| not_found())?;
    identity
        .admit_tenant(site.id.as_uuid())
        .await
        .map_err(ApiError::TooMany)?;
    let body = body.into_inner();
    let slug = Slug::parse(&body.slug)?;
    state.statics.refuse(slug.as_str(), "created")?;
    let name = name_ok(&body.name)?;
    // The owner first, uncommitted: a refused email or name writes nothing.
    let txn = state
        .control
        .begin()
        .await
        .map_err(tenancy_core::Error::from)?;
    let user = accounts::create_user(
        &txn,
        NewUser {
            email: body.email,
            name: body.owner,
        },
    )
    .await?;
    let tenant = state
        .store
        .create_tenant(NewTenant::new(slug, name).exclusive())
        .await?;
    let owned = async {
        accounts::set_membership(&txn, tenant.id, user.id, Role::Owner).await?;
        let token = accounts::create_token(&txn, user.id, None).await?;
        txn.commit().await?;
        Ok::<_, tenancy_core::Error>(token)
    }
    .await;
    match owned {
        Ok(token) => Ok(HttpResponse::Created().json(SignedUp {
            tenant: TenantView::of(tenant, &state.statics),
            user,
            token,
        })),
        Err(e) => {
            // The owner was not kept: neither is the tenant.
            if let Err(undo) = state.store.delete_tenant(tenant.id).await {
                tracing::error!(tenant = %tenant.slug, error = %undo, "a failed sign-up left its tenant");
            }
            Err(e.into())
        }
    }
}
// ANCHOR_END: signup
