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
    /// transaction-locally to `schema` (when given, and set back to the session's afterwards),
    /// and returns the new version. The caller commits, together with its record of the new
    /// version.
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
        if schema.is_some() {
            // Back to the session's path for the rest of the transaction: PostgreSQL plans a
            // prepared statement again whenever the search_path differs from the one it was
            // planned under, and the caller's statements that follow (pinning, the version
            // update) are prepared ones, the same for every tenant.
            txn.execute_unprepared("SET LOCAL search_path TO DEFAULT")
                .await?;
        }
        Ok(self.latest())
    }
}

// ANCHOR: pin
/// The statement that pins `table` (in `schema`, or unqualified and found on the
/// `search_path`) to `tenant`: a
/// `tenancy_pinned_tenant` check constraint, so that the database itself refuses a row of
/// another tenant, or a change of a row's tenant. For strategies that give a tenant a schema or
/// a database of its own; a schema copied from a template gets one per table that has a
/// `tenant_id` column.
pub fn pin_statement(schema: Option<&str>, table: &str, tenant: crate::TenantId) -> String {
    let target = match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(table),
    };
    format!(
        "ALTER TABLE {target} ADD CONSTRAINT tenancy_pinned_tenant CHECK (tenant_id = '{}')",
        tenant.as_uuid()
    )
}

/// The query that lists the tables of schema `$1` that have a `tenant_id` column and no pin
/// yet, one `t` per row, as [`pin_tenant_tables`] runs it (prepared, with the schema as `$1`).
pub fn unpinned_tables_sql(schema: &str) -> String {
    // Finding a schema's tables: pg_class has no index on its namespace, so a scan of it costs
    // in proportion to every table of every schema, and pinning N tenants' schemas one by one
    // would cost N². pg_depend is indexed by the object depended on, and a table always
    // depends on its schema when the schema was made by CREATE SCHEMA. `public` may be pinned
    // (PostgreSQL 14 and older record no dependencies on it); it only serves a tenant database
    // of its own, whose catalog is small, so it keeps the plain scan.
    let tables = if schema == "public" {
        "SELECT c.oid, c.relname FROM pg_class c \
         WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p')"
    } else {
        "SELECT c.oid, c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid \
         WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = to_regnamespace($1) \
           AND d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind IN ('r', 'p')"
    };
    format!(
        "SELECT c.relname AS t FROM ({tables}) c \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
           AND NOT a.attisdropped \
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k \
           WHERE k.conrelid = c.oid AND k.conname = 'tenancy_pinned_tenant') \
         ORDER BY c.relname"
    )
}

/// Pins every table of `schema` that has a `tenant_id` column and no pin yet (see
/// [`pin_statement`]) and returns how many it pinned. Idempotent; run it after every migration
/// so that tables added later are pinned too. The search ([`unpinned_tables_sql`]) is one
/// prepared statement, so a run that finds nothing new costs one round trip and no planning.
pub async fn pin_tenant_tables(
    conn: &impl ConnectionTrait,
    schema: &str,
    tenant: crate::TenantId,
) -> Result<usize> {
    let unpinned = conn
        .query_all_raw(crate::sql::stmt(
            &unpinned_tables_sql(schema),
            [schema.into()],
        ))
        .await?;
    for row in &unpinned {
        let table: String = row.try_get("", "t")?;
        conn.execute_unprepared(&pin_statement(Some(schema), &table, tenant))
            .await?;
    }
    Ok(unpinned.len())
}
// ANCHOR_END: pin
