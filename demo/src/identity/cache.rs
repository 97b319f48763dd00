//! The identity checks behind their three in-process caches: the token to its user, the slug
//! to its tenant, the (user, tenant) pair to a role; and forgetting an entry when it changes.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use moka::future::Cache;
use prometheus::IntCounterVec;
use tenancy_core::plumbing::catalog;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{Error, Slug, Tenant, TenantState, TenantStore};
use uuid::Uuid;

use super::ACCOUNTS_CHANNEL;
use super::hashing::HashedToken;
use super::limits::Limits;
use crate::accounts::{Role, token_hash};
use crate::settings::{ResolutionSettings, ResolveBy};

/// The identity checks and their caches, shared by all workers (clones share the caches).
#[derive(Clone)]
pub struct Identity {
    store: Arc<dyn TenantStore>,
    /// The control database, where tokens and memberships are kept.
    control: DatabaseConnection,
    resolution: ResolutionSettings,
    /// SHA-256 of the admin token.
    pub(super) admin_hash: Vec<u8>,
    /// Tenant lookups by result (`hit`, `miss`).
    tenant_lookups: IntCounterVec,
    /// Token hash (hex) to its user and expiry. Forgotten when the token changes anywhere
    /// (see [`listen`](fn@super::listen)).
    users: Cache<String, (Uuid, Option<DateTime<Utc>>)>,
    /// Tenants by slug: a hot tenant costs no catalog query. Forgotten when its catalog row
    /// changes anywhere.
    tenants: Cache<String, Tenant>,
    /// (user, tenant) to role; cleared whenever a membership changes anywhere.
    roles: Cache<(Uuid, Uuid), Option<Role>>,
    /// Request rates per tenant and per token, when limited.
    pub(super) limits: Arc<Limits>,
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

    /// Waits for `tenant`'s turn within its rate, up to the queue; `Err(seconds to wait)`
    /// when it is further away: for routes served without a token (the sign-up), which count
    /// against the tenant that serves them.
    pub async fn admit_tenant(&self, tenant: Uuid) -> Result<(), u64> {
        self.limits.admit_tenant(tenant).await
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

    /// Acts on one notice from the database (see [`listen`](fn@super::listen)).
    pub async fn hear(&self, channel: &str, payload: &str) {
        match (channel, payload.split_once(':')) {
            (catalog::CATALOG_CHANNEL, _) => self.forget_tenant(payload).await,
            (ACCOUNTS_CHANNEL, Some(("token", hash))) => self.users.invalidate(hash).await,
            (ACCOUNTS_CHANNEL, _) => self.forget_roles(),
            _ => {}
        }
    }
}
