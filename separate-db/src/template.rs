//! The template database of each server: made and migrated on first use, migrated first in
//! every run, and copied by `CREATE DATABASE ... TEMPLATE` into each new tenant's database.

use tenancy_core::plumbing::catalog;
use tenancy_core::plumbing::sql::AdvisoryLock;
use tenancy_core::sea_orm::{ConnectionTrait, TransactionTrait};
use tenancy_core::{MigrationOutcome, Result, TenantMigration, quote_ident};

use crate::router::Via;
use crate::store::SeparateDbStore;

/// The lock on one server's template database (`key` is its catalog name): creations take it
/// shared, template migrations exclusive.
pub(crate) fn template_lock(key: &str) -> AdvisoryLock {
    AdvisoryLock::new(format!("tenancy:template:{key}"))
}

impl SeparateDbStore {
    pub(crate) fn template_key(&self, server: usize) -> String {
        format!(
            "database:{}:{}",
            self.inner.router.servers[server].name,
            self.template_database()
        )
    }

    /// The template's line in a migration report: `server/database`.
    pub(crate) fn template_line_name(&self, server: usize) -> String {
        format!(
            "{}/{}",
            self.inner.router.servers[server].name,
            self.template_database()
        )
    }

    // ANCHOR: maintenance
    /// Runs a statement that cannot run in a transaction (`CREATE DATABASE`) on `server`'s
    /// maintenance database, through the router (so within the budget), and closes that
    /// connection again.
    pub(crate) async fn maintenance(&self, server: usize, sql: &str) -> Result<()> {
        let srv = self.inner.router.servers[server].clone();
        let lease = self
            .inner
            .router
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
        &self,
        server: usize,
        database: &str,
        template: &str,
    ) -> Result<()> {
        let quoted = quote_ident(database);
        self.inner.router.evict(server, database).await;
        self.maintenance(
            server,
            &format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        )
        .await?;
        self.maintenance(
            server,
            &format!(
                "CREATE DATABASE {quoted} TEMPLATE {}",
                quote_ident(template)
            ),
        )
        .await
    }

    // ANCHOR: ensure_template
    /// The version of `server`'s template database, creating and migrating it first if the
    /// server has none yet.
    pub(crate) async fn ensure_template(&self, server: usize) -> Result<i32> {
        let key = self.template_key(server);
        let version = catalog::template_version(&self.inner.control, &key).await?;
        if version > 0 {
            return Ok(version);
        }
        let txn = self.inner.control.begin().await?;
        template_lock(&key).lock(&txn).await?;
        let version = catalog::template_version(&txn, &key).await?;
        if version > 0 {
            txn.commit().await?;
            return Ok(version);
        }
        // Whatever an interrupted attempt left is rebuilt from scratch.
        let template = self.template_database();
        self.recreate_database(server, &template, "template0")
            .await?;
        let version = self.migrate_database(server, &template, None).await?;
        catalog::set_template_version(&txn, &key, version.1).await?;
        txn.commit().await?;
        tracing::info!(server = %self.inner.router.servers[server].name, version = version.1, "template database ready");
        Ok(version.1)
    }
    // ANCHOR_END: ensure_template

    // ANCHOR: migrate_template
    pub(crate) async fn migrate_template(&self, server: usize) -> Result<Option<TenantMigration>> {
        let key = self.template_key(server);
        let txn = self.inner.control.begin().await?;
        template_lock(&key).lock(&txn).await?;
        let recorded = catalog::template_version(&txn, &key).await?;
        if recorded == 0 {
            // No tenant was ever placed here; the template is made, current, on first use.
            txn.commit().await?;
            return Ok(None);
        }
        let latest = self.inner.options.migrations.latest();
        if recorded >= latest {
            // The fast path: the catalog's record, no connection to the template. (The
            // record is written after the template's own commit, so it can lag, never lead.)
            txn.commit().await?;
            return Ok(Some(TenantMigration {
                tenant_id: None,
                name: self.template_line_name(server),
                outcome: MigrationOutcome::UpToDate { version: recorded },
            }));
        }
        let (from, to) = self
            .migrate_database(server, &self.template_database(), None)
            .await?;
        catalog::set_template_version(&txn, &key, to).await?;
        txn.commit().await?;
        Ok(Some(TenantMigration {
            tenant_id: None,
            name: self.template_line_name(server),
            outcome: if from == to {
                MigrationOutcome::UpToDate { version: to }
            } else {
                MigrationOutcome::Migrated { from, to }
            },
        }))
    }
    // ANCHOR_END: migrate_template
}
