//! The admin API's accounts: users, their tokens (issued, listed, revoked), and their
//! memberships of tenants.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use tenancy_core::Tenant;
use uuid::Uuid;

use super::find;
use crate::accounts::{self, IssuedToken, NewUser, Role, TokenInfo, User};
use crate::identity::{Admin, Identity};
use crate::problem::ApiError;
use crate::rules::MAX_EXPIRY_SECS;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub role: Role,
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{slug}/members/{user_id}")
            .default_service(crate::problem::allow("PUT, DELETE"))
            .route(web::put().to(put_member))
            .route(web::delete().to(delete_member)),
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
