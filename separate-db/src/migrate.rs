//! Tenant migrations, database by database: each database (and template) keeps its own
//! version in a one-row table, updated in the migration's own transaction. Below the store
//! and the templates, which lend it what it needs ([`DatabaseMigrator`]).

use std::sync::Arc;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::pin::pin_tenant_tables;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::plumbing::{catalog, fault};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::{MigrationOutcome, Result, Tenant, TenantId, TenantMigration};

use crate::placement::server_of;
use crate::router::{Lease, Router};
use crate::server::Via;

/// Lifts the statement timeout of tenant connections for the rest of a transaction.
pub(crate) const LIFT_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = 0";

/// The one-row table in every tenant database (and template) that records its version: the
/// authority a migration run reads, since the catalog lives in another database and cannot
/// commit together with it.
const VERSION_TABLE: &str = "tenancy_schema_version";

/// What migrating the store's databases needs, borrowed from the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatabaseMigrator<'a> {
    /// Reaches the databases, within each server's budget.
    pub(crate) router: &'a Arc<Router>,
    /// The catalog, which keeps a copy of each tenant's version.
    pub(crate) control: &'a DatabaseConnection,
    /// The application's tenant migrations.
    pub(crate) migrations: &'a TenantMigrations,
    /// The store's database prefix, which names each tenant's database.
    pub(crate) prefix: &'a str,
}

/// Begins a transaction on the lease's database, turning a timeout on a server that is down into
/// [`Error::Unavailable`](tenancy_core::Error::Unavailable).
async fn begin(lease: &Lease) -> Result<tenancy_core::sea_orm::DatabaseTransaction> {
    match lease.connection().begin().await {
        Ok(txn) => Ok(txn),
        Err(e) => Err(lease.server().explain(e.into()).await),
    }
}

impl DatabaseMigrator<'_> {
    // ANCHOR: migrate_database
    /// Brings `database` on `server` to the latest version in one transaction of its own,
    /// recording the version inside it; pins the tables to `tenant` when given. Returns
    /// (from, to). The pool is closed afterwards when the database is a template, which must
    /// have no connections to be copied.
    pub(crate) async fn migrate_database(
        &self,
        server: usize,
        database: &str,
        tenant: Option<TenantId>,
    ) -> Result<(i32, i32)> {
        // The template is reached directly: `CREATE DATABASE` copies it only when nothing is
        // connected to it, and a pooler would keep server connections open.
        let via = if tenant.is_some() {
            Via::Tenant
        } else {
            Via::Direct
        };
        let lease = self.router.lease(server, database, via).await?;
        let result = self.migrate_leased(&lease, tenant).await;
        if tenant.is_none() {
            // A template must have no connections to be copied, whatever happened here.
            drop(lease);
            self.router.evict(server, database).await;
        }
        result
    }

    async fn migrate_leased(&self, lease: &Lease, tenant: Option<TenantId>) -> Result<(i32, i32)> {
        let txn = begin(lease).await?;
        // Tenant connections may carry the store's statement timeout; a migration must not.
        txn.execute_unprepared(LIFT_STATEMENT_TIMEOUT).await?;
        if tenant.is_none() {
            // Tenant databases inherit the table from their template.
            txn.execute_unprepared(&format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\
                   one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL); \
                 INSERT INTO {VERSION_TABLE} (version) VALUES (0) ON CONFLICT DO NOTHING"
            ))
            .await?;
        }
        let from = txn
            .query_one_raw(stmt(
                &format!("SELECT version FROM {VERSION_TABLE} FOR UPDATE"),
                [],
            ))
            .await?
            .map(|r| r.try_get::<i32>("", "version"))
            .transpose()?
            .unwrap_or(0);
        let latest = self.migrations.latest();
        if from >= latest {
            txn.commit().await?;
            return Ok((from, from));
        }
        let to = self.migrations.apply(&txn, None, from).await?;
        if let Some(id) = tenant {
            pin_tenant_tables(&txn, "public", id).await?;
        }
        txn.execute_raw(stmt(
            &format!("UPDATE {VERSION_TABLE} SET version = $1"),
            [to.into()],
        ))
        .await?;
        if tenant.is_some() {
            fault::point("migrate:applied");
        }
        txn.commit().await?;
        Ok((from, to))
    }
    // ANCHOR_END: migrate_database

    // ANCHOR: migrate_tenant
    /// Migrates `tenant`'s database, then brings the catalog's copy of its version in line.
    /// Takes the migrator by value, so the run's closure can hand each tenant's future a copy.
    pub(crate) async fn migrate_tenant(self, tenant: Tenant) -> TenantMigration {
        let result: Result<MigrationOutcome> = async {
            let (server, database) = server_of(self.router, self.prefix, &tenant)?;
            let (from, to) = self
                .migrate_database(server, &database, Some(tenant.id))
                .await?;
            if from != to {
                fault::point("migrate:committed");
            }
            // The tenant's database holds the truth; the catalog copy serves the fast path
            // and is brought in line even when the database was already current (a run
            // interrupted between the two commits).
            catalog::set_schema_version(self.control, tenant.id, to).await?;
            Ok(if from == to {
                MigrationOutcome::UpToDate { version: to }
            } else {
                MigrationOutcome::Migrated { from, to }
            })
        }
        .await;
        TenantMigration::of_tenant(&tenant, result)
    }
    // ANCHOR_END: migrate_tenant
}
