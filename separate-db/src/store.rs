//! The separate-db store: connecting to the servers, the tenant life cycle, and binding a
//! scope to a tenant's database. Placement, templates and migrations have rooms of their own,
//! below it: the store lends them its router, catalog and migrations and calls down, and none
//! of them names the store.

use std::sync::Arc;

use async_trait::async_trait;
use tenancy_core::plumbing::PoolSettings;
use tenancy_core::plumbing::replica::ReplicaRoute;
use tenancy_core::plumbing::sql::AdvisoryLock;
use tenancy_core::plumbing::{LentConnection, catalog, connect_pool, fault, loopback_without_tls};
use tenancy_core::plumbing::{Placements, StrategyDoor, control, pin::pin_tenant_tables};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::sea_orm_migration::MigratorTrait;
use tenancy_core::{
    Error, Lsn, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement,
    PlacementKind, ReplicaOptions, Result, ScopeMode, Strategy, TableNamespace, Tenant, TenantId,
    TenantMigration, TenantScope, TenantState, TenantStore, UnscopedView, check_identifier,
    quote_ident,
};

use tenancy_core::plumbing::transfer::{TableSharing, TenantTables};

use crate::migrate::{DatabaseMigrator, LIFT_STATEMENT_TIMEOUT};
use crate::options::SeparateDbOptions;
use crate::placement;
use crate::router::{Lease, Router};
use crate::server::{Server, Via};
use crate::template::{Template, maintenance, recreate_database, template_lock};

/// The separate-db strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SeparateDbStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The catalog.
    pub(crate) control: DatabaseConnection,
    pub(crate) router: Arc<Router>,
    pub(crate) options: SeparateDbOptions,
    pub(crate) prefix: String,
    /// The read replicas: their own router (a budget of their own on each), and for each
    /// server of `router`, its replica's index there and its route, if it has one.
    pub(crate) replicas: Option<Replicas>,
}

/// The read replicas of a store's servers.
#[derive(Debug)]
pub(crate) struct Replicas {
    router: Arc<Router>,
    of: Vec<Option<(usize, Arc<ReplicaRoute>)>>,
}

/// A pooler URL of a server's tenant traffic, parsed.
fn tenant_url(url: Option<&str>) -> Result<Option<url::Url>> {
    url.map(|u| {
        url::Url::parse(&loopback_without_tls(u))
            .map_err(|e| Error::invalid("tenant_url", e.to_string()))
    })
    .transpose()
}

impl SeparateDbStore {
    /// Connects to the control database at `control_url`, installs the catalog, and prepares
    /// the router for the control server and `options.servers`. Template databases are
    /// created on each server when its first tenant arrives.
    pub async fn connect(control_url: &str, options: SeparateDbOptions) -> Result<Self> {
        let control_url = &loopback_without_tls(control_url);
        let url = url::Url::parse(control_url)
            .map_err(|e| Error::invalid("control_url", e.to_string()))?;
        let prefix = options.prefix(url.path().trim_start_matches('/'))?;
        options.check_budget()?;
        // The control pool comes on top of the control server's budget for tenant databases.
        let mut servers = vec![Arc::new(Server::new(
            options.control_server.clone(),
            url.clone(),
            tenant_url(options.tenant_url.as_deref())?,
            options.connections_per_server,
        ))];
        for s in &options.servers {
            check_identifier("servers", &s.name, 0)?;
            if servers.iter().any(|known| known.name == s.name) {
                return Err(Error::invalid(
                    "servers",
                    format!("server name {:?} is used twice", s.name),
                ));
            }
            let u = url::Url::parse(&loopback_without_tls(&s.url))
                .map_err(|e| Error::invalid("servers", e.to_string()))?;
            servers.push(Arc::new(Server::new(
                s.name.clone(),
                u,
                tenant_url(s.tenant_url.as_deref())?,
                options.connections_per_server,
            )));
        }
        let control = connect_pool(control_url, &options.control_pool()).await?;
        tenancy_core::plumbing::citus::refuse(
            &control,
            "separate-db does not run on Citus: its own placement of tenant databases across \
             servers is its scale-out (SeparateDbOptions::servers); on Citus use shared-schema \
             or separate-schema",
        )
        .await?;
        let replicas = replicas_of(&servers, &options, &control).await?;
        let router = Arc::new(Router::new(servers, options.router()));
        let txn = control.begin().await?;
        AdvisoryLock::new("tenancy:separate-db:install")
            .lock(&txn)
            .await?;
        control::Migrator::up(&txn, None).await?;
        options.migrations.check_recorded(&txn).await?;
        txn.commit().await?;
        Ok(SeparateDbStore {
            inner: Arc::new(Inner {
                control,
                router,
                replicas,
                options,
                prefix,
            }),
        })
    }

    /// The control database's pool (the catalog). For strategy crates, operations and tests: it
    /// holds the catalog, so it is behind the strategy door's key
    /// ([`StrategyDoor`](tenancy_core::plumbing::StrategyDoor)), which an application never names.
    pub fn connection(&self, _: StrategyDoor) -> &DatabaseConnection {
        &self.inner.control
    }

    /// Per server: its name, the tenant connections open on it (one per slot), and the
    /// connections allotted, which never exceeds `connections_per_server`.
    pub fn open_pools(&self) -> Vec<(String, usize, u32)> {
        self.inner.router.open_pools()
    }

    /// Closes this store's connections to the database of the tenant with `slug` on every
    /// server but `keep`: for a store over several placements that hears the tenant moved
    /// away (or to another server), before the old database is dropped under them.
    pub async fn close_connections_elsewhere(&self, slug: &tenancy_core::Slug, keep: Option<&str>) {
        let database = self.database_for(slug);
        for (i, server) in self.inner.router.servers.iter().enumerate() {
            if keep != Some(server.name.as_str()) {
                self.inner.router.evict(i, &database).await;
            }
        }
    }

    /// How many tenant connections were closed to make room for another database since the
    /// store connected (the router's churn: zero when the budget holds the tenants served).
    pub fn slots_closed(&self) -> u64 {
        self.inner.router.slots_closed()
    }

    /// A lease on a tenant database (through the server's pooler, if it has one).
    pub(crate) async fn lease(&self, server: usize, database: &str) -> Result<Lease> {
        self.inner.router.lease(server, database, Via::Tenant).await
    }

    /// The database of the tenant with this slug.
    pub fn database_for(&self, slug: &tenancy_core::Slug) -> String {
        placement::database_for(&self.inner.prefix, slug)
    }

    /// The template database on every server.
    pub fn template_database(&self) -> String {
        placement::template_database(&self.inner.prefix)
    }

    /// The configured server names, the control server first.
    pub fn servers(&self) -> Vec<String> {
        placement::server_names(&self.inner.router)
    }

    /// The server (its index) and database of `tenant`, checked against its placement.
    fn server_of(&self, tenant: &Tenant) -> Result<(usize, String)> {
        placement::server_of(&self.inner.router, &self.inner.prefix, tenant)
    }

    /// What migrating this store's databases needs, lent by the store.
    fn migrator(&self) -> DatabaseMigrator<'_> {
        DatabaseMigrator {
            router: &self.inner.router,
            control: &self.inner.control,
            migrations: &self.inner.options.migrations,
            prefix: &self.inner.prefix,
        }
    }

    /// The template database of `server`.
    fn template(&self, server: usize) -> Template<'_> {
        Template::new(self.migrator(), server)
    }

    // ANCHOR: provision
    /// Clones the template into the tenant's database, pins its tables to the tenant and marks
    /// it ready. The catalog row stays locked throughout, so two calls cannot race; a crash
    /// leaves the tenant `provisioning`, and the next call drops whatever was half made and
    /// starts again.
    async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        // Before the transaction: the template may need a control connection of its own.
        self.template(self.server_of(tenant)?.0).ensure().await?;
        let txn = self.inner.control.begin().await?;
        let Some(current) = catalog::lock(&txn, tenant.id).await? else {
            return Err(Error::TenantNotFound);
        };
        if current.state != TenantState::Provisioning {
            txn.commit().await?;
            return Ok(current);
        }
        let version = self.build(&txn, tenant).await?;
        catalog::set_ready(&txn, tenant.id, version).await?;
        txn.commit().await?;
        self.tenant(tenant.id).await
    }

    /// Builds `tenant`'s database where its placement says, from the server's template (which
    /// the caller has ensured), and pins its tables to the tenant; returns the template's
    /// version. Holds the template's lock (shared) in `txn`: creations copy the template side
    /// by side, and a template migration waits.
    async fn build(&self, txn: &impl ConnectionTrait, tenant: &Tenant) -> Result<i32> {
        let (server, database) = self.server_of(tenant)?;
        let template = self.template(server);
        let key = template.key();
        template_lock(&key).lock_shared(txn).await?;
        let version = catalog::template_version(txn, &key).await?;
        recreate_database(&self.inner.router, server, &database, template.database()).await?;
        fault::point("create:built");
        {
            // In a transaction: through a transaction pooler, a statement sqlx prepares and
            // then runs must not change server connections in between.
            let lease = self.lease(server, &database).await?;
            let pins = lease.connection().begin().await?;
            pins.execute_unprepared(LIFT_STATEMENT_TIMEOUT).await?;
            pin_tenant_tables(&pins, "public", tenant.id).await?;
            pins.commit().await?;
        }
        fault::point("create:pinned");
        Ok(version)
    }

    /// `tenant` as placed at `placement`, which must be where this store would keep it.
    fn placed_at(tenant: &Tenant, placement: &Placement) -> Tenant {
        Tenant {
            placement: placement.clone(),
            ..tenant.clone()
        }
    }

    // ANCHOR_END: provision
}

#[async_trait]
impl TenantStore for SeparateDbStore {
    fn strategy(&self) -> Strategy {
        Strategy::SeparateDb
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        new.check_placement(PlacementKind::Database)?;
        // An existing tenant keeps the server it was placed on; only a new one is placed.
        let tenant = match catalog::by_slug(&self.inner.control, &new.slug).await? {
            Some(_) if new.exclusive => {
                return Err(Error::TenantAlreadyExists(new.slug.to_string()));
            }
            Some(existing) => existing,
            None => {
                let placement = self.placement_for(&new).await?;
                catalog::claim(&self.inner.control, &new, &placement).await?
            }
        };
        catalog::resume_creation(tenant, |t| async move { self.provision(&t).await }).await
    }

    // ANCHOR_END: create_tenant

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        self.server_of(&tenant)?;
        catalog::delete_in_two_phases(&self.inner.control, &tenant, || {
            self.purge_at(&tenant, &tenant.placement)
        })
        .await
    }

    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.inner.options.migrations.latest();
        let mut report = MigrationReport {
            target_version: latest,
            tenants: Vec::new(),
            up_to_date: 0,
        };
        for server in 0..self.inner.router.servers.len() {
            let template = self.template(server);
            match template.migrate().await {
                Ok(Some(line)) => report.tenants.push(line),
                Ok(None) => {}
                Err(e) => report.tenants.push(TenantMigration {
                    tenant_id: None,
                    name: template.line_name(),
                    outcome: MigrationOutcome::Failed {
                        version: 0,
                        error: e.chain(),
                    },
                }),
            }
        }
        // More at once than the budget has connections would only queue in the router; per
        // server, not times the servers: the pending tenants may all sit on one.
        let o = &self.inner.options;
        let pools = o.connections_per_server;
        let concurrency = options
            .concurrency
            .clamp(1, usize::try_from(pools.max(1)).unwrap_or(1));
        report
            .migrate_behind(
                &self.inner.control,
                Strategy::SeparateDb,
                concurrency,
                |t| self.migrator().migrate_tenant(t),
            )
            .await?;
        Ok(report)
    }

    // ANCHOR_END: migrate_all

    // ANCHOR: scope
    async fn scope_with(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
        if mode == ScopeMode::ReadOnly {
            return self.scope_read(tenant, None).await;
        }
        tenant.ensure_servable()?;
        // The database name comes from the validated slug and must match the catalog.
        let (server, database) = self.server_of(tenant)?;
        self.bind_on(&self.inner.router, server, &database, tenant, mode)
            .await
    }

    async fn scope_read(&self, tenant: &Tenant, after: Option<Lsn>) -> Result<TenantScope> {
        tenant.ensure_servable()?;
        let (server, database) = self.server_of(tenant)?;
        if let Some(replicas) = &self.inner.replicas
            && let Some((at, route)) = &replicas.of[server]
            && let Some(scope) = route
                .read(tenant, after, || {
                    self.bind_on(
                        &replicas.router,
                        *at,
                        &database,
                        tenant,
                        ScopeMode::ReadOnly,
                    )
                })
                .await
        {
            // A read the standby cancels (a recovery conflict) runs again on the primary.
            let (me, tenant) = (self.clone(), tenant.clone());
            return Ok(scope.falling_back(Arc::new(move || {
                let (me, tenant, database) = (me.clone(), tenant.clone(), database.clone());
                Box::pin(async move {
                    let router = me.inner.router.clone();
                    me.bind_on(&router, server, &database, &tenant, ScopeMode::ReadOnly)
                        .await
                })
            })));
        }
        self.bind_on(
            &self.inner.router,
            server,
            &database,
            tenant,
            ScopeMode::ReadOnly,
        )
        .await
    }

    async fn write_lsn(&self, tenant: &Tenant) -> Result<Option<Lsn>> {
        let (server, _) = self.server_of(tenant)?;
        match self
            .inner
            .replicas
            .as_ref()
            .and_then(|r| r.of[server].as_ref())
        {
            Some((_, route)) => Ok(Some(route.write_lsn().await?)),
            None => Ok(None),
        }
    }

    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        let replicas = match &self.inner.replicas {
            Some(r) => r.router.connections(),
            None => tenancy_core::Connections::default(),
        };
        tenancy_core::Connections::of(&self.inner.control)
            + self.inner.router.connections()
            + replicas
    }

    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // Without a tenant there is only the control database, which holds no tenant table.
        UnscopedView::count(self.inner.control.begin().await?, None, table).await
    }

    fn placements(&self, _: StrategyDoor) -> &dyn Placements {
        self
    }
}

#[async_trait]
impl Placements for SeparateDbStore {
    fn catalog(&self) -> &DatabaseConnection {
        &self.inner.control
    }

    async fn placement_for(&self, new: &NewTenant) -> Result<Placement> {
        new.check_placement(PlacementKind::Database)?;
        let server = placement::place(
            &self.inner.router,
            &self.inner.control,
            new.server.as_deref(),
        )
        .await?;
        Ok(Placement::Database {
            server: self.inner.router.servers[server].name.clone(),
            database: self.database_for(&new.slug),
        })
    }

    fn tenant_version(&self) -> i32 {
        self.inner.options.migrations.latest()
    }

    async fn build_at(&self, tenant: &Tenant, placement: &Placement) -> Result<i32> {
        let at = Self::placed_at(tenant, placement);
        self.template(self.server_of(&at)?.0).ensure().await?;
        let txn = self.inner.control.begin().await?;
        let version = self.build(&txn, &at).await?;
        txn.commit().await?;
        Ok(version)
    }

    async fn purge_at(&self, tenant: &Tenant, placement: &Placement) -> Result<()> {
        let (server, database) = self.server_of(&Self::placed_at(tenant, placement))?;
        self.inner.router.evict(server, &database).await;
        let drop = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&database)
        );
        maintenance(&self.inner.router, server, &drop).await
    }

    async fn tables_at(&self, tenant: &Tenant, placement: &Placement) -> Result<TenantTables> {
        let (server, database) = self.server_of(&Self::placed_at(tenant, placement))?;
        // A connection of its own, direct, beside the server's budget: exports and moves are
        // rare and long, and must not hold a slot tenant traffic waits for.
        let url = self.inner.router.servers[server].database_url(&database, Via::Direct);
        let conn = <tenancy_core::sea_orm::sqlx::PgConnection as tenancy_core::sea_orm::sqlx::Connection>::connect(&url)
            .await
            .map_err(Error::from)?;
        Ok(TenantTables::own(conn, "public", TableSharing::Dedicated))
    }
}

impl SeparateDbStore {
    /// A scope bound to `tenant`'s `database` on server `server` of `router` (the primaries'
    /// or the replicas') in `mode`.
    async fn bind_on(
        &self,
        router: &Arc<Router>,
        server: usize,
        database: &str,
        tenant: &Tenant,
        mode: ScopeMode,
    ) -> Result<TenantScope> {
        // The scope holds its slot's connection (no pool checkout per statement) and gives it
        // back to the slot; the lease, and so the slot, is kept until then. Room in the budget
        // and the connection together are waited for at most the longer of the two timeouts.
        let srv = &router.servers[server];
        let wait = async {
            let lease = router.lease(server, database, Via::Tenant).await?;
            match lease.take_connection().await {
                Ok(taken) => Ok((lease, taken)),
                Err(e) => Err(srv.explain(e).await),
            }
        };
        let (lease, (conn, home)) =
            match tokio::time::timeout(self.inner.options.scope_wait(), wait).await {
                Ok(got) => got?,
                Err(_) => return Err(srv.explain(Error::PoolTimeout).await),
            };
        let lent =
            LentConnection::new(tenant.id, conn, Arc::new(home)).keep_until_given_back(lease);
        // Through a transaction pooler every scope is a transaction: sqlx prepares a statement
        // and runs it in two exchanges, which the pooler may send to two server connections
        // when no transaction holds one.
        if mode != ScopeMode::Autocommit || srv.pooled(Via::Tenant) {
            lent.begin_for(mode).await?;
        }
        // A database of its own: plain table names, and no session state to set or reset.
        let scope = TenantScope::on_connection(tenant.id, TableNamespace::Unqualified, lent);
        Ok(match mode {
            ScopeMode::ReadOnly => scope.reading_only(),
            ScopeMode::Transaction | ScopeMode::Autocommit => scope,
        })
    }
}

/// The replicas the options give the servers (`servers`, in the router's order: the control
/// server first), each a server of a router of their own with the same budget, and a route
/// whose probe of the primary is a pool of one connection to its maintenance database (the
/// catalog's pool on the control server).
async fn replicas_of(
    servers: &[Arc<Server>],
    options: &SeparateDbOptions,
    control: &DatabaseConnection,
) -> Result<Option<Replicas>> {
    let configured: Vec<Option<&ReplicaOptions>> = std::iter::once(options.replica.as_ref())
        .chain(options.servers.iter().map(|s| s.replica.as_ref()))
        .collect();
    if configured.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut on_replicas = Vec::new();
    let mut of = Vec::with_capacity(servers.len());
    for (i, (server, replica)) in servers.iter().zip(&configured).enumerate() {
        let Some(replica) = replica else {
            of.push(None);
            continue;
        };
        let url = url::Url::parse(&loopback_without_tls(&replica.url))
            .map_err(|e| Error::invalid("replica", e.to_string()))?;
        let probe = if i == 0 {
            control.get_postgres_connection_pool().clone()
        } else {
            let settings = PoolSettings {
                lazy: true,
                ..PoolSettings::new(&options.pool, 1)
            };
            connect_pool(server.url.as_str(), &settings)
                .await?
                .get_postgres_connection_pool()
                .clone()
        };
        of.push(Some((
            on_replicas.len(),
            Arc::new(ReplicaRoute::new(probe, (*replica).clone())?),
        )));
        on_replicas.push(Arc::new(Server::new(
            format!("{} (replica)", server.name),
            url,
            None,
            options.connections_per_server,
        )));
    }
    let mut settings = options.router();
    settings.retry_after = settings.retry_after.max(
        configured
            .iter()
            .flatten()
            .map(|r| r.retry_after)
            .min()
            .unwrap_or_default(),
    );
    Ok(Some(Replicas {
        router: Arc::new(Router::new(on_replicas, settings)),
        of,
    }))
}
