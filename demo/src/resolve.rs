//! Who is asking, and for which tenant: the extractors in front of every route.
//!
//! A tenant route needs the bearer token of a member of the tenant the request names. The
//! order of checks is fixed: the token first (401 without a valid one), then the tenant (404
//! when unknown), then the membership (404 as well, so a token cannot probe which tenants
//! exist).

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use tenancy_core::Tenant;
use uuid::Uuid;

use crate::accounts::{self, Role};
use crate::problem::ApiError;
use crate::settings::ResolveBy;
use crate::state::AppState;

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no app state")))
}

/// The tenant slug the request names, trying each configured source in order.
pub fn tenant_slug(req: &HttpRequest, state: &AppState) -> Option<String> {
    for by in &state.resolution.order {
        let found = match by {
            ResolveBy::Path => req.match_info().get("tenant").map(str::to_owned),
            ResolveBy::Header => req
                .headers()
                .get(state.resolution.header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_owned()),
            ResolveBy::Subdomain => {
                let host = req.connection_info().host().to_owned();
                let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
                host.strip_suffix(&format!(".{}", state.resolution.base_domain))
                    .filter(|s| !s.is_empty() && !s.contains('.'))
                    .map(str::to_owned)
            }
        };
        if let Some(slug) = found.filter(|s| !s.is_empty()) {
            return Some(slug);
        }
    }
    None
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
    let state = state(req)?;
    let token = bearer(req).ok_or(ApiError::Unauthorized("a bearer token is required"))?;
    let user = state
        .user_for_token(token)
        .await?
        .ok_or(ApiError::Unauthorized("the bearer token is not valid"))?;
    let not_found = || ApiError::NotFound("tenant not found".into());
    let slug = tenant_slug(req, &state).ok_or_else(not_found)?;
    tracing::Span::current().record("tenant", slug.as_str());
    let tenant = state.tenant(&slug).await.map_err(|e| match e {
        tenancy_core::Error::TenantNotFound => not_found(),
        other => other.into(),
    })?;
    let role = state.role(user, &tenant).await?.ok_or_else(not_found)?;
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

impl FromRequest for Member {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Member>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "a tenant route without the authorize middleware"
            ))
        }))
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
            let state = state(&req)?;
            let token =
                bearer(&req).ok_or(ApiError::Unauthorized("the admin token is required"))?;
            // Hashes of equal length are compared, so the comparison leaks nothing useful.
            if accounts::token_hash(token) != state.admin_hash {
                return Err(ApiError::Unauthorized("the admin token is not valid"));
            }
            Ok(Admin)
        })
    }
}
// ANCHOR_END: admin
