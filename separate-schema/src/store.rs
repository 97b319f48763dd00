//! The separate-schema store: connecting, the tenant life cycle, per-schema migrations, and
//! binding a scope to a tenant's schema.

use std::sync::Arc;

use async_trait::async_trait;
use tenancy_core::plumbing::citus::{Node, NodePlacement};
use tenancy_core::plumbing::pin::{pin_statement, pin_tenant_tables};
use tenancy_core::plumbing::replica::ReplicaRoute;
use tenancy_core::plumbing::transfer::{TableSharing, TenantTables};
use tenancy_core::plumbing::{Placements, StrategyDoor, catalog, citus, connect_pool, fault};
use tenancy_core::sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::{
    Error, Lsn, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement,
    PlacementKind, Result, ScopeMode, Slug, Strategy, TableNamespace, Tenant, TenantId,
    TenantMigration, TenantScope, TenantState, TenantStore, UnscopedView, quote_ident,
};
use tokio::sync::RwLock;

use crate::citus::probe_migrations;
use crate::options::{PoolFor, SeparateSchemaOptions};
use crate::template::{CloneScript, CloneScriptCache, Template};

/// The separate-schema strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SeparateSchemaStore {
    /// Catalog, DDL, migrations: always direct.
    control: DatabaseConnection,
    /// Tenant traffic: the same pool, or one through a pooler.
    tenants: DatabaseConnection,
    options: SeparateSchemaOptions,
    /// The template's copy script, shared by the store's clones ([`Template`]).
    clone_script: Arc<CloneScriptCache>,
    /// The database is a Citus coordinator: tenant schemas are distributed schemas
    /// ([`crate::citus`]).
    citus: bool,
    /// The read replica, when the options name one: its pool and its route.
    replica: Option<(DatabaseConnection, Arc<ReplicaRoute>)>,
}

impl SeparateSchemaStore {
    /// Connects to `database_url`, installs the catalog and, when missing, the template schema.
    pub async fn connect(database_url: &str, options: SeparateSchemaOptions) -> Result<Self> {
        options.check()?;
        let control = connect_pool(database_url, &options.pool_for(PoolFor::Catalog)).await?;
        let citus = citus::version(&control).await?.is_some();
        // Tenant traffic has a pool of its own through a pooler, or to be held to a statement
        // timeout the catalog and DDL must not have.
        let tenants = match (&options.tenant_url, options.pool.statement_timeout) {
            (Some(url), _) => {
                connect_pool(url, &options.pool_for(PoolFor::TenantsThroughPooler)).await?
            }
            (None, Some(_)) => {
                connect_pool(database_url, &options.pool_for(PoolFor::Tenants)).await?
            }
            (None, None) => control.clone(),
        };
        let replica = match &options.replica {
            Some(_) if citus => {
                return Err(Error::Unsupported(
                    "a read replica of a Citus coordinator (each node would need its own)".into(),
                ));
            }
            Some(r) => {
                // Tenant traffic only: the catalog, notices and DDL stay on the primary.
                let pool = connect_pool(&r.url, &options.pool_for(PoolFor::Replica)).await?;
                let route =
                    ReplicaRoute::new(control.get_postgres_connection_pool().clone(), r.clone())?;
                Some((pool, Arc::new(route)))
            }
            None => None,
        };
        let store = SeparateSchemaStore {
            control,
            tenants,
            options,
            clone_script: Arc::new(RwLock::new(None)),
            citus,
            replica,
        };
        store.template().install().await?;
        Ok(store)
    }

    /// The direct pool (catalog, DDL). For strategy crates, operations and tests: it
    /// holds the catalog, so it is behind the strategy door's key
    /// ([`StrategyDoor`](tenancy_core::plumbing::StrategyDoor)), which an application never names.
    pub fn connection(&self, _: StrategyDoor) -> &DatabaseConnection {
        &self.control
    }

    /// Whether the database is a Citus coordinator, on which every tenant schema is a
    /// distributed schema (found at connect).
    pub fn on_citus(&self) -> bool {
        self.citus
    }

    /// The template schema, with what working on it needs from this store.
    fn template(&self) -> Template<'_> {
        Template {
            control: &self.control,
            options: &self.options,
            citus: self.citus,
            clone_script: &self.clone_script,
        }
    }

    // ANCHOR: schema_for
    /// The schema of the tenant with this slug.
    pub fn schema_for(&self, slug: &Slug) -> String {
        format!("{}{}", self.options.schema_prefix, slug)
    }

    // ANCHOR_END: schema_for

    // ANCHOR: provision
    /// Builds the tenant's schema and marks it ready, in one transaction: either the whole
    /// schema exists and the tenant is ready, or neither.
    async fn provision(&self, tenant: &Tenant) -> Result<Tenant> {
        let schema = self.schema_for(&tenant.slug);
        let script = self.template().clone_script().await?;
        let txn = self.control.begin().await?;
        let Some(current) = catalog::lock(&txn, tenant.id).await? else {
            return Err(Error::TenantNotFound);
        };
        if current.state != TenantState::Provisioning {
            txn.commit().await?;
            return Ok(current);
        }
        self.build(&txn, &script, &schema, tenant.id).await?;
        fault::point("create:built");
        catalog::set_ready(&txn, tenant.id, script.version).await?;
        txn.commit().await?;
        self.tenant(tenant.id).await
    }

    // ANCHOR_END: provision

    /// The DDL that builds a tenant's schema from the template, inside the provisioning
    /// transaction. A schema left by an earlier, interrupted attempt can only be an empty
    /// shell (the build is transactional), but it is cleared rather than trusted. On Citus the
    /// schema is made a distributed schema.
    fn build_statements(
        &self,
        script: &CloneScript,
        schema: &str,
        tenant: TenantId,
    ) -> Vec<String> {
        let schema_q = quote_ident(schema);
        let mut statements = Vec::with_capacity(script.body.len() + 8);
        if self.citus {
            statements.push(crate::citus::DISTRIBUTED_SCHEMAS.to_owned());
        }
        statements.push(format!("DROP SCHEMA IF EXISTS {schema_q} CASCADE"));
        statements.push(format!("CREATE SCHEMA {schema_q}"));
        statements.push(format!("SET LOCAL search_path TO {schema_q}"));
        statements.extend(script.body.iter().cloned());
        for table in &script.tenant_tables {
            statements.push(pin_statement(None, table, tenant));
        }
        statements
    }

    /// [`Self::build_statements`] as one script.
    fn build_sql(&self, script: &CloneScript, schema: &str, tenant: TenantId) -> String {
        let mut sql = String::new();
        for statement in self.build_statements(script, schema, tenant) {
            sql.push_str(&statement);
            sql.push_str(";\n");
        }
        sql
    }

    /// Builds a tenant's schema inside `txn`: one message on one server; on Citus a message
    /// per statement, as Citus sends a DDL message's whole text on to the worker, which
    /// refuses several statements in one.
    async fn build(
        &self,
        txn: &impl ConnectionTrait,
        script: &CloneScript,
        schema: &str,
        tenant: TenantId,
    ) -> Result<()> {
        if self.citus {
            for statement in self.build_statements(script, schema, tenant) {
                txn.execute_unprepared(&statement).await?;
            }
        } else {
            txn.execute_unprepared(&self.build_sql(script, schema, tenant))
                .await?;
        }
        Ok(())
    }

    /// The DDL a creation would run to build the schema of a tenant with `slug` and `id`
    /// (the template's copy and the tenant pins), without running it: what the scale runner
    /// hands to `psql` as the physical baseline of a creation. Run it inside a transaction (it
    /// sets a transaction-local `search_path`).
    pub async fn provisioning_sql(&self, slug: &Slug, id: TenantId) -> Result<String> {
        let script = self.template().clone_script().await?;
        Ok(self.build_sql(&script, &self.schema_for(slug), id))
    }

    /// The schema of `placement`, which must be the one this store gives `tenant`.
    fn own_schema(&self, tenant: &Tenant, placement: &Placement) -> Result<String> {
        let schema = self.schema_for(&tenant.slug);
        match placement {
            Placement::Schema { schema: s } if *s == schema => Ok(schema),
            _ => Err(Error::invalid(
                "placement",
                format!(
                    "{placement} is not where separate-schema keeps tenant {}",
                    tenant.slug
                ),
            )),
        }
    }

    // ANCHOR: migrate_tenant
    async fn migrate_tenant(&self, tenant: Tenant) -> TenantMigration {
        let schema = self.schema_for(&tenant.slug);
        let result: Result<MigrationOutcome> = async {
            let txn = self.control.begin().await?;
            let Some(current) = catalog::lock(&txn, tenant.id).await? else {
                return Err(Error::TenantNotFound);
            };
            let latest = self.options.migrations.latest();
            if current.state != TenantState::Ready || current.schema_version >= latest {
                txn.commit().await?;
                return Ok(MigrationOutcome::UpToDate {
                    version: current.schema_version,
                });
            }
            let to = self
                .options
                .migrations
                .apply(&txn, Some(&schema), current.schema_version)
                .await?;
            // Tables added by the migrations are pinned to the tenant like the first ones.
            pin_tenant_tables(&txn, &schema, tenant.id).await?;
            catalog::set_schema_version(&txn, tenant.id, to).await?;
            fault::point("migrate:applied");
            txn.commit().await?;
            fault::point("migrate:committed");
            Ok(MigrationOutcome::Migrated {
                from: current.schema_version,
                to,
            })
        }
        .await;
        TenantMigration::of_tenant(&tenant, result)
    }

    // ANCHOR_END: migrate_tenant
}

#[async_trait]
impl TenantStore for SeparateSchemaStore {
    fn strategy(&self) -> Strategy {
        Strategy::SeparateSchema
    }

    // ANCHOR: create_tenant
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let placement = self.placement_for(&new).await?;
        let tenant = catalog::claim(&self.control, &new, &placement).await?;
        catalog::resume_creation(tenant, |t| async move { self.provision(&t).await }).await
    }

    // ANCHOR_END: create_tenant

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        let schema = quote_ident(&self.schema_for(&tenant.slug));
        catalog::delete_in_two_phases(&self.control, &tenant, || async {
            self.control
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await?;
            Ok(())
        })
        .await
    }

    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.options.migrations.latest();
        // On Citus, what a distributed schema refuses is found before anything changes.
        let template_version =
            catalog::template_version(&self.control, &self.template().template_key()).await?;
        probe_migrations(&self.control, &self.options, self.citus, template_version).await?;
        let template = self.template().migrate_template().await?;
        let mut report = MigrationReport {
            target_version: latest,
            tenants: vec![template],
            up_to_date: 0,
        };
        report
            .migrate_behind(
                &self.control,
                Strategy::SeparateSchema,
                options.concurrency,
                |t| self.migrate_tenant(t),
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
        let namespace = self.namespace_of(tenant)?;
        // Schema-qualified statements need no session state, so a single read can skip the
        // transaction. Through a pooler, statements must stay inside one (see the options).
        match (mode, self.options.tenant_url.is_some()) {
            (ScopeMode::Autocommit, false) => Ok(TenantScope::autocommit(
                tenant.id,
                namespace,
                self.tenants.clone(),
            )),
            _ => Ok(TenantScope::in_transaction(
                tenant.id,
                namespace,
                self.tenants.begin().await?,
            )),
        }
    }

    async fn scope_read(&self, tenant: &Tenant, after: Option<Lsn>) -> Result<TenantScope> {
        let namespace = self.namespace_of(tenant)?;
        let read_only = |pool: &DatabaseConnection| {
            let (pool, namespace) = (pool.clone(), namespace.clone());
            async move {
                Ok(TenantScope::in_transaction(
                    tenant.id,
                    namespace,
                    pool.begin_with_config(None, Some(AccessMode::ReadOnly))
                        .await?,
                )
                .reading_only())
            }
        };
        if let Some((pool, route)) = &self.replica
            && let Some(scope) = route.read(tenant, after, || read_only(pool)).await
        {
            // A read the standby cancels (a recovery conflict) runs again on the primary.
            let (primary, id) = (self.tenants.clone(), tenant.id);
            return Ok(scope.falling_back(Arc::new(move || {
                let (primary, namespace) = (primary.clone(), namespace.clone());
                Box::pin(async move {
                    let txn = primary
                        .begin_with_config(None, Some(AccessMode::ReadOnly))
                        .await?;
                    Ok(TenantScope::in_transaction(id, namespace, txn).reading_only())
                })
            })));
        }
        read_only(&self.tenants).await
    }

    async fn write_lsn(&self, _tenant: &Tenant) -> Result<Option<Lsn>> {
        match &self.replica {
            Some((_, route)) => Ok(Some(route.write_lsn().await?)),
            None => Ok(None),
        }
    }

    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        let control = tenancy_core::Connections::of(&self.control);
        if self.options.tenant_url.is_some() || self.options.pool.statement_timeout.is_some() {
            control + tenancy_core::Connections::of(&self.tenants)
        } else {
            control
        }
    }

    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        // Unqualified: whatever the connection's default search_path finds, as forgetful
        // code would.
        UnscopedView::count(self.tenants.begin().await?, None, table).await
    }

    async fn start_node_move(&self, tenant: &Tenant, node: &str) -> Result<tenancy_core::Job> {
        let on_citus = citus::on_coordinator(self, self.citus)?;
        let tenant = self.tenant(tenant.id).await?;
        self.own_schema(&tenant, &tenant.placement)?;
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
impl Placements for SeparateSchemaStore {
    fn catalog(&self) -> &DatabaseConnection {
        &self.control
    }

    async fn placement_for(&self, new: &NewTenant) -> Result<Placement> {
        new.check_placement(PlacementKind::Schema)?;
        Ok(Placement::Schema {
            schema: self.schema_for(&new.slug),
        })
    }

    fn tenant_version(&self) -> i32 {
        self.options.migrations.latest()
    }

    async fn build_at(&self, tenant: &Tenant, placement: &Placement) -> Result<i32> {
        let schema = self.own_schema(tenant, placement)?;
        let script = self.template().clone_script().await?;
        let txn = self.control.begin().await?;
        self.build(&txn, &script, &schema, tenant.id).await?;
        txn.commit().await?;
        Ok(script.version)
    }

    async fn purge_at(&self, tenant: &Tenant, placement: &Placement) -> Result<()> {
        let schema = quote_ident(&self.own_schema(tenant, placement)?);
        self.control
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
        Ok(())
    }

    async fn tables_at(&self, tenant: &Tenant, placement: &Placement) -> Result<TenantTables> {
        let schema = self.own_schema(tenant, placement)?;
        let conn = self
            .control
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(Error::from)?;
        Ok(TenantTables::pooled(conn, &schema, TableSharing::Dedicated))
    }
}

// ANCHOR: node_placement
/// On Citus a tenant moves with its schema, a distributed schema, whole (the `citus` module).
#[async_trait]
impl NodePlacement for SeparateSchemaStore {
    fn catalog(&self) -> &DatabaseConnection {
        &self.control
    }

    async fn node_of(&self, tenant: &Tenant) -> Result<Node> {
        crate::citus::node_of(&self.control, &self.schema_for(&tenant.slug)).await
    }

    /// A distributed schema moves whole: nothing to isolate.
    async fn isolate(&self, _tenant: &Tenant) -> Result<()> {
        Ok(())
    }

    async fn relocate(&self, tenant: &Tenant, _from: &Node, to: &Node) -> Result<()> {
        crate::citus::move_schema(&self.control, &self.schema_for(&tenant.slug), to).await
    }
}
// ANCHOR_END: node_placement

impl SeparateSchemaStore {
    /// The guard before every scope: a servable tenant in its schema of this store; its
    /// namespace.
    fn namespace_of(&self, tenant: &Tenant) -> Result<TableNamespace> {
        tenant.ensure_servable()?;
        // The schema comes from the validated slug, never from elsewhere.
        let schema = self.schema_for(&tenant.slug);
        if tenant.placement
            != (Placement::Schema {
                schema: schema.clone(),
            })
        {
            return Err(Error::misplaced(tenant, "a schema of this store"));
        }
        Ok(TableNamespace::Schema(schema))
    }
}
