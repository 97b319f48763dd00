//! The shared-schema store: install, the tenant life cycle, migrations, and binding a scope.

use async_trait::async_trait;
use tenancy_core::migration::control;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::sea_orm_migration::MigratorTrait;
use tenancy_core::sql::{AdvisoryLock, stmt};
use tenancy_core::{
    Error, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement, Result,
    ScopeMode, Strategy, TENANT_TABLES, TableNamespace, Tenant, TenantId, TenantMigration,
    TenantScope, TenantStore, UnscopedView, catalog, connect_pool, quote_ident,
};

use crate::options::{Isolation, SharedSchemaOptions};
use crate::security::secure_tables;

/// The name under which the shared tables' version is kept in `tenancy.templates`.
const SHARED_TABLES: &str = "shared";
/// Serialises installs and migrations of one database's shared tables.
fn migration_lock() -> AdvisoryLock {
    AdvisoryLock::new("tenancy:shared-schema:migrate")
}

/// The shared-schema strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SharedSchemaStore {
    db: DatabaseConnection,
    options: SharedSchemaOptions,
    /// `SET LOCAL ROLE "app"` ready to send; built once from the validated role name.
    set_role: String,
}

impl SharedSchemaStore {
    /// Connects to `database_url` (a role that may create tables, and roles if the
    /// application role is missing), installs the catalog and, on a fresh database, the
    /// shared tables with their row-level security.
    pub async fn connect(database_url: &str, options: SharedSchemaOptions) -> Result<Self> {
        options.check()?;
        let db = connect_pool(database_url, &options.pool()).await?;
        let set_role = format!("SET LOCAL ROLE {}", quote_ident(&options.app_role));
        let store = SharedSchemaStore {
            db,
            options,
            set_role,
        };
        store.install().await?;
        Ok(store)
    }

    /// The pool the store uses (as the connecting role). For operations and tests.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The options the store runs with.
    pub fn options(&self) -> &SharedSchemaOptions {
        &self.options
    }

    async fn install(&self) -> Result<()> {
        let txn = self.db.begin().await?;
        migration_lock().lock(&txn).await?;
        control::Migrator::up(&txn, None).await?;
        if catalog::template_version(&txn, SHARED_TABLES).await? == 0 {
            let version = self
                .options
                .migrations
                .apply(&txn, Some("public"), 0)
                .await?;
            secure_tables(&txn, &self.options.app_role).await?;
            catalog::set_template_version(&txn, SHARED_TABLES, version).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn shared_version(&self) -> Result<i32> {
        catalog::template_version(&self.db, SHARED_TABLES).await
    }

    // ANCHOR: purge
    async fn purge(&self, tenant: &Tenant) -> Result<()> {
        let batch = i64::from(self.options.purge_batch.max(1));
        // Children first, so each batch is a plain delete, not a cascade of unknown size.
        for table in TENANT_TABLES.iter().rev() {
            loop {
                let txn = self.db.begin().await?;
                txn.execute_raw(stmt(
                    "SELECT set_config('tenancy.tenant_id', $1, true)",
                    [tenant.id.to_string().into()],
                ))
                .await?;
                let deleted = txn
                    .execute_raw(stmt(
                        &format!(
                            "DELETE FROM public.{t} WHERE tenant_id = $1 AND ctid = ANY(ARRAY(\
                             SELECT ctid FROM public.{t} WHERE tenant_id = $1 LIMIT $2))",
                            t = quote_ident(table)
                        ),
                        [tenant.id.as_uuid().into(), batch.into()],
                    ))
                    .await?
                    .rows_affected();
                txn.commit().await?;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(())
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
        let (tenant, _inserted) =
            catalog::insert_provisioning(&self.db, &new.slug, &new.name, &Placement::Shared)
                .await?;
        // Shared tables need nothing built: the tenant is ready as soon as it is recorded.
        catalog::resume_creation(tenant, |tenant| async move {
            let version = self.shared_version().await?;
            catalog::set_ready(&self.db, tenant.id, version).await?;
            self.tenant(tenant.id).await
        })
        .await
    }
    // ANCHOR_END: create_tenant

    fn catalog(&self) -> &DatabaseConnection {
        &self.db
    }

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        catalog::delete_in_two_phases(&self.db, &tenant, || self.purge(&tenant)).await
    }
    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, _options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.options.migrations.latest();
        let txn = self.db.begin().await?;
        migration_lock().lock(&txn).await?;
        let from = catalog::template_version(&txn, SHARED_TABLES).await?;
        let outcome = if from >= latest {
            MigrationOutcome::UpToDate { version: from }
        } else {
            // One migration for every tenant at once: that is the point of shared tables.
            self.options
                .migrations
                .apply(&txn, Some("public"), from)
                .await?;
            secure_tables(&txn, &self.options.app_role).await?;
            catalog::set_template_version(&txn, SHARED_TABLES, latest).await?;
            MigrationOutcome::Migrated { from, to: latest }
        };
        let touched = catalog::set_all_schema_versions(&txn, latest).await?;
        let ready = catalog::count_ready(&txn).await?;
        txn.commit().await?;
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
        tenant.ensure_ready()?;
        if tenant.placement != Placement::Shared {
            return Err(Error::misplaced(tenant, "the shared tables of this store"));
        }
        match (self.options.isolation, mode) {
            (Isolation::PredicateOnly, ScopeMode::Autocommit) => Ok(TenantScope::autocommit(
                tenant.id,
                TableNamespace::Unqualified,
                self.db.clone(),
            )),
            (Isolation::PredicateOnly, ScopeMode::Transaction) => {
                let txn = self.db.begin().await?;
                Ok(TenantScope::in_transaction(
                    tenant.id,
                    TableNamespace::Unqualified,
                    txn,
                ))
            }
            // Row-level security reads a transaction-local setting, so even an autocommit
            // request gets a transaction. Role and setting go in one round trip; the id is a
            // UUID we formatted, so it is safe as a literal.
            (Isolation::PredicateAndRls, _) => {
                let txn = self.db.begin().await?;
                txn.execute_unprepared(&format!(
                    "{}; SELECT set_config('tenancy.tenant_id', '{}', true)",
                    self.set_role,
                    tenant.id.as_uuid()
                ))
                .await?;
                Ok(TenantScope::in_transaction(
                    tenant.id,
                    TableNamespace::Unqualified,
                    txn,
                ))
            }
        }
    }
    // ANCHOR_END: scope

    fn connections(&self) -> tenancy_core::Connections {
        tenancy_core::Connections::of(&self.db)
    }

    // ANCHOR: unscoped_view
    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView> {
        let txn = self.db.begin().await?;
        if self.options.isolation == Isolation::PredicateAndRls {
            txn.execute_unprepared(&self.set_role).await?;
        }
        UnscopedView::count(txn, Some("public"), table).await
    }
    // ANCHOR_END: unscoped_view
}
