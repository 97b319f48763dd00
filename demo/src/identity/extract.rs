//! What a handler is given: the [`authorize`] middleware that runs the checks in their fixed
//! order in front of every tenant route, the [`Member`] it leaves in the request, and the
//! [`Admin`] extractor.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use subtle::ConstantTimeEq;
use tenancy_core::{Error, Tenant};
use uuid::Uuid;

use super::cache::Identity;
use super::hashing::HashedToken;
use crate::accounts::{Role, token_hash};
use crate::problem::ApiError;

/// The token of `Authorization: Bearer <token>`, if the request carries one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn identity(req: &HttpRequest) -> Result<web::Data<Identity>, ApiError> {
    crate::state::app_data(req)
}

/// A member of the tenant the request names, established by [`authorize`] before the
/// handler's other extractors (a JSON body, a query) run: so a request without a valid token
/// gets 401 and a non-member 404, whatever else is wrong with it.
#[derive(Debug, Clone)]
pub struct Member {
    pub tenant: Tenant,
    pub user: Uuid,
    pub role: Role,
}

// ANCHOR: member
async fn member(req: &HttpRequest) -> Result<Member, ApiError> {
    let identity = identity(req)?;
    let token = bearer(req).ok_or(ApiError::Unauthorized("a bearer token is required"))?;
    let token = HashedToken::of(token);
    let user = identity
        .user(&token)
        .await?
        .ok_or(ApiError::Unauthorized("the bearer token is not valid"))?;
    let not_found = || ApiError::NotFound("tenant not found".into());
    let slug = identity.tenant_slug(req).ok_or_else(not_found)?;
    tracing::Span::current().record("tenant", slug.as_str());
    let tenant = identity.tenant(&slug).await.map_err(|e| match e {
        Error::TenantNotFound => not_found(),
        other => other.into(),
    })?;
    let role = identity.role(user, &tenant).await?.ok_or_else(not_found)?;
    // Only a member's requests count against the tenant's rate: nobody else can use it up.
    identity
        .limits
        .admit(tenant.id.as_uuid(), &token)
        .await
        .map_err(ApiError::TooMany)?;
    Ok(Member { tenant, user, role })
}

/// Middleware on the tenant routes: authenticates, resolves the tenant, checks the
/// membership, and hands the [`Member`] to the handler.
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let member = member(req.request()).await?;
    req.extensions_mut().insert(member);
    next.call(req).await
}
// ANCHOR_END: member

impl Member {
    /// The member [`authorize`] established for this request.
    pub fn of(req: &HttpRequest) -> Result<Member, ApiError> {
        req.extensions().get::<Member>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "a tenant route without the authorize middleware"
            ))
        })
    }
}

impl FromRequest for Member {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Member::of(req))
    }
}

// ANCHOR: admin
/// A caller holding the admin token.
#[derive(Debug)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let identity = identity(&req)?;
            let token =
                bearer(&req).ok_or(ApiError::Unauthorized("the admin token is required"))?;
            // In constant time: how long the comparison takes says nothing about the token.
            if !bool::from(token_hash(token).ct_eq(&identity.admin_hash)) {
                return Err(ApiError::Unauthorized("the admin token is not valid"));
            }
            Ok(Admin)
        })
    }
}
// ANCHOR_END: admin
