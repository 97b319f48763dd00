//! Who is asking, and for which tenant, in the order a request is checked: the bearer token
//! to its user, the tenant slug to its tenant, the (user, tenant) pair to a role, each through
//! an in-process cache; then the [`authorize`] middleware that runs those checks in front of
//! every tenant route and the [`Member`] and [`Admin`] extractors handlers take.
//!
//! The order of checks is fixed: the token first (401 without a valid one), then the tenant
//! (404 when unknown), then the membership (404 as well, so a token cannot probe which tenants
//! exist).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::{DateTime, Utc};
use moka::future::Cache;
use prometheus::IntCounterVec;
use subtle::ConstantTimeEq;
use tenancy_core::plumbing::catalog;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{Error, Slug, Tenant, TenantState, TenantStore};
use uuid::Uuid;

use crate::accounts::{Role, hex, token_hash};
use crate::problem::ApiError;
use crate::settings::{RateLimitSettings, ResolutionSettings, ResolveBy};

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

/// The identity checks and their caches, shared by all workers (clones share the caches).
#[derive(Clone)]
pub struct Identity {
    store: Arc<dyn TenantStore>,
    /// The control database, where tokens and memberships are kept.
    control: DatabaseConnection,
    resolution: ResolutionSettings,
    /// SHA-256 of the admin token.
    admin_hash: Vec<u8>,
    /// Tenant lookups by result (`hit`, `miss`).
    tenant_lookups: IntCounterVec,
    /// Token hash (hex) to its user and expiry. Forgotten when the token changes anywhere
    /// (see [`listen`]).
    users: Cache<String, (Uuid, Option<DateTime<Utc>>)>,
    /// Tenants by slug: a hot tenant costs no catalog query. Forgotten when its catalog row
    /// changes anywhere.
    tenants: Cache<String, Tenant>,
    /// (user, tenant) to role; cleared whenever a membership changes anywhere.
    roles: Cache<(Uuid, Uuid), Option<Role>>,
    /// Request rates per tenant and per token, when limited.
    limits: Arc<Limits>,
}

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

// ANCHOR: limits
/// The request rates of [`RateLimitSettings`], kept per tenant and per token (its hash) by
/// `governor`'s keyed limiters (a generic cell rate algorithm: no timer, one atomic per key).
#[derive(Default)]
pub struct Limits {
    per_tenant: Option<Keyed<Uuid>>,
    per_token: Option<Keyed<String>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_tenant", &self.per_tenant.is_some())
            .field("per_token", &self.per_token.is_some())
            .finish()
    }
}

impl Limits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let burst = settings.burst_seconds;
        Limits {
            per_tenant: keyed(settings.per_tenant, burst),
            per_token: keyed(settings.per_token, burst),
        }
    }

    /// `Err(seconds to wait)` when the tenant is over its rate.
    fn check_tenant(&self, tenant: Uuid) -> Result<(), u64> {
        match &self.per_tenant {
            Some(l) => l.check_key(&tenant).map_err(wait),
            None => Ok(()),
        }
    }

    /// `Err(seconds to wait)` when the tenant or the token is over its rate.
    fn check(&self, tenant: Uuid, token: &HashedToken) -> Result<(), u64> {
        self.check_tenant(tenant)?;
        if let Some(l) = &self.per_token {
            l.check_key(&token.hex).map_err(wait)?;
        }
        Ok(())
    }
}

/// Whole seconds until `not_until`, at least one: what `Retry-After` can say.
fn wait(
    not_until: governor::NotUntil<
        <governor::clock::DefaultClock as governor::clock::Clock>::Instant,
    >,
) -> u64 {
    use governor::clock::{Clock, DefaultClock};
    let secs = not_until
        .wait_time_from(DefaultClock::default().now())
        .as_secs_f64();
    secs.ceil().max(1.0) as u64
}

/// A keyed limiter of `rate` per second with `burst_seconds` of burst; `None` for rate 0.
fn keyed<K: std::hash::Hash + Eq + Clone>(rate: u32, burst_seconds: u32) -> Option<Keyed<K>> {
    let rate = std::num::NonZeroU32::new(rate)?;
    let seconds = std::num::NonZeroU32::new(burst_seconds).unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::per_second(rate).allow_burst(rate.saturating_mul(seconds));
    Some(governor::RateLimiter::keyed(quota))
}
// ANCHOR_END: limits

/// A bearer token, hashed once per request: the hash is what the catalog stores, its hex the
/// key of the caches and of the token's rate.
pub struct HashedToken {
    hash: Vec<u8>,
    hex: String,
}

impl std::fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedToken(<redacted>)")
    }
}

impl HashedToken {
    pub fn of(token: &str) -> Self {
        let hash = token_hash(token);
        HashedToken {
            hex: hex(&hash),
            hash,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("resolution", &self.resolution)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// `tenant_lookups` counts tenant lookups by result (the demo's `tenant_cache` metric).
    pub fn new(
        store: Arc<dyn TenantStore>,
        control: DatabaseConnection,
        resolution: ResolutionSettings,
        admin_token: &str,
        tenant_lookups: IntCounterVec,
        limits: Limits,
    ) -> Self {
        Identity {
            store,
            control,
            resolution,
            admin_hash: token_hash(admin_token),
            tenant_lookups,
            // ANCHOR: caches
            // Every process forgets an entry when the database announces its change (see
            // `listen`); the times to live bound what a lost notice can cost.
            users: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            roles: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            // ANCHOR_END: caches
            limits: Arc::new(limits),
        }
    }

    /// 1. The user the bearer token belongs to. The token is hashed once: the hash is both
    ///    the cache key and what the catalog stores.
    ///    An expired token is no token.
    pub async fn user(&self, token: &HashedToken) -> Result<Option<Uuid>, Error> {
        let found = match self.users.get(&token.hex).await {
            Some(found) => Some(found),
            None => {
                let row = self
                    .control
                    .query_one_raw(stmt(
                        "SELECT user_id, expires_at FROM tenancy.api_tokens WHERE token_hash = $1",
                        [token.hash.clone().into()],
                    ))
                    .await?;
                match row {
                    Some(r) => {
                        let found = (r.try_get("", "user_id")?, r.try_get("", "expires_at")?);
                        self.users.insert(token.hex.clone(), found).await;
                        Some(found)
                    }
                    None => None,
                }
            }
        };
        Ok(found
            .filter(|(_, expires)| expires.is_none_or(|at| Utc::now() < at))
            .map(|(user, _)| user))
    }

    /// 2. The tenant slug the request names, trying each configured source in order.
    pub fn tenant_slug(&self, req: &HttpRequest) -> Option<String> {
        for by in &self.resolution.order {
            let found = match by {
                ResolveBy::Path => req.match_info().get("tenant").map(str::to_owned),
                ResolveBy::Header => req
                    .headers()
                    .get(self.resolution.header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_owned()),
                ResolveBy::Subdomain => {
                    let host = req.connection_info().host().to_owned();
                    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
                    host.strip_suffix(&format!(".{}", self.resolution.base_domain))
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

    /// 3. The ready tenant with this slug, from the cache when possible.
    pub async fn tenant(&self, slug: &str) -> Result<Tenant, Error> {
        if let Some(t) = self.tenants.get(slug).await {
            self.tenant_lookups.with_label_values(&["hit"]).inc();
            return Ok(t);
        }
        self.tenant_lookups.with_label_values(&["miss"]).inc();
        let parsed = Slug::parse(slug).map_err(|_| Error::TenantNotFound)?;
        let tenant = self.store.tenant_by_slug(&parsed).await?;
        if tenant.state == TenantState::Ready {
            self.tenants.insert(slug.to_owned(), tenant.clone()).await;
        }
        Ok(tenant)
    }

    /// `Err(seconds to wait)` when `tenant` is over its rate: for routes served without a
    /// token (the sign-up), which count against the tenant that serves them.
    pub fn check_tenant_rate(&self, tenant: Uuid) -> Result<(), u64> {
        self.limits.check_tenant(tenant)
    }

    /// 4. The user's role in the tenant, if a member.
    pub async fn role(&self, user: Uuid, tenant: &Tenant) -> Result<Option<Role>, Error> {
        let key = (user, tenant.id.as_uuid());
        if let Some(role) = self.roles.get(&key).await {
            return Ok(role);
        }
        let row = self
            .control
            .query_one_raw(stmt(
                "SELECT role FROM tenancy.memberships WHERE user_id = $1 AND tenant_id = $2",
                [user.into(), tenant.id.as_uuid().into()],
            ))
            .await?;
        let role = row
            .map(|r| r.try_get::<String>("", "role"))
            .transpose()?
            .map(|name| Role::from_stored(&name));
        self.roles.insert(key, role).await;
        Ok(role)
    }

    /// Forgets a tenant (after it was deleted), and every cached role with it.
    pub async fn forget_tenant(&self, slug: &str) {
        self.tenants.invalidate(slug).await;
        self.roles.invalidate_all();
    }

    /// Forgets every cached role (after a membership changed).
    pub fn forget_roles(&self) {
        self.roles.invalidate_all();
    }

    /// Forgets everything cached: after notices may have been missed.
    pub fn forget_everything(&self) {
        self.users.invalidate_all();
        self.tenants.invalidate_all();
        self.roles.invalidate_all();
    }

    /// Acts on one notice from the database (see [`listen`]).
    pub async fn hear(&self, channel: &str, payload: &str) {
        match (channel, payload.split_once(':')) {
            (catalog::CATALOG_CHANNEL, _) => self.forget_tenant(payload).await,
            (ACCOUNTS_CHANNEL, Some(("token", hash))) => self.users.invalidate(hash).await,
            (ACCOUNTS_CHANNEL, _) => self.forget_roles(),
            _ => {}
        }
    }
}

/// The channel the demo's account tables announce changes on (see the accounts migration).
pub const ACCOUNTS_CHANNEL: &str = "tenancy_accounts";

// ANCHOR: listen
/// Keeps `identity`'s caches in step with the database, for as long as the app runs: listens
/// on the catalog's and the accounts' channels, where every change to a tenant, a token or a
/// membership is announced when it commits, whichever process made it; each notice makes
/// this process forget what it cached. While the listening connection is down notices are
/// lost, so the caches are cleared whenever it (re)connects.
pub async fn listen(identity: Identity, pool: tenancy_core::sea_orm::sqlx::PgPool) {
    use tenancy_core::sea_orm::sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen_all([catalog::CATALOG_CHANNEL, ACCOUNTS_CHANNEL])
                .await?;
            Ok::<_, tenancy_core::sea_orm::sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut l) => {
                identity.forget_everything();
                loop {
                    match l.try_recv().await {
                        Ok(Some(notice)) => identity.hear(notice.channel(), notice.payload()).await,
                        // The connection was lost: the next call connects again, and whatever
                        // was announced in between is unknown.
                        Ok(None) => identity.forget_everything(),
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for cache notices");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for cache notices"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
// ANCHOR_END: listen

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
        .check(tenant.id.as_uuid(), &token)
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
