//! Migrations, written with sea-orm-migration.
//!
//! - the control-plane catalog's own migrator is plumbing
//!   ([`crate::plumbing::control`]), run by every store at connect.
//! - [`TenantMigrations`]: the application's tenant tables, which the application gives to its
//!   store (core has none of its own). Run once for shared-schema, and once per tenant schema
//!   or tenant database (through the template) for the other two strategies.
//!
//! Tenant migrations use unqualified table names, so the same migration creates
//! `public.invoices` for shared-schema and `"tenant_acme".invoices` for a tenant schema: the
//! runner sets a transaction-local `search_path` before it calls [`MigrationTrait::up`].
//! The list is append-only: a tenant's `schema_version` counts how many of its migrations have
//! been applied, and the catalog records their names
//! ([`TenantMigrations::check_recorded`]), so a list that changed under existing tenants is
//! refused at connect instead of skipping or repeating a migration.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use sea_orm_migration::{MigrationTrait, SchemaManager};

use crate::error::{Error, Result};
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
    /// No migrations: a store refuses to connect with it
    /// ([`Error::MigrationsMismatch`]). Give the store the
    /// application's own with [`TenantMigrations::new`].
    fn default() -> Self {
        TenantMigrations::new(Vec::new())
    }
}

impl TenantMigrations {
    /// Wraps an application's list of tenant migrations, in order.
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

    // ANCHOR: check_recorded
    /// For strategy crates, at connect, after the control migrations and under the store's
    /// install lock: refuses an empty list, and a list that does not begin with the names the
    /// catalog recorded (a migration removed, renamed or reordered would make every tenant's
    /// `schema_version` point at another migration), with
    /// [`Error::MigrationsMismatch`]; then records the names of the migrations that are new.
    /// A catalog from before the names were recorded is checked by version alone: no tenant
    /// or template may be past the end of the list.
    pub async fn check_recorded(&self, conn: &impl ConnectionTrait) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::MigrationsMismatch(
                "the store was given no tenant migrations: set its options' `migrations` to \
                 the application's own (TenantMigrations::new(...))"
                    .into(),
            ));
        }
        let names: Vec<&str> = self.names().collect();
        let recorded = conn
            .query_all_raw(crate::sql::stmt(
                "SELECT version, name FROM tenancy.tenant_migrations ORDER BY version",
                [],
            ))
            .await?;
        if recorded.is_empty() {
            let row = conn
                .query_one_raw(crate::sql::stmt(
                    "SELECT greatest((SELECT max(schema_version) FROM tenancy.tenants), \
                     (SELECT max(schema_version) FROM tenancy.templates)) AS v",
                    [],
                ))
                .await?;
            let highest: i32 = row
                .map(|r| r.try_get::<Option<i32>>("", "v"))
                .transpose()?
                .flatten()
                .unwrap_or(0);
            if highest > self.latest() {
                return Err(Error::MigrationsMismatch(format!(
                    "tables here are at tenant migration {highest}, but the store was given \
                     {} ({}); a list is append-only: give the store the migrations its tenants \
                     were built with, in the same order, and add new ones at the end (this \
                     workspace's example domain moved to the tenancy-example crate: an \
                     application that had it first lists tenancy_example's migrations first)",
                    self.latest(),
                    names.join(", ")
                )));
            }
        }
        for row in &recorded {
            let version: i32 = row.try_get("", "version")?;
            let name: String = row.try_get("", "name")?;
            let given = usize::try_from(version - 1).ok().and_then(|i| names.get(i));
            if given != Some(&name.as_str()) {
                return Err(Error::MigrationsMismatch(format!(
                    "the catalog records tenant migration {version} as {name:?}, but the \
                     store was given {}; a list is append-only: give the store the migrations \
                     its tenants were built with, in the same order, and add new ones at the end",
                    match given {
                        Some(other) => format!("{other:?} there"),
                        None => format!("only {} migration(s)", names.len()),
                    }
                )));
            }
        }
        for (version, name) in (1..).zip(&names).skip(recorded.len()) {
            conn.execute_raw(crate::sql::stmt(
                "INSERT INTO tenancy.tenant_migrations (version, name) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
                [version.into(), (*name).into()],
            ))
            .await?;
        }
        Ok(())
    }
    // ANCHOR_END: check_recorded

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
        self.apply_until(txn, schema, from, self.latest()).await
    }

    /// [`TenantMigrations::apply`], stopping at version `to`: the migrations after `from` up
    /// to and including the `to`th. A strategy that tries migrations one at a time (a probe
    /// that names the one a database refuses) uses it.
    pub async fn apply_until(
        &self,
        txn: &DatabaseTransaction,
        schema: Option<&str>,
        from: i32,
        to: i32,
    ) -> Result<i32> {
        if let Some(schema) = schema {
            txn.execute_unprepared(&format!("SET LOCAL search_path TO {}", quote_ident(schema)))
                .await?;
        }
        let manager = SchemaManager::new(txn);
        let start = usize::try_from(from.max(0)).unwrap_or(0);
        let end = usize::try_from(to.max(0)).unwrap_or(0);
        for migration in self.0.iter().take(end).skip(start) {
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
        Ok(to.min(self.latest()))
    }
}
