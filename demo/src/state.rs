//! What every handler can reach: the store, the catalog pool, the metrics.

use std::sync::Arc;

use actix_web::{HttpRequest, web};
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::{Strategy, TenantStore};

use crate::metrics::Metrics;
use crate::problem::ApiError;

/// How old a tenant's storage figure may be when a write is checked against its plan.
pub const STORAGE_FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// Shared by all workers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TenantStore>,
    /// The catalog (users, memberships, tokens) on the control database.
    pub control: DatabaseConnection,
    pub strategy: Strategy,
    pub metrics: Metrics,
    /// Moves tenants between placements: the hybrid store, when it is the strategy.
    pub mover: Option<Arc<dyn crate::strategy::Mover>>,
    /// The configuration's static tenants.
    pub statics: Arc<crate::statics::StaticTenants>,
    /// The SQL the last requests sent through each tenant's scope (for `/explorer`).
    pub journal: Arc<crate::journal::Journal>,
    /// The servers a tenant database may be placed on (separate-db and hybrid): the control
    /// server, `main`, and the configured ones. The OpenAPI document lists them.
    pub servers: Arc<Vec<String>>,
    /// What each plan allows a tenant (the configured plans).
    pub plans: Arc<tenancy_core::Plans>,
    /// Each tenant's storage, as a plan's storage limit is checked against it: read from the
    /// database at most once per [`STORAGE_FRESH`] per tenant and process.
    pub storage: moka::future::Cache<tenancy_core::TenantId, tenancy_core::Storage>,
    /// How many of the busiest tenants `/metrics` names.
    pub metrics_tenants: usize,
    /// One move at a time in this process (`POST /admin/tenants/{slug}/move` answers 429
    /// while one runs).
    pub moves: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// `tenant`'s storage, at most [`STORAGE_FRESH`] old.
    pub async fn storage_of(
        &self,
        tenant: &tenancy_core::Tenant,
    ) -> Result<tenancy_core::Storage, ApiError> {
        if let Some(known) = self.storage.get(&tenant.id).await {
            return Ok(known);
        }
        let storage = self.store.storage(tenant).await?;
        self.storage.insert(tenant.id, storage.clone()).await;
        Ok(storage)
    }

    /// The servers a tenant may be placed on, where this strategy places tenants on servers
    /// (separate-db, hybrid); `None` where `server` is ignored. What the document lists and
    /// what `POST /admin/tenants` and a move accept.
    pub fn placement_servers(&self) -> Option<&[String]> {
        matches!(self.strategy, Strategy::SeparateDb | Strategy::Hybrid)
            .then_some(self.servers.as_slice())
    }

    pub fn new(store: Arc<dyn TenantStore>, control: DatabaseConnection, metrics: Metrics) -> Self {
        AppState {
            strategy: store.strategy(),
            store,
            control,
            metrics,
            mover: None,
            statics: Arc::default(),
            journal: Arc::default(),
            servers: Arc::new(vec!["main".to_owned()]),
            moves: Arc::new(tokio::sync::Semaphore::new(1)),
            plans: Arc::new(tenancy_core::Plans::unlimited()),
            storage: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(STORAGE_FRESH)
                .build(),
            metrics_tenants: 10,
        }
    }
}

/// The app data of type `T` (the [`AppState`], the [`crate::identity::Identity`]), for an
/// extractor or middleware; a 500 when the app was built without it.
pub fn app_data<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, ApiError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "no {} in the app data",
            std::any::type_name::<T>()
        ))
    })
}
