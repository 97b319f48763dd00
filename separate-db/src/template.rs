//! The template database of each server: made and migrated on first use, migrated first in
//! every run, and copied by `CREATE DATABASE ... TEMPLATE` into each new tenant's database;
//! and the `CREATE`/`DROP DATABASE` statements, run on a server's maintenance database. Below
//! the store, above the migrations it runs in the template.

use std::sync::Arc;

use tenancy_core::plumbing::catalog;
use tenancy_core::plumbing::sql::AdvisoryLock;
use tenancy_core::sea_orm::{ConnectionTrait, TransactionTrait};
use tenancy_core::{MigrationOutcome, Result, TenantMigration, quote_ident};

use crate::migrate::DatabaseMigrator;
use crate::placement::template_database;
use crate::router::Router;
use crate::server::Via;

/// The lock on one server's template database (`key` is its catalog name): creations take it
/// shared, template migrations exclusive.
pub(crate) fn template_lock(key: &str) -> AdvisoryLock {
    AdvisoryLock::new(format!("tenancy:template:{key}"))
}

// ANCHOR: maintenance
/// Runs a statement that cannot run in a transaction (`CREATE DATABASE`) on `server`'s
/// maintenance database, through the router (so within the budget), and closes that
/// connection again.
pub(crate) async fn maintenance(router: &Arc<Router>, server: usize, sql: &str) -> Result<()> {
    let srv = router.servers[server].clone();
    let lease = router
        .lease(server, &srv.maintenance_database(), Via::Direct)
        .await?;
    let res = lease.connection().execute_unprepared(sql).await;
    // Its slot is closed, not kept: tenants' connections should hold the budget.
    lease.discard().await;
    match res {
        Ok(_) => Ok(()),
        Err(e) => Err(srv.explain(e.into()).await),
    }
}
// ANCHOR_END: maintenance

/// Drops `database` on `server` if it exists (whatever an interrupted attempt left) and
/// creates it again as a copy of `template`.
pub(crate) async fn recreate_database(
    router: &Arc<Router>,
    server: usize,
    database: &str,
    template: &str,
) -> Result<()> {
    let quoted = quote_ident(database);
    router.evict(server, database).await;
    maintenance(
        router,
        server,
        &format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
    )
    .await?;
    maintenance(
        router,
        server,
        &format!(
            "CREATE DATABASE {quoted} TEMPLATE {}",
            quote_ident(template)
        ),
    )
    .await
}

/// One server's template database, with what working on it needs from the store.
#[derive(Debug)]
pub(crate) struct Template<'a> {
    /// The router, the catalog and the migrations, which the template is migrated with.
    migrator: DatabaseMigrator<'a>,
    /// The server's index in the router.
    server: usize,
    /// The template database's name, the same on every server.
    database: String,
}

impl<'a> Template<'a> {
    /// The template of `server`, named from the migrator's prefix.
    pub(crate) fn new(migrator: DatabaseMigrator<'a>, server: usize) -> Self {
        Template {
            database: template_database(migrator.prefix),
            migrator,
            server,
        }
    }

    /// The template database's name.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// The template's name in the catalog and in its lock: `database:<server>:<template>`.
    pub(crate) fn key(&self) -> String {
        format!(
            "database:{}:{}",
            self.migrator.router.servers[self.server].name, self.database
        )
    }

    /// The template's line in a migration report: `server/database`.
    pub(crate) fn line_name(&self) -> String {
        format!(
            "{}/{}",
            self.migrator.router.servers[self.server].name, self.database
        )
    }

    // ANCHOR: ensure_template
    /// The version of the server's template database, creating and migrating it first if the
    /// server has none yet.
    pub(crate) async fn ensure(&self) -> Result<i32> {
        let (control, server) = (self.migrator.control, self.server);
        let key = self.key();
        let version = catalog::template_version(control, &key).await?;
        if version > 0 {
            return Ok(version);
        }
        let txn = control.begin().await?;
        template_lock(&key).lock(&txn).await?;
        let version = catalog::template_version(&txn, &key).await?;
        if version > 0 {
            txn.commit().await?;
            return Ok(version);
        }
        // Whatever an interrupted attempt left is rebuilt from scratch.
        recreate_database(self.migrator.router, server, &self.database, "template0").await?;
        let version = self
            .migrator
            .migrate_database(server, &self.database, None)
            .await?;
        catalog::set_template_version(&txn, &key, version.1).await?;
        txn.commit().await?;
        tracing::info!(server = %self.migrator.router.servers[server].name, version = version.1, "template database ready");
        Ok(version.1)
    }
    // ANCHOR_END: ensure_template

    // ANCHOR: migrate_template
    /// Migrates the server's template, if it has one, under the template's lock (exclusive):
    /// its line of the migration report, or `None` when no tenant was ever placed there.
    pub(crate) async fn migrate(&self) -> Result<Option<TenantMigration>> {
        let key = self.key();
        let txn = self.migrator.control.begin().await?;
        template_lock(&key).lock(&txn).await?;
        let recorded = catalog::template_version(&txn, &key).await?;
        if recorded == 0 {
            // No tenant was ever placed here; the template is made, current, on first use.
            txn.commit().await?;
            return Ok(None);
        }
        let latest = self.migrator.migrations.latest();
        if recorded >= latest {
            // The fast path: the catalog's record, no connection to the template. (The
            // record is written after the template's own commit, so it can lag, never lead.)
            txn.commit().await?;
            return Ok(Some(TenantMigration {
                tenant_id: None,
                name: self.line_name(),
                outcome: MigrationOutcome::UpToDate { version: recorded },
            }));
        }
        let (from, to) = self
            .migrator
            .migrate_database(self.server, &self.database, None)
            .await?;
        catalog::set_template_version(&txn, &key, to).await?;
        txn.commit().await?;
        Ok(Some(TenantMigration {
            tenant_id: None,
            name: self.line_name(),
            outcome: if from == to {
                MigrationOutcome::UpToDate { version: to }
            } else {
                MigrationOutcome::Migrated { from, to }
            },
        }))
    }
    // ANCHOR_END: migrate_template
}
