//! The hybrid store: one catalog, three placements, each tenant routed to the store of its
//! placement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tenancy_core::plumbing::notices::{Notice, Notices, Subscriber};
use tenancy_core::plumbing::transfer::TenantTables;
use tenancy_core::plumbing::{Placements, StrategyDoor, catalog, sync};
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::{
    Connections, Error, MigrateOptions, MigrationReport, NewTenant, Placement, PlacementKind,
    Result, ScopeMode, Strategy, Tenant, TenantId, TenantScope, TenantState, TenantStore,
    UnscopedView,
};
use tenancy_separate_db::SeparateDbStore;
use tenancy_separate_schema::SeparateSchemaStore;
use tenancy_shared_schema::SharedSchemaStore;

use crate::options::HybridOptions;

/// How long a tenant announced as changed is looked up afresh before each scope.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The three placements over one catalog. See the crate documentation.
#[derive(Debug, Clone)]
pub struct HybridStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) shared: SharedSchemaStore,
    pub(crate) schema: SeparateSchemaStore,
    pub(crate) database: SeparateDbStore,
    pub(crate) options: HybridOptions,
    /// The control database's URL (the catalog), for a move's own connection.
    pub(crate) url: String,
    /// Slugs whose catalog row changed lately (announced on the catalog channel), and when:
    /// a scope for one of them looks the tenant up again, so a caller that cached the tenant
    /// before a move is routed to where it is now.
    changed: Mutex<HashMap<String, Instant>>,
    /// The placement each tenant announced as changed was found at afterwards: a caller's
    /// tenant placed elsewhere is looked up again however long ago it changed, so a copy
    /// kept from before a move never reaches the old placement.
    placed: Mutex<HashMap<TenantId, Placement>>,
    /// The task that hears the catalog's notices for this store's caches (its subscription
    /// keeps the process's `LISTEN` loop running), stopped with the store.
    hearing: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.hearing.get() {
            task.abort();
        }
    }
}

/// The slug that stands for every tenant: set while the listener is down, when notices may
/// have been missed.
const EVERY_TENANT: &str = "*";

impl HybridStore {
    /// Connects a store of each strategy to `database_url` (the catalog, the shared tables,
    /// the schemas, and the control server of the databases), installing what is missing, and
    /// starts listening for catalog changes on a connection of its own.
    pub async fn connect(database_url: &str, options: HybridOptions) -> Result<Self> {
        let notices = Notices::start(
            &tenancy_core::plumbing::loopback_without_tls(database_url),
            &[catalog::CATALOG_CHANNEL],
        );
        Self::connect_with_notices(database_url, options, notices).await
    }

    /// As [`HybridStore::connect`], with the catalog's notices heard through `notices`, the
    /// process's one `LISTEN` loop, which must listen on
    /// [`CATALOG_CHANNEL`](catalog::CATALOG_CHANNEL) of this store's catalog (an application
    /// with caches of its own subscribes them to the same loop).
    pub async fn connect_with_notices(
        database_url: &str,
        options: HybridOptions,
        notices: Notices,
    ) -> Result<Self> {
        let names =
            |m: &tenancy_core::TenantMigrations| m.names().map(str::to_owned).collect::<Vec<_>>();
        if names(&options.shared.migrations) != names(&options.schema.migrations)
            || names(&options.shared.migrations) != names(&options.database.migrations)
        {
            return Err(Error::MigrationsMismatch(
                "a hybrid store moves tenants between its placements, so its shared, schema and \
                 database options must be given the same tenant migrations"
                    .into(),
            ));
        }
        // Before the shared-schema store, which would distribute its tables on a coordinator.
        let probe = tenancy_core::plumbing::connect_pool(
            database_url,
            &tenancy_core::plumbing::PoolSettings {
                max_connections: 1,
                ..Default::default()
            },
        )
        .await?;
        let on_citus = tenancy_core::plumbing::citus::refuse(
            &probe,
            "the hybrid store does not run on Citus: it moves tenants with fence triggers and \
             copies that Citus does not allow on distributed tables; on Citus use \
             shared-schema or separate-schema",
        )
        .await;
        probe.close().await.ok();
        on_citus?;
        let shared = SharedSchemaStore::connect(database_url, options.shared.clone()).await?;
        let schema = SeparateSchemaStore::connect(database_url, options.schema.clone()).await?;
        let database = SeparateDbStore::connect(database_url, options.database.clone()).await?;
        let store = HybridStore {
            inner: Arc::new(Inner {
                shared,
                schema,
                database,
                options,
                url: tenancy_core::plumbing::loopback_without_tls(database_url),
                changed: Mutex::new(HashMap::new()),
                placed: Mutex::new(HashMap::new()),
                hearing: std::sync::OnceLock::new(),
            }),
        };
        let task = tokio::spawn(hear_notices(
            Arc::downgrade(&store.inner),
            notices.subscribe(),
        ));
        store.inner.hearing.set(task.abort_handle()).ok();
        Ok(store)
    }

    /// The options the store runs with.
    pub fn options(&self) -> &HybridOptions {
        &self.inner.options
    }

    /// The shared-schema store inside (for operations and tests).
    pub fn shared(&self) -> &SharedSchemaStore {
        &self.inner.shared
    }

    /// The separate-schema store inside.
    pub fn schemas(&self) -> &SeparateSchemaStore {
        &self.inner.schema
    }

    /// The separate-db store inside.
    pub fn databases(&self) -> &SeparateDbStore {
        &self.inner.database
    }

    /// The store that serves placement `kind`.
    pub(crate) fn store_of(&self, kind: PlacementKind) -> &dyn TenantStore {
        match kind {
            PlacementKind::Shared => &self.inner.shared,
            PlacementKind::Schema => &self.inner.schema,
            PlacementKind::Database => &self.inner.database,
        }
    }

    /// The placement operations of the store that serves `kind`.
    pub(crate) fn placements_of(&self, kind: PlacementKind) -> &dyn Placements {
        match kind {
            PlacementKind::Shared => &self.inner.shared,
            PlacementKind::Schema => &self.inner.schema,
            PlacementKind::Database => &self.inner.database,
        }
    }

    /// The pool on the catalog.
    pub(crate) fn catalog(&self) -> &DatabaseConnection {
        self.inner
            .shared
            .connection(tenancy_core::plumbing::StrategyDoor)
    }

    fn placed(&self, new: &NewTenant) -> PlacementKind {
        new.placement
            .unwrap_or_else(|| self.inner.options.default_placement.for_slug(&new.slug))
    }

    /// `new` as the store of its placement gets it: with its placement given.
    fn as_placed(new: NewTenant, kind: PlacementKind) -> NewTenant {
        NewTenant {
            placement: Some(kind),
            ..new
        }
    }

    /// `tenant` as the catalog has it now when it may have moved since the caller looked it
    /// up (it is moving, or its row was announced as changed lately); otherwise as given.
    pub(crate) async fn current(&self, tenant: &Tenant) -> Result<Tenant> {
        let recently_changed = {
            let changed = sync::lock(&self.inner.changed, "the hybrid store's change list");
            [tenant.slug.as_str(), EVERY_TENANT]
                .iter()
                .any(|s| changed.get(*s).is_some_and(|at| at.elapsed() < FRESH_FOR))
        };
        let placed_elsewhere = sync::lock(&self.inner.placed, "the hybrid store's placements")
            .get(&tenant.id)
            .is_some_and(|p| *p != tenant.placement);
        if tenant.state == TenantState::Moving || recently_changed || placed_elsewhere {
            self.tenant(tenant.id).await
        } else {
            Ok(tenant.clone())
        }
    }

    fn heard(&self, slug: &str) {
        hear(&self.inner, slug);
    }
}

fn hear(inner: &Inner, slug: &str) {
    let mut changed = sync::lock(&inner.changed, "the hybrid store's change list");
    changed.retain(|_, at| at.elapsed() < FRESH_FOR);
    changed.insert(slug.to_owned(), Instant::now());
}

/// Hears the catalog's notices for as long as the store lives; while notices may have been
/// missed, every tenant counts as changed.
async fn hear_notices(inner: std::sync::Weak<Inner>, mut notices: Subscriber) {
    while let Some(notice) = notices.next().await {
        let Some(alive) = inner.upgrade() else { return };
        match notice {
            Notice::Heard { channel, payload } if channel == catalog::CATALOG_CHANNEL => {
                hear(&alive, &payload);
                tokio::spawn(close_moved_connections(Arc::downgrade(&alive), payload));
            }
            Notice::Heard { .. } => {}
            Notice::Lost => hear(&alive, EVERY_TENANT),
        }
    }
}

/// After a tenant's row changed: once the reads begun before the change had time to end
/// (half the drain), records where the tenant is now and closes the connections this process
/// keeps to a database it no longer lives in, so none is found dead when the mover drops it.
async fn close_moved_connections(inner: std::sync::Weak<Inner>, slug: String) {
    let Ok(slug) = tenancy_core::Slug::parse(&slug) else {
        return;
    };
    let (keep, drain) = {
        let Some(inner) = inner.upgrade() else { return };
        let keep = match catalog::by_slug(
            inner
                .shared
                .connection(tenancy_core::plumbing::StrategyDoor),
            &slug,
        )
        .await
        {
            Ok(Some(t)) => {
                sync::lock(&inner.placed, "the hybrid store's placements")
                    .insert(t.id, t.placement.clone());
                match t.placement {
                    Placement::Database { server, .. } => Some(server),
                    _ => None,
                }
            }
            Ok(None) => None,
            Err(_) => return,
        };
        (keep, inner.options.moves.drain)
    };
    tokio::time::sleep(drain / 2).await;
    let Some(inner) = inner.upgrade() else { return };
    inner
        .database
        .close_connections_elsewhere(&slug, keep.as_deref())
        .await;
}

#[async_trait]
impl TenantStore for HybridStore {
    fn strategy(&self) -> Strategy {
        Strategy::Hybrid
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        // An existing slug is completed (or returned) by the store of its placement.
        if let Some(existing) = catalog::by_slug(self.catalog(), &new.slug).await? {
            if new.exclusive {
                return Err(Error::TenantAlreadyExists(new.slug.to_string()));
            }
            let kind = existing.placement.kind();
            return self
                .store_of(kind)
                .create_tenant(Self::as_placed(new, kind))
                .await;
        }
        let kind = self.placed(&new);
        self.store_of(kind)
            .create_tenant(Self::as_placed(new, kind))
            .await
    }

    // ANCHOR_END: create_tenant

    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        self.store_of(tenant.placement.kind())
            .delete_tenant(id)
            .await
    }

    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport> {
        let mut report = self.inner.shared.migrate_all(options).await?;
        for other in [
            self.inner.schema.migrate_all(options).await?,
            self.inner.database.migrate_all(options).await?,
        ] {
            report.tenants.extend(other.tenants);
            report.up_to_date += other.up_to_date;
        }
        Ok(report)
    }

    // ANCHOR: scope
    async fn scope_with(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
        let tenant = self.current(tenant).await?;
        self.store_of(tenant.placement.kind())
            .scope_with(&tenant, mode)
            .await
    }

    async fn scope_read(
        &self,
        tenant: &Tenant,
        after: Option<tenancy_core::Lsn>,
    ) -> Result<TenantScope> {
        let tenant = self.current(tenant).await?;
        self.store_of(tenant.placement.kind())
            .scope_read(&tenant, after)
            .await
    }

    async fn write_lsn(&self, tenant: &Tenant) -> Result<Option<tenancy_core::Lsn>> {
        let tenant = self.current(tenant).await?;
        self.store_of(tenant.placement.kind())
            .write_lsn(&tenant)
            .await
    }

    // ANCHOR_END: scope

    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // The one pool whose connections can see several tenants' rows is the shared
        // tables'; the schema and database stores' connections qualify every name.
        self.inner.shared.unscoped_view(table).await
    }

    fn connections(&self) -> Connections {
        self.inner.shared.connections()
            + self.inner.schema.connections()
            + self.inner.database.connections()
    }

    fn placements(&self, _: StrategyDoor) -> &dyn Placements {
        self
    }
}

#[async_trait]
impl Placements for HybridStore {
    fn catalog(&self) -> &DatabaseConnection {
        HybridStore::catalog(self)
    }

    async fn placement_for(&self, new: &NewTenant) -> Result<Placement> {
        let kind = self.placed(new);
        self.placements_of(kind)
            .placement_for(&Self::as_placed(new.clone(), kind))
            .await
    }

    fn tenant_version(&self) -> i32 {
        Placements::tenant_version(&self.inner.shared)
    }

    async fn build_at(&self, tenant: &Tenant, placement: &Placement) -> Result<i32> {
        self.placements_of(placement.kind())
            .build_at(tenant, placement)
            .await
    }

    async fn purge_at(&self, tenant: &Tenant, placement: &Placement) -> Result<()> {
        self.placements_of(placement.kind())
            .purge_at(tenant, placement)
            .await
    }

    async fn tables_at(&self, tenant: &Tenant, placement: &Placement) -> Result<TenantTables> {
        self.placements_of(placement.kind())
            .tables_at(tenant, placement)
            .await
    }
}

impl HybridStore {
    /// Tells this store that `slug`'s catalog row changed (what the listener does on a
    /// notice); a mover calls it for its own flips so its process needs no round trip.
    pub(crate) fn changed(&self, slug: &str) {
        self.heard(slug);
    }
}
