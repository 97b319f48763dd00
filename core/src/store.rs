//! The [`TenantStore`] contract that every strategy implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::page::{Page, PageRequest};
use crate::plumbing::catalog::Job;
use crate::plumbing::transfer::{ExportFile, Manifest, OnProgress, TableLayout};
use crate::plumbing::{Placements, StrategyDoor};
use crate::scope::{ScopeMode, TenantScope};
pub use crate::strategy::Strategy;
use crate::tenant::{JobId, NewTenant, Slug, Tenant, TenantId};
use tokio::io::AsyncWrite;

/// How a run of [`TenantStore::migrate_all`] proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateOptions {
    /// How many tenants are migrated at once.
    pub concurrency: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions { concurrency: 4 }
    }
}

/// What happened to one tenant (or template) in a migration run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MigrationOutcome {
    /// Migrations were applied: the version went from `from` to `to`.
    Migrated {
        /// The version before.
        from: i32,
        /// The version now.
        to: i32,
    },
    /// Nothing was pending.
    UpToDate {
        /// The version it is at.
        version: i32,
    },
    /// This tenant failed and was left at its previous version; the others went on.
    Failed {
        /// The version it was left at.
        version: i32,
        /// What failed.
        error: String,
    },
}

/// One line of a [`MigrationReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMigration {
    /// `None` for a strategy's template.
    pub tenant_id: Option<TenantId>,
    /// The tenant's slug, or the template's name.
    pub name: String,
    #[serde(flatten)]
    /// What happened to it.
    pub outcome: MigrationOutcome,
}

/// The result of [`TenantStore::migrate_all`]: one line per tenant that had work, plus the
/// template, and a count of the tenants that were already up to date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// The version every tenant should be at.
    pub target_version: i32,
    /// The tenants (and template) that had work, with what became of each.
    pub tenants: Vec<TenantMigration>,
    /// Ready tenants that needed nothing.
    pub up_to_date: usize,
}

impl TenantMigration {
    /// The line for `tenant` after a migration attempt: its outcome, or, when the attempt
    /// failed, `Failed` at the version it had (with the error's whole chain, which is also
    /// logged).
    pub fn of_tenant(tenant: &crate::Tenant, result: Result<MigrationOutcome>) -> Self {
        let outcome = result.unwrap_or_else(|e| {
            tracing::warn!(tenant = %tenant.slug, error = %e, "tenant migration failed");
            MigrationOutcome::Failed {
                version: tenant.schema_version,
                error: e.chain(),
            }
        });
        TenantMigration {
            tenant_id: Some(tenant.id),
            name: tenant.slug.to_string(),
            outcome,
        }
    }
}

impl MigrationReport {
    // ANCHOR: migrate_behind
    /// The per-tenant part of a migration run, for strategies that migrate tenant by tenant:
    /// finds the ready tenants of `strategy`'s placement below
    /// [`MigrationReport::target_version`] (one indexed catalog
    /// query, so "nothing pending" is cheap however many tenants there are), migrates them
    /// `concurrency` at a time with `migrate`, adds a line for each, and counts the other
    /// ready tenants as up to date.
    pub async fn migrate_behind<F, Fut>(
        &mut self,
        catalog: &impl sea_orm::ConnectionTrait,
        strategy: Strategy,
        concurrency: usize,
        migrate: F,
    ) -> Result<()>
    where
        F: Fn(crate::Tenant) -> Fut,
        Fut: std::future::Future<Output = TenantMigration>,
    {
        use futures::StreamExt;
        let behind = crate::catalog::behind(catalog, self.target_version, strategy).await?;
        self.up_to_date = crate::catalog::count_ready(catalog, strategy)
            .await?
            .saturating_sub(behind.len());
        let lines: Vec<TenantMigration> = futures::stream::iter(behind)
            .map(migrate)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        self.tenants.extend(lines);
        Ok(())
    }
    // ANCHOR_END: migrate_behind

    /// The lines that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TenantMigration> {
        self.tenants
            .iter()
            .filter(|t| matches!(t.outcome, MigrationOutcome::Failed { .. }))
    }

    /// Whether every tenant reached the target.
    pub fn is_success(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// What a path that is bound to no tenant can see: used to prove that it sees no tenant rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnscopedView {
    /// The table is not reachable at all without a tenant (no such relation in this
    /// database or on this `search_path`).
    NoSuchTable,
    /// The table is reachable and this many rows are visible.
    Rows(u64),
}

impl UnscopedView {
    /// Counts the rows of tenant table `table` (in `schema`, or wherever the transaction's
    /// `search_path` finds it) through `txn`, which the strategy has prepared the way its
    /// unbound traffic runs, then rolls `txn` back. A missing relation is
    /// [`UnscopedView::NoSuchTable`].
    pub async fn count(
        txn: sea_orm::DatabaseTransaction,
        schema: Option<&str>,
        table: &str,
    ) -> Result<UnscopedView> {
        use sea_orm::ConnectionTrait;
        crate::check_identifier("table", table, 0)?;
        let name = match schema {
            Some(s) => format!("{}.{}", crate::quote_ident(s), crate::quote_ident(table)),
            None => crate::quote_ident(table),
        };
        let res = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM {name}"),
            ))
            .await;
        txn.rollback().await?;
        match res {
            Ok(row) => {
                let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
                Ok(UnscopedView::Rows(u64::try_from(n).unwrap_or(0)))
            }
            Err(e) if crate::is_undefined_table(&e) => Ok(UnscopedView::NoSuchTable),
            Err(e) => Err(e.into()),
        }
    }
}

/// One way of placing tenants: what an application calls. Object-safe: the demo holds an
/// `Arc<dyn TenantStore>`.
#[async_trait]
pub trait TenantStore: Send + Sync + std::fmt::Debug {
    /// Which strategy this is.
    fn strategy(&self) -> Strategy;

    /// Creates a tenant, or returns the existing one with this slug (creation is idempotent
    /// per slug). Crash-safe: a creation interrupted at any point is completed by calling
    /// this again with the same slug, and a half-built tenant is never served.
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant>;

    /// The tenant with this id, or [`crate::Error::TenantNotFound`].
    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        crate::catalog::get(self.placements(StrategyDoor).catalog(), id).await
    }

    /// The tenant with this slug, or [`crate::Error::TenantNotFound`].
    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Tenant> {
        crate::catalog::get_by_slug(self.placements(StrategyDoor).catalog(), slug).await
    }

    /// A page of tenants in creation order.
    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        crate::catalog::list(self.placements(StrategyDoor).catalog(), page).await
    }

    /// Suspends the tenant: its data stays (and can be exported), but no scope is bound for
    /// it ([`crate::Error::TenantSuspended`]) until [`TenantStore::resume`]; every process that
    /// heeds the catalog's notices stops serving it within a second. Returns it as it is now.
    /// Only a `ready` tenant ([`crate::Error::TenantNotReady`] otherwise).
    async fn suspend(&self, id: TenantId) -> Result<Tenant> {
        crate::catalog::set_suspended(self.placements(StrategyDoor).catalog(), id, true).await
    }

    /// Resumes a suspended tenant (a tenant not suspended is returned as it is).
    async fn resume(&self, id: TenantId) -> Result<Tenant> {
        crate::catalog::set_suspended(self.placements(StrategyDoor).catalog(), id, false).await
    }

    /// Puts the tenant on plan `plan` by name (`None`: the application's default plan) and
    /// returns it as it is now; every process that heeds the catalog's notices applies the new
    /// plan within a second. The store does not know the application's plans: check the name
    /// against [`crate::quota::Plans`] first.
    async fn set_plan(&self, id: TenantId, plan: Option<&str>) -> Result<Tenant> {
        if let Some(name) = plan {
            crate::TextRule::required(63).check("plan", name)?;
        }
        crate::catalog::set_plan(self.placements(StrategyDoor).catalog(), id, plan).await
    }

    /// The room the tenant's tables take, read now from one snapshot (see
    /// [`crate::usage::Storage`]): [`TenantStore::usage`]'s storage alone.
    async fn storage(&self, tenant: &Tenant) -> Result<crate::usage::Storage> {
        self.placements(StrategyDoor)
            .tables_at(tenant, &tenant.placement)
            .await?
            .storage(tenant.id)
            .await
    }

    /// The tenant's usage: what its scopes sent in this process, the room its tables take
    /// (read now, from one snapshot) and, where the store runs on Citus and tracks tenants
    /// (`citus.stat_tenants_track = 'all'`), Citus' own statistics of it. A suspended tenant's
    /// usage is read too.
    async fn usage(&self, tenant: &Tenant) -> Result<crate::usage::TenantUsage> {
        let mut tables = self
            .placements(StrategyDoor)
            .tables_at(tenant, &tenant.placement)
            .await?;
        let storage = tables.storage(tenant.id).await?;
        let citus = tables.citus_stats(tenant.id).await?;
        Ok(crate::usage::TenantUsage {
            statements: crate::usage::statements_of(tenant.id),
            storage,
            citus,
        })
    }

    /// Deletes a tenant in two phases: marks it `deleting` (it stops being served), purges its
    /// data, then removes it from the catalog. An interrupted deletion is finished by calling
    /// this again. Never touches another tenant.
    async fn delete_tenant(&self, id: TenantId) -> Result<()>;

    /// Brings every ready tenant (and the strategy's template, if any) to the latest tenant
    /// migration and reports on each.
    async fn migrate_all(&self, options: MigrateOptions) -> Result<MigrationReport>;

    /// The one door to tenant data: a handle bound to `tenant`. Refuses tenants that are not
    /// ready with [`crate::Error::TenantNotReady`].
    async fn scope_with(&self, tenant: &Tenant, mode: ScopeMode) -> Result<TenantScope>;

    /// [`TenantStore::scope_with`] in the default, transactional mode.
    async fn scope(&self, tenant: &Tenant) -> Result<TenantScope> {
        self.scope_with(tenant, ScopeMode::Transaction).await
    }

    /// A read-only scope ([`ScopeMode::ReadOnly`]) that sees at least everything written up
    /// to `after`, a position a write's [`TenantStore::write_lsn`] gave: served by the
    /// tenant's read replica when the store has one and the replica may serve it (up, within
    /// its lag bound, replayed past `after` within its wait; see [`crate::plumbing::replica`]),
    /// else by the primary. A store without replicas (the default) always uses the primary.
    async fn scope_read(&self, tenant: &Tenant, after: Option<crate::Lsn>) -> Result<TenantScope> {
        let _ = after;
        self.scope_with(tenant, ScopeMode::ReadOnly).await
    }

    /// Where the primary that holds `tenant`'s rows has written up to now, when the store
    /// reads from a replica for it: called after a write commits, it is a position a read
    /// must wait for to see that write ([`TenantStore::scope_read`]). `None` when the store
    /// has no replica for the tenant (every read sees every write then).
    async fn write_lsn(&self, tenant: &Tenant) -> Result<Option<crate::Lsn>> {
        let _ = tenant;
        Ok(None)
    }

    /// Counts the rows of tenant table `table` as seen by the store's connections when no
    /// tenant is bound: the path code would take if it forgot to bind one. Must never see a
    /// tenant's rows. `table` is a table name of the application's tenant tables (a plain
    /// identifier; other text is refused).
    async fn unscoped_view(&self, table: &str) -> Result<UnscopedView>;

    /// The connections the store holds right now, over all its pools (for metrics).
    fn connections(&self) -> Connections;

    /// The job with this id (a move, in a store that moves tenants), or
    /// [`crate::Error::NotFound`].
    async fn job(&self, id: JobId) -> Result<Job> {
        crate::catalog::job(self.placements(StrategyDoor).catalog(), id)
            .await?
            .ok_or(crate::Error::NotFound("job"))
    }

    /// On a Citus cluster: records a move of `tenant` to the worker `node` (`host:port`) as
    /// a job in the catalog, and returns it; [`TenantStore::run_node_move`] drives it (see
    /// [`crate::plumbing::citus::start_node_move`]). The tenant is served all along.
    /// Elsewhere, [`crate::Error::Unsupported`].
    async fn start_node_move(&self, tenant: &Tenant, node: &str) -> Result<Job> {
        let _ = (tenant, node);
        Err(crate::Error::Unsupported(format!(
            "{} does not place tenants on Citus workers here: moving between nodes needs \
             shared-schema or separate-schema on a Citus coordinator",
            self.strategy()
        )))
    }

    /// Drives the node move recorded on tenant `id` to its end and returns its job (`done`,
    /// or `failed` with its error).
    async fn run_node_move(&self, id: TenantId) -> Result<Job> {
        let _ = id;
        Err(crate::Error::Unsupported(format!(
            "{} has no node moves",
            self.strategy()
        )))
    }

    /// [`TenantStore::start_node_move`] and [`TenantStore::run_node_move`] in one call.
    async fn move_to_node(&self, tenant: &Tenant, node: &str) -> Result<Job> {
        self.start_node_move(tenant, node).await?;
        self.run_node_move(tenant.id).await
    }

    /// On a Citus cluster: finishes the node moves a stopped process left, and returns their
    /// jobs. Elsewhere nothing.
    async fn resume_node_moves(&self) -> Result<Vec<Job>> {
        Ok(Vec::new())
    }

    /// Exports `tenant` (ready, or being moved) to `out`: the backup of one tenant, every
    /// table of the application's with its rows (see [`crate::plumbing::transfer`] for the
    /// file).
    async fn export(
        &self,
        tenant: &Tenant,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        progress: OnProgress<'_>,
    ) -> Result<Manifest> {
        crate::transfer::export_tenant(self.placements(StrategyDoor), tenant, out, progress).await
    }

    /// Restores an export into a new tenant `new` (in the store's own placement, or the one
    /// `new` asks for): the file is checked whole first, and a file that fails is refused
    /// with [`crate::Error::BadExport`] before anything is created. The slug must be free
    /// ([`crate::Error::TenantAlreadyExists`] otherwise: an import never merges into a
    /// tenant). If the rows cannot go in, the new tenant is deleted again.
    async fn import(
        &self,
        new: NewTenant,
        input: &mut dyn ExportFile,
        progress: OnProgress<'_>,
    ) -> Result<Tenant> {
        crate::transfer::import_tenant(self, self.placements(StrategyDoor), new, input, progress)
            .await
    }

    /// Where each of `tenant`'s tables physically is (database, schema, table), how many of
    /// its rows it holds, and the first `sample` of them: what the demo's explorer shows.
    async fn table_layout(&self, tenant: &Tenant, sample: u32) -> Result<Vec<TableLayout>> {
        let mut tables = self
            .placements(StrategyDoor)
            .tables_at(tenant, &tenant.placement)
            .await?;
        tables.layout(tenant.id, sample).await
    }

    /// For strategy crates: the store's placement operations and catalog pool, behind the
    /// strategy door's key ([`StrategyDoor`], in [`crate::plumbing`]), which an application
    /// never imports.
    fn placements(&self, door: StrategyDoor) -> &dyn Placements;
}

/// The connections a store holds, from [`TenantStore::connections`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// Open connections, in use or idle.
    pub open: u32,
    /// Of those, the idle ones.
    pub idle: u32,
}

impl Connections {
    /// The connections of one sea-orm pool.
    pub fn of(pool: &sea_orm::DatabaseConnection) -> Self {
        let p = pool.get_postgres_connection_pool();
        Connections {
            open: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
        }
    }
}

impl std::ops::Add for Connections {
    type Output = Connections;
    fn add(self, other: Connections) -> Connections {
        Connections {
            open: self.open + other.open,
            idle: self.idle + other.idle,
        }
    }
}
