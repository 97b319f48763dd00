//! Migrations, written with sea-orm-migration.
//!
//! - [`control`]: the catalog (tenants, users, memberships, API tokens) in the `tenancy`
//!   schema of the control database. Run once per control database.
//! - [`tenant`]: the domain's tables. Run once for shared-schema, and once per tenant schema
//!   or tenant database (through the template) for the other two strategies.
//!
//! Tenant migrations use unqualified table names, so the same migration creates
//! `public.projects` for shared-schema and `"tenant_acme".projects` for a tenant schema: the
//! runner sets a transaction-local `search_path` before it calls [`MigrationTrait::up`].
//! The list is append-only: a tenant's `schema_version` counts how many of its migrations have
//! been applied.

pub mod control;
pub mod tenant;

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use sea_orm_migration::{MigrationTrait, SchemaManager};

use crate::error::Result;
use crate::tenant::quote_ident;

/// An ordered, append-only list of tenant migrations, shared by a store and its runners.
#[derive(Clone)]
pub struct TenantMigrations(Arc<Vec<Box<dyn MigrationTrait>>>);

impl std::fmt::Debug for TenantMigrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|m| m.name()))
            .finish()
    }
}

impl Default for TenantMigrations {
    /// The domain's migrations from [`tenant::Migrator`].
    fn default() -> Self {
        use sea_orm_migration::MigratorTrait;
        TenantMigrations::new(tenant::Migrator::migrations())
    }
}

impl TenantMigrations {
    /// Wraps a list of migrations (for instance the domain's plus an application's own).
    pub fn new(migrations: Vec<Box<dyn MigrationTrait>>) -> Self {
        TenantMigrations(Arc::new(migrations))
    }

    /// The version a fully migrated tenant has: the number of migrations.
    pub fn latest(&self) -> i32 {
        i32::try_from(self.0.len()).unwrap_or(i32::MAX)
    }

    /// The migration names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|m| m.name())
    }

    /// Applies the migrations after `from` inside `txn`, with `search_path` set
    /// transaction-locally to `schema` (when given), and returns the new version. The caller
    /// commits, together with its record of the new version.
    pub async fn apply(
        &self,
        txn: &DatabaseTransaction,
        schema: Option<&str>,
        from: i32,
    ) -> Result<i32> {
        if let Some(schema) = schema {
            txn.execute_unprepared(&format!("SET LOCAL search_path TO {}", quote_ident(schema)))
                .await?;
        }
        let manager = SchemaManager::new(txn);
        let start = usize::try_from(from.max(0)).unwrap_or(0);
        for migration in self.0.iter().skip(start) {
            tracing::debug!(
                migration = migration.name(),
                schema,
                "applying tenant migration"
            );
            migration.up(&manager).await?;
        }
        Ok(self.latest())
    }
}

// ANCHOR: pin
/// A statement that pins every table of `schema` that has a `tenant_id` column and no pin yet
/// to `tenant`, with a `tenancy_pinned_tenant` check constraint: the database itself then
/// refuses a row of another tenant, or a change of a row's tenant. For strategies that give a
/// tenant a schema or a database of its own. Idempotent; run it after every migration so that
/// tables added later are pinned too.
pub fn pin_tenant_tables(schema: &str, tenant: crate::TenantId) -> String {
    // The schema name is a validated identifier; it is passed as a literal and quoted again
    // by format(%I) inside the block.
    format!(
        "DO $$ DECLARE t record; BEGIN FOR t IN \
           SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
           WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') AND NOT EXISTS \
             (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.conname = 'tenancy_pinned_tenant') \
         LOOP EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT tenancy_pinned_tenant CHECK (tenant_id = %L)', \
           {schema}, t.relname, '{id}'); END LOOP; END $$",
        schema = quote_literal(schema),
        id = tenant.as_uuid()
    )
}

// ANCHOR_END: pin

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
