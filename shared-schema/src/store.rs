use std::time::Duration;

use async_trait::async_trait;
use tenancy_core::domain::{Page, PageRequest};
use tenancy_core::migration::{TenantMigrations, control};
use tenancy_core::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
};
use tenancy_core::sea_orm_migration::MigratorTrait;
use tenancy_core::{
    Error, MigrateOptions, MigrationOutcome, MigrationReport, NewTenant, Placement, Result,
    ScopeMode, Slug, Strategy, TENANT_TABLES, TableNamespace, Tenant, TenantId, TenantMigration,
    TenantScope, TenantState, TenantStore, UnscopedView, catalog, quote_ident,
};

/// The name under which the shared tables' version is kept in `tenancy.templates`.
const SHARED_TABLES: &str = "shared";
/// Serialises installs and migrations of one database (an arbitrary constant key).
const MIGRATION_LOCK: i64 = 0x7465_6e61_6e63_7901;

// ANCHOR: isolation
/// Which layers isolate tenant traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// The tenant predicate on every statement, and row-level security beneath it, with
    /// traffic running as the application role. The default; the one to ship.
    #[default]
    PredicateAndRls,
    /// The predicate alone, on the store's own connection role with no transaction-local
    /// setting. Saves the role switch (and, in autocommit mode, the transaction), but a
    /// statement that forgets the predicate sees every tenant when the connecting role is a
    /// superuser or `BYPASSRLS`. Kept to measure what row-level security costs, and to test
    /// the predicate layer on its own.
    PredicateOnly,
}
// ANCHOR_END: isolation

// ANCHOR: options
/// How a [`SharedSchemaStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct SharedSchemaOptions {
    /// Most connections the store holds.
    pub max_connections: u32,
    /// How long a request waits for a free connection before [`Error::PoolTimeout`].
    pub acquire_timeout: Duration,
    /// Which isolation layers are on.
    pub isolation: Isolation,
    /// The application role tenant traffic runs as (created if missing). Lowercase letters,
    /// digits and `_`.
    pub app_role: String,
    /// Rows deleted per statement when purging a deleted tenant.
    pub purge_batch: u32,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}

impl Default for SharedSchemaOptions {
    fn default() -> Self {
        SharedSchemaOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            isolation: Isolation::default(),
            app_role: "tenancy_app".into(),
            purge_batch: 5_000,
            migrations: TenantMigrations::default(),
        }
    }
}
// ANCHOR_END: options

/// The shared-schema strategy. See the crate documentation.
#[derive(Debug, Clone)]
pub struct SharedSchemaStore {
    db: DatabaseConnection,
    options: SharedSchemaOptions,
    /// `SET LOCAL ROLE "app"` ready to send; built once from the validated role name.
    set_role: String,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = tenancy_core::sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn valid_role(role: &str) -> bool {
    let mut chars = role.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && role.len() <= 63
        && !role.starts_with("pg_")
}

impl SharedSchemaStore {
    /// Connects to `database_url` (a role that may create tables, and roles if the
    /// application role is missing), installs the catalog and, on a fresh database, the
    /// shared tables with their row-level security.
    pub async fn connect(database_url: &str, options: SharedSchemaOptions) -> Result<Self> {
        if !valid_role(&options.app_role) {
            return Err(Error::Invalid {
                field: "app_role",
                reason: "must be lowercase letters, digits and '_', not starting with pg_".into(),
            });
        }
        let mut connect = ConnectOptions::new(tenancy_core::loopback_without_tls(database_url));
        connect
            .max_connections(options.max_connections)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        let db = Database::connect(connect).await?;
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
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK.into()],
        ))
        .await?;
        control::Migrator::up(&txn, None).await?;
        if catalog::template_version(&txn, SHARED_TABLES).await? == 0 {
            let version = self
                .options
                .migrations
                .apply(&txn, Some("public"), 0)
                .await?;
            self.secure_tables(&txn).await?;
            catalog::set_template_version(&txn, SHARED_TABLES, version).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    // ANCHOR: secure_tables
    /// Puts every table of `public` that has a `tenant_id` column under row-level security
    /// and grants the application role what tenant traffic needs. Idempotent; runs after
    /// every migration, so a table added later cannot be left without a policy.
    async fn secure_tables(&self, conn: &impl ConnectionTrait) -> Result<()> {
        let role = quote_ident(&self.options.app_role);
        let role_literal = format!("'{}'", self.options.app_role.replace('\'', "''"));
        // The role is cluster-wide: two databases installing at once may race to create it.
        conn.execute_unprepared(&format!(
            r#"
DO $$
BEGIN
    -- Only when missing: CREATE ROLE needs the CREATEROLE privilege even for a duplicate.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role_literal}) THEN
        CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    -- The connecting role must be able to SET ROLE to the application role.
    IF NOT pg_has_role(current_user, '{role_lit}', 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', '{role_lit}', current_user);
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO {role};
DO $$
DECLARE t record;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON public.%I', t.relname);
        -- (SELECT ...) makes the setting an init-plan evaluated once per statement, so the
        -- comparison can use the index on tenant_id. NULLIF: an unset or reset setting is
        -- '' or NULL, which matches no row.
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I '
            'USING (tenant_id = (SELECT NULLIF(current_setting(''tenancy.tenant_id'', true), '''')::uuid)) '
            'WITH CHECK (tenant_id = (SELECT NULLIF(current_setting(''tenancy.tenant_id'', true), '''')::uuid))',
            t.relname);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO %I', t.relname, '{role_lit}');
    END LOOP;
END $$;
"#,
            role_lit = self.options.app_role,
        ))
        .await?;
        Ok(())
    }
    // ANCHOR_END: secure_tables

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
        match tenant.state {
            TenantState::Ready => Ok(tenant),
            TenantState::Deleting => Err(Error::TenantNotReady {
                slug: tenant.slug.to_string(),
                state: tenant.state,
            }),
            // Shared tables need nothing built: the tenant is ready as soon as it is recorded.
            TenantState::Provisioning => {
                let version = self.shared_version().await?;
                catalog::set_ready(&self.db, tenant.id, version).await?;
                self.tenant(tenant.id).await
            }
        }
    }
    // ANCHOR_END: create_tenant

    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        catalog::by_id(&self.db, id)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Tenant> {
        catalog::by_slug(&self.db, slug)
            .await?
            .ok_or(Error::TenantNotFound)
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        catalog::list(&self.db, page).await
    }

    // ANCHOR: delete_tenant
    async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        let tenant = self.tenant(id).await?;
        catalog::set_state(&self.db, id, TenantState::Deleting).await?;
        self.purge(&tenant).await?;
        catalog::remove(&self.db, id).await
    }
    // ANCHOR_END: delete_tenant

    // ANCHOR: migrate_all
    async fn migrate_all(&self, _options: MigrateOptions) -> Result<MigrationReport> {
        let latest = self.options.migrations.latest();
        let txn = self.db.begin().await?;
        txn.execute_raw(stmt(
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK.into()],
        ))
        .await?;
        let from = catalog::template_version(&txn, SHARED_TABLES).await?;
        let outcome = if from >= latest {
            MigrationOutcome::UpToDate { version: from }
        } else {
            // One migration for every tenant at once: that is the point of shared tables.
            self.options
                .migrations
                .apply(&txn, Some("public"), from)
                .await?;
            self.secure_tables(&txn).await?;
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
        if tenant.state != TenantState::Ready {
            return Err(Error::TenantNotReady {
                slug: tenant.slug.to_string(),
                state: tenant.state,
            });
        }
        if tenant.placement != Placement::Shared {
            return Err(Error::Conflict(format!(
                "tenant {} is not placed in the shared tables of this store",
                tenant.slug
            )));
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
