//! The shared-schema store: install, the tenant life cycle, migrations, and binding a scope.

use async_trait::async_trait;
use std::sync::Arc;
use tenancy_core::plumbing::control;
use tenancy_core::plumbing::sql::AdvisoryLock;
use tenancy_core::plumbing::transfer::{TableSharing, TenantTables};
use tenancy_core::plumbing::{Placements, StrategyDoor, catalog, citus, connect_pool, fault};
use tenancy_core::sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::sea_orm_migration::MigratorTrait;

use tenancy_core::plumbing::replica::ReplicaRoute;
use tenancy_core::{
    Error, Lsn, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement,
    PlacementKind, Result, ScopeMode, Strategy, TableNamespace, Tenant, TenantId, TenantMigration,
    TenantScope, TenantStore, UnscopedView,
};

use crate::binding::TenantPool;
use crate::citus::{distribute_tables, public_tables};
use crate::options::{Isolation, SharedSchemaOptions};
use crate::security::{check_in_force, secure_tables, tie_to_catalog};

/// The name under which the shared tables' version is kept in `tenancy.templates`.
const SHARED_TABLES: &str = "shared";
/// Serialises installs and migrations of one database's shared tables.
fn migration_lock() -> AdvisoryLock {
    AdvisoryLock::new("tenancy:shared-schema:migrate")
}

/// The shared-schema strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SharedSchemaStore {
    /// Catalog, migrations, purges: direct, as the connecting role.
    db: DatabaseConnection,
    /// Tenant traffic.
    traffic: Traffic,
    options: SharedSchemaOptions,
    /// The database is a Citus coordinator: the tables are distributed ([`crate::citus`]).
    citus: bool,
    /// The read replica, when the options name one: its tenant traffic and its route.
    replica: Option<Replica>,
}

/// Reads on a replica: a pool of the same kind as the primary's, and what decides when.
#[derive(Debug, Clone)]
struct Replica {
    traffic: Traffic,
    route: Arc<ReplicaRoute>,
}

#[derive(Debug, Clone)]
enum Traffic {
    /// Row-level security beneath the predicate (see [`TenantPool`]).
    Rls(TenantPool),
    /// The predicate alone, on a pool of the connecting role.
    PredicateOnly(DatabaseConnection),
}

impl SharedSchemaStore {
    /// Connects to `database_url` (a role that may create tables, and roles if the
    /// application role is missing), installs the catalog and, on a fresh database, the
    /// shared tables with their row-level security.
    pub async fn connect(database_url: &str, options: SharedSchemaOptions) -> Result<Self> {
        options.check()?;
        let db = connect_pool(database_url, &options.control_pool()).await?;
        let citus = citus::version(&db).await?.is_some();
        if citus {
            options.check_for_citus()?;
        }
        let tenant_url = options.tenant_url.as_deref().unwrap_or(database_url);
        let traffic = match options.isolation {
            Isolation::PredicateAndRls => {
                Traffic::Rls(TenantPool::open(tenant_url, &options, citus).await?)
            }
            Isolation::PredicateOnly => {
                Traffic::PredicateOnly(connect_pool(tenant_url, &options.tenant_pool()).await?)
            }
        };
        let replica = match &options.replica {
            None => None,
            Some(r) => {
                // The standby gets tenant traffic only: the set-up at connect, the catalog,
                // notices and DDL stay on the primary.
                let traffic = match options.isolation {
                    Isolation::PredicateAndRls => Traffic::Rls(
                        TenantPool::open_with(&r.url, &options, options.replica_pool(r), citus)
                            .await?,
                    ),
                    Isolation::PredicateOnly => Traffic::PredicateOnly(
                        connect_pool(&r.url, &options.replica_pool(r)).await?,
                    ),
                };
                let route =
                    ReplicaRoute::new(db.get_postgres_connection_pool().clone(), r.clone())?;
                Some(Replica {
                    traffic,
                    route: Arc::new(route),
                })
            }
        };
        let store = SharedSchemaStore {
            db,
            traffic,
            options,
            citus,
            replica,
        };
        store.install().await?;
        Ok(store)
    }

    /// The pool the store uses (as the connecting role). For strategy crates, operations and tests: it
    /// holds the catalog, so it is behind the strategy door's key
    /// ([`StrategyDoor`](tenancy_core::plumbing::StrategyDoor)), which an application never names.
    pub fn connection(&self, _: StrategyDoor) -> &DatabaseConnection {
        &self.db
    }

    /// The options the store runs with.
    pub fn options(&self) -> &SharedSchemaOptions {
        &self.options
    }

    /// Whether the database is a Citus coordinator, on which the store distributes the tables
    /// by `tenant_id` (found at connect).
    pub fn on_citus(&self) -> bool {
        self.citus
    }

    /// Applies the migrations after `from` to the shared tables and lays them out. On Citus
    /// one at a time, each followed by the distribution of what it created, so that the next
    /// may refer to a table the last one added (a key from a tenant table to new reference
    /// data needs the reference table distributed first).
    async fn migrate_from(
        &self,
        txn: &tenancy_core::sea_orm::DatabaseTransaction,
        from: i32,
    ) -> Result<i32> {
        let migrations = &self.options.migrations;
        let mut version = from;
        if self.citus {
            while version < migrations.latest() {
                let before = public_tables(txn).await?;
                version = migrations
                    .apply_until(txn, Some("public"), version, version + 1)
                    .await?;
                let mut created = public_tables(txn).await?;
                created.retain(|oid| !before.contains(oid));
                distribute_tables(txn, &created).await?;
            }
        } else {
            version = migrations.apply(txn, Some("public"), from).await?;
        }
        self.lay_out(txn).await?;
        Ok(version)
    }

    /// After migrations: on Citus, distributes what they added (before the policies, which
    /// Citus then sends to the shards); puts every tenant table under row-level security.
    async fn lay_out(&self, txn: &impl ConnectionTrait) -> Result<()> {
        if self.citus {
            distribute_tables(txn, &[]).await?;
        }
        secure_tables(txn, &self.options.app_role, self.citus).await
    }

    /// Begins a transaction for DDL: on Citus in sequential mode, so that DDL on distributed
    /// tables and the writes after it in the same transaction use one connection per node.
    async fn begin_ddl(&self) -> Result<tenancy_core::sea_orm::DatabaseTransaction> {
        let txn = self.db.begin().await?;
        if self.citus {
            txn.execute_unprepared("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
                .await?;
        }
        Ok(txn)
    }

    async fn install(&self) -> Result<()> {
        let txn = self.begin_ddl().await?;
        migration_lock().lock(&txn).await?;
        control::Migrator::up(&txn, None).await?;
        self.options.migrations.check_recorded(&txn).await?;
        if catalog::template_version(&txn, SHARED_TABLES).await? == 0 {
            let version = self.migrate_from(&txn, 0).await?;
            catalog::set_template_version(&txn, SHARED_TABLES, version).await?;
        } else if self.citus {
            // A database installed on one server, given Citus since.
            self.lay_out(&txn).await?;
        }
        // Also for databases installed before the tie existed.
        tie_to_catalog(&txn, self.citus).await?;
        if self.options.isolation == Isolation::PredicateAndRls {
            check_in_force(&txn, &self.options.app_role, self.citus).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn shared_version(&self) -> Result<i32> {
        catalog::template_version(&self.db, SHARED_TABLES).await
    }

    // ANCHOR: purge
    async fn purge(&self, tenant: &Tenant) -> Result<()> {
        // Children first, in batches, so each is a plain delete, not a cascade of unknown
        // size; through the fence of a tenant that was moved away, which then goes too.
        let mut tables = self.tables_at(tenant, &Placement::Shared).await?;
        tables
            .delete_rows(tenant.id, self.options.purge_batch)
            .await?;
        tables.unfence(tenant.id).await
    }

    // ANCHOR_END: purge
}

#[async_trait]
impl TenantStore for SharedSchemaStore {
    fn strategy(&self) -> Strategy {
        Strategy::SharedSchema
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        new.check_placement(PlacementKind::Shared)?;
        let tenant = catalog::claim(&self.db, &new, &Placement::Shared).await?;
        // Shared tables need nothing built: the tenant is ready as soon as it is recorded.
        catalog::resume_creation(tenant, |tenant| async move {
            let version = self.shared_version().await?;
            catalog::set_ready(&self.db, tenant.id, version).await?;
            self.tenant(tenant.id).await
        })
        .await
    }

    // ANCHOR_END: create_tenant

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        catalog::delete_in_two_phases(&self.db, &tenant, || self.purge(&tenant)).await
    }

    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, _options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.options.migrations.latest();
        let txn = self.begin_ddl().await?;
        migration_lock().lock(&txn).await?;
        let from = catalog::template_version(&txn, SHARED_TABLES).await?;
        let outcome = if from >= latest {
            MigrationOutcome::UpToDate { version: from }
        } else {
            // One migration for every tenant at once: that is the point of shared tables.
            self.migrate_from(&txn, from).await?;
            tie_to_catalog(&txn, self.citus).await?;
            catalog::set_template_version(&txn, SHARED_TABLES, latest).await?;
            MigrationOutcome::Migrated { from, to: latest }
        };
        let touched = catalog::set_all_schema_versions(&txn, latest).await?;
        let ready = catalog::count_ready(&txn, Strategy::SharedSchema).await?;
        let migrated = matches!(outcome, MigrationOutcome::Migrated { .. });
        if migrated {
            fault::point("migrate:applied");
        }
        txn.commit().await?;
        if migrated {
            fault::point("migrate:committed");
        }
        tracing::info!(from, latest, tenants = touched, "shared tables migrated");
        Ok(MigrationReport {
            target_version: latest,
            tenants: vec![TenantMigration {
                tenant_id: None,
                name: SHARED_TABLES.into(),
                outcome,
            }],
            up_to_date: ready,
        })
    }

    // ANCHOR_END: migrate_all

    // ANCHOR: scope
    async fn scope_with(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
        if mode == ScopeMode::ReadOnly {
            return self.scope_read(tenant, None).await;
        }
        self.check_servable(tenant)?;
        bind(&self.traffic, tenant, mode).await
    }

    async fn scope_read(&self, tenant: &Tenant, after: Option<Lsn>) -> Result<TenantScope> {
        self.check_servable(tenant)?;
        if let Some(r) = &self.replica
            && let Some(scope) = r
                .route
                .read(tenant, after, || async {
                    let bound = bind(&r.traffic, tenant, ScopeMode::ReadOnly).await;
                    if let (Err(_), Traffic::Rls(pool)) = (&bound, &r.traffic) {
                        // The replica failed: its warm connections may all be dead.
                        pool.forget_warm();
                    }
                    bound
                })
                .await
        {
            // A read the standby cancels (a recovery conflict) runs again on the primary.
            let (traffic, tenant) = (self.traffic.clone(), tenant.clone());
            return Ok(scope.falling_back(Arc::new(move || {
                let (traffic, tenant) = (traffic.clone(), tenant.clone());
                Box::pin(async move { bind(&traffic, &tenant, ScopeMode::ReadOnly).await })
            })));
        }
        bind(&self.traffic, tenant, ScopeMode::ReadOnly).await
    }

    async fn write_lsn(&self, _tenant: &Tenant) -> Result<Option<Lsn>> {
        match &self.replica {
            Some(r) => Ok(Some(r.route.write_lsn().await?)),
            None => Ok(None),
        }
    }

    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        tenancy_core::Connections::of(&self.db)
            + match &self.traffic {
                Traffic::Rls(pool) => pool.connections(),
                Traffic::PredicateOnly(pool) => tenancy_core::Connections::of(pool),
            }
    }

    // ANCHOR: unscoped_view
    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // The tenant pool, as code that forgot to bind a tenant would use it.
        let txn = match &self.traffic {
            Traffic::Rls(pool) => {
                let txn = pool.unbound().begin().await?;
                if let Some(role) = pool.role_for_unbound() {
                    txn.execute_unprepared(role).await?;
                }
                txn
            }
            Traffic::PredicateOnly(pool) => pool.begin().await?,
        };
        UnscopedView::count(txn, Some("public"), table).await
    }

    // ANCHOR_END: unscoped_view

    async fn start_node_move(&self, tenant: &Tenant, node: &str) -> Result<tenancy_core::Job> {
        let on_citus = citus::on_coordinator(self, self.citus)?;
        let tenant = self.tenant(tenant.id).await?;
        if tenant.placement != Placement::Shared {
            return Err(Error::misplaced(&tenant, "the shared tables of this store"));
        }
        citus::start_node_move(on_citus, &tenant, node).await
    }

    async fn run_node_move(&self, id: TenantId) -> Result<tenancy_core::Job> {
        citus::run_node_move(citus::on_coordinator(self, self.citus)?, id).await
    }

    async fn resume_node_moves(&self) -> Result<Vec<tenancy_core::Job>> {
        match citus::on_coordinator(self, self.citus) {
            Ok(on_citus) => citus::resume_node_moves(on_citus).await,
            Err(_) => Ok(Vec::new()),
        }
    }

    fn placements(&self, _: StrategyDoor) -> &dyn Placements {
        self
    }
}

#[async_trait]
impl Placements for SharedSchemaStore {
    fn catalog(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn placement_for(&self, new: &NewTenant) -> Result<Placement> {
        new.check_placement(PlacementKind::Shared)?;
        Ok(Placement::Shared)
    }

    fn tenant_version(&self) -> i32 {
        self.options.migrations.latest()
    }

    async fn build_at(&self, _tenant: &Tenant, placement: &Placement) -> Result<i32> {
        if *placement != Placement::Shared {
            return Err(Error::invalid(
                "placement",
                format!("{placement} is not a placement of shared-schema"),
            ));
        }
        // The shared tables are there already.
        self.shared_version().await
    }

    async fn purge_at(&self, tenant: &Tenant, placement: &Placement) -> Result<()> {
        if *placement != Placement::Shared {
            return Err(Error::invalid(
                "placement",
                format!("{placement} is not a placement of shared-schema"),
            ));
        }
        self.purge(tenant).await
    }

    async fn tables_at(&self, _tenant: &Tenant, placement: &Placement) -> Result<TenantTables> {
        if *placement != Placement::Shared {
            return Err(Error::invalid(
                "placement",
                format!("{placement} is not a placement of shared-schema"),
            ));
        }
        let conn = self
            .db
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(Error::from)?;
        Ok(TenantTables::pooled(conn, "public", TableSharing::Shared))
    }
}

impl SharedSchemaStore {
    /// The guard before every scope: a servable tenant in the shared tables.
    fn check_servable(&self, tenant: &Tenant) -> Result<()> {
        tenant.ensure_servable()?;
        if tenant.placement != Placement::Shared {
            return Err(Error::misplaced(tenant, "the shared tables of this store"));
        }
        Ok(())
    }
}

/// A scope bound to `tenant` in `mode` on `traffic` (the primary's or the replica's).
async fn bind(traffic: &Traffic, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope> {
    match (traffic, mode) {
        (Traffic::PredicateOnly(pool), ScopeMode::Autocommit) => Ok(TenantScope::autocommit(
            tenant.id,
            TableNamespace::Unqualified,
            pool.clone(),
        )),
        (Traffic::PredicateOnly(pool), ScopeMode::Transaction) => Ok(TenantScope::in_transaction(
            tenant.id,
            TableNamespace::Unqualified,
            pool.begin().await?,
        )),
        (Traffic::PredicateOnly(pool), ScopeMode::ReadOnly) => Ok(TenantScope::in_transaction(
            tenant.id,
            TableNamespace::Unqualified,
            pool.begin_with_config(None, Some(AccessMode::ReadOnly))
                .await?,
        )
        .reading_only()),
        (Traffic::Rls(pool), mode) => pool.scope(tenant, mode).await,
    }
}
