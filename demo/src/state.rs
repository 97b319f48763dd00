//! What every request can reach: the store, the catalog pool, the caches.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::{Error, Slug, Strategy, Tenant, TenantStore};
use uuid::Uuid;

use crate::accounts::{self, Role};
use crate::metrics::Metrics;
use crate::settings::ResolutionSettings;

/// Shared by all workers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TenantStore>,
    /// The catalog (users, memberships, tokens) on the control database.
    pub control: DatabaseConnection,
    pub strategy: Strategy,
    pub resolution: ResolutionSettings,
    /// SHA-256 of the admin token.
    pub admin_hash: Vec<u8>,
    pub metrics: Metrics,
    /// Tenants by slug: a hot tenant costs no catalog query. Invalidated on delete here, and
    /// expires after 30 s for deletes made elsewhere.
    tenants: Cache<String, Tenant>,
    /// Token hash to user. Tokens are never revoked through the API.
    users: Cache<Vec<u8>, Uuid>,
    /// (user, tenant) to role; cleared whenever a membership changes.
    roles: Cache<(Uuid, Uuid), Option<Role>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn TenantStore>,
        control: DatabaseConnection,
        resolution: ResolutionSettings,
        admin_token: &str,
        metrics: Metrics,
    ) -> Self {
        AppState {
            strategy: store.strategy(),
            store,
            control,
            resolution,
            admin_hash: accounts::token_hash(admin_token),
            metrics,
            // ANCHOR: caches
            // Deletes through this process invalidate at once; a delete by another process
            // (the CLI, another instance) is seen within the time to live.
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            users: Cache::builder().max_capacity(100_000).build(),
            roles: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            // ANCHOR_END: caches
        }
    }

    /// The ready tenant with this slug, from the cache when possible.
    pub async fn tenant(&self, slug: &str) -> Result<Tenant, Error> {
        if let Some(t) = self.tenants.get(slug).await {
            self.metrics.tenant_cache.with_label_values(&["hit"]).inc();
            return Ok(t);
        }
        self.metrics.tenant_cache.with_label_values(&["miss"]).inc();
        let parsed = Slug::parse(slug).map_err(|_| Error::TenantNotFound)?;
        let tenant = self.store.tenant_by_slug(&parsed).await?;
        if tenant.state == tenancy_core::TenantState::Ready {
            self.tenants.insert(slug.to_owned(), tenant.clone()).await;
        }
        Ok(tenant)
    }

    /// Forgets a tenant (after it was deleted).
    pub async fn forget_tenant(&self, slug: &str) {
        self.tenants.invalidate(slug).await;
        self.roles.invalidate_all();
    }

    /// The user a bearer token belongs to.
    pub async fn user_for_token(&self, token: &str) -> Result<Option<Uuid>, Error> {
        let hash = accounts::token_hash(token);
        if let Some(user) = self.users.get(&hash).await {
            return Ok(Some(user));
        }
        let user = accounts::user_for_token(&self.control, token).await?;
        if let Some(u) = user {
            self.users.insert(hash, u).await;
        }
        Ok(user)
    }

    /// The user's role in the tenant, if a member.
    pub async fn role(&self, user: Uuid, tenant: &Tenant) -> Result<Option<Role>, Error> {
        let key = (user, tenant.id.as_uuid());
        if let Some(role) = self.roles.get(&key).await {
            return Ok(role);
        }
        let role = accounts::role(&self.control, user, tenant.id).await?;
        self.roles.insert(key, role).await;
        Ok(role)
    }

    /// Forgets every cached role (after a membership changed).
    pub fn forget_roles(&self) {
        self.roles.invalidate_all();
    }
}
