//! The template schema: installed with the catalog, migrated first in every run, and read
//! into the script that copies it into each new tenant's schema. Below the store, which lends
//! it what it needs ([`Template`]); above the Citus probe it runs first.

use std::sync::Arc;

use tenancy_core::plumbing::catalog;
use tenancy_core::plumbing::control;
use tenancy_core::plumbing::sql::{AdvisoryLock, stmt};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tenancy_core::sea_orm_migration::MigratorTrait;
use tenancy_core::{Error, MigrationOutcome, Result, TenantMigration, quote_ident};
use tokio::sync::RwLock;

use crate::citus::{LOCAL_SCHEMAS, probe_migrations};
use crate::options::SeparateSchemaOptions;

/// The statements that copy the template into a new schema, built once per template version.
#[derive(Debug)]
pub(crate) struct CloneScript {
    pub(crate) version: i32,
    /// The statements, each without its `;`; they run with `search_path` set to the new
    /// schema.
    pub(crate) body: Vec<String>,
    /// The tables that have a `tenant_id` column, each pinned to the tenant in a copy.
    pub(crate) tenant_tables: Vec<String>,
}

/// The cached script: `None` until first needed, and again after the template changed.
pub(crate) type CloneScriptCache = RwLock<Option<Arc<CloneScript>>>;

/// The template schema, with what working on it needs from the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Template<'a> {
    /// The direct pool: catalog and DDL.
    pub(crate) control: &'a DatabaseConnection,
    /// Names, migrations.
    pub(crate) options: &'a SeparateSchemaOptions,
    /// The database is a Citus coordinator.
    pub(crate) citus: bool,
    /// The store's copy script, shared by its clones.
    pub(crate) clone_script: &'a CloneScriptCache,
}

impl Template<'_> {
    /// Serialises installs and template migrations of one database.
    fn template_lock(&self) -> AdvisoryLock {
        AdvisoryLock::new(format!("tenancy:{}", self.template_key()))
    }

    /// The template's name in the catalog and in its lock: `schema:<template>`.
    pub(crate) fn template_key(&self) -> String {
        format!("schema:{}", self.options.template_schema)
    }

    /// Installs the catalog and, when missing, the template schema, at the latest version.
    pub(crate) async fn install(&self) -> Result<()> {
        // On Citus, what a distributed schema refuses is found before anything is built.
        if self.citus {
            let installed = self
                .control
                .query_one_raw(stmt(
                    "SELECT to_regclass('tenancy.templates') IS NOT NULL AS installed",
                    [],
                ))
                .await?
                .map(|r| r.try_get::<bool>("", "installed"))
                .transpose()?
                .unwrap_or(false);
            let version = if installed {
                catalog::template_version(self.control, &self.template_key()).await?
            } else {
                0
            };
            probe_migrations(self.control, self.options, self.citus, version).await?;
        }
        let txn = self.control.begin().await?;
        if self.citus {
            txn.execute_unprepared(LOCAL_SCHEMAS).await?;
        }
        self.template_lock().lock(&txn).await?;
        control::Migrator::up(&txn, None).await?;
        self.options.migrations.check_recorded(&txn).await?;
        if catalog::template_version(&txn, &self.template_key()).await? == 0 {
            let template = quote_ident(&self.options.template_schema);
            txn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS {template}"))
                .await?;
            let version = self
                .options
                .migrations
                .apply(&txn, Some(&self.options.template_schema), 0)
                .await?;
            catalog::set_template_version(&txn, &self.template_key(), version).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    // ANCHOR: clone_script
    /// Reads the template's tables, keys and indexes and builds the script that copies them,
    /// every constraint and index under the template's own name (so that a later migration
    /// naming one, `DROP INDEX tasks_project_idx`, works on every tenant). Refuses templates
    /// holding what the copy would miss (sequences, views).
    async fn build_clone_script(&self, conn: &impl ConnectionTrait) -> Result<CloneScript> {
        let template = &self.options.template_schema;
        let version = catalog::template_version(conn, &self.template_key()).await?;
        let extras = conn
            .query_one_raw(stmt(
                "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind NOT IN ('r', 'p', 'i', 'I')",
                [template.as_str().into()],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if extras > 0 {
            return Err(Error::Unsupported(format!(
                "template schema {template} holds {extras} sequences or views, which a copy would share or miss"
            )));
        }
        let tables = conn
            .query_all_raw(stmt(
                "SELECT c.relname AS t, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                   AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS scoped \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.oid",
                [template.as_str().into()],
            ))
            .await?;
        let mut body = Vec::new();
        let mut tenant_tables = Vec::new();
        for row in &tables {
            let table: String = row.try_get("", "t")?;
            if row.try_get::<bool>("", "scoped")? {
                tenant_tables.push(table.clone());
            }
            body.push(format!(
                "CREATE TABLE {t} (LIKE {tmpl}.{t} INCLUDING ALL EXCLUDING INDEXES)",
                t = quote_ident(&table),
                tmpl = quote_ident(template)
            ));
        }
        // LIKE copies columns, defaults and checks. Keys, foreign keys and indexes are replayed
        // under their names; their definitions are read with search_path on the template, so
        // names come out unqualified and resolve to the new schema when replayed there.
        let txn = self.control.begin().await?;
        txn.execute_unprepared(&format!(
            "SET LOCAL search_path TO {}",
            quote_ident(template)
        ))
        .await?;
        let constraints = txn
            .query_all_raw(stmt(
                "SELECT c.conrelid::regclass::text AS t, c.conname AS name, pg_get_constraintdef(c.oid) AS def \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = $1 AND c.contype IN ('p', 'u', 'x', 'f') \
                 ORDER BY c.contype = 'f', c.oid",
                [template.as_str().into()],
            ))
            .await?;
        let indexes = txn
            .query_all_raw(stmt(
                // pg_get_indexdef qualifies the table whatever the search_path: unqualify it.
                "SELECT replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON ') AS def \
                 FROM pg_index i \
                 JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
                 WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k \
                   WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) \
                 ORDER BY i.indexrelid",
                [template.as_str().into()],
            ))
            .await?;
        txn.rollback().await?;
        for row in &indexes {
            let def: String = row.try_get("", "def")?;
            body.push(def);
        }
        for row in &constraints {
            let table: String = row.try_get("", "t")?;
            let name: String = row.try_get("", "name")?;
            let def: String = row.try_get("", "def")?;
            body.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {def}",
                quote_ident(&name)
            ));
        }
        Ok(CloneScript {
            version,
            body,
            tenant_tables,
        })
    }
    // ANCHOR_END: clone_script

    /// The copy script of the template's current version, built once and cached.
    pub(crate) async fn clone_script(&self) -> Result<Arc<CloneScript>> {
        if let Some(script) = self.clone_script.read().await.as_ref() {
            return Ok(script.clone());
        }
        let script = Arc::new(self.build_clone_script(self.control).await?);
        *self.clone_script.write().await = Some(script.clone());
        Ok(script)
    }

    /// Migrates the template under its lock and forgets the cached script: the run's first
    /// line.
    pub(crate) async fn migrate_template(&self) -> Result<TenantMigration> {
        let latest = self.options.migrations.latest();
        let txn = self.control.begin().await?;
        self.template_lock().lock(&txn).await?;
        let from = catalog::template_version(&txn, &self.template_key()).await?;
        let outcome = if from >= latest {
            MigrationOutcome::UpToDate { version: from }
        } else {
            self.options
                .migrations
                .apply(&txn, Some(&self.options.template_schema), from)
                .await?;
            catalog::set_template_version(&txn, &self.template_key(), latest).await?;
            MigrationOutcome::Migrated { from, to: latest }
        };
        txn.commit().await?;
        *self.clone_script.write().await = None;
        Ok(TenantMigration {
            tenant_id: None,
            name: self.options.template_schema.clone(),
            outcome,
        })
    }
}
