//! Shared set-up for the criterion benches: databases on a real PostgreSQL (`DATABASE_URL`,
//! or the embedded server of the testkit), stores of every strategy (opened as the demo opens
//! them) and plain single-tenant baselines, seeded outside the timed part.

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tenancy_core::domain::projects::Project;
use tenancy_core::domain::seed;
use tenancy_core::migration::TenantMigrations;
use tenancy_core::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait,
};
use tenancy_core::sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use tenancy_core::{NewTenant, Slug, Strategy, Tenant, TenantScope, TenantStore};
use tenancy_demo::strategy::StoreSettings;
use tenancy_testkit::TestDatabase;

/// The strategies the benches compare, in the order they appear in reports.
pub const STRATEGIES: &[Strategy] = &[
    Strategy::SharedSchema,
    Strategy::SeparateSchema,
    Strategy::SeparateDb,
];

/// Whether criterion runs in test mode (`cargo bench -- --test`): each bench once, so the
/// set-up uses small sizes to keep CI fast.
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// A multi-threaded tokio runtime for `to_async`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

/// Opens a store of `strategy` on `db` with `migrations`, through the demo's
/// [`tenancy_demo::strategy::open`], in each strategy's recommended configuration (the
/// libraries' defaults; separate-db: a budget of 20 connections).
pub async fn open_store(
    strategy: Strategy,
    db: &TestDatabase,
    migrations: TenantMigrations,
) -> Result<Arc<dyn TenantStore>> {
    let settings = StoreSettings {
        migrations,
        ..StoreSettings::default()
    };
    tenancy_demo::strategy::open(strategy, db.url(), &settings).await
}

/// The baseline's database: the domain's tables, unqualified, in `db` with no tenancy
/// around them.
pub async fn plain_database(db: &TestDatabase) -> Result<DatabaseConnection> {
    let conn = Database::connect(tenancy_core::loopback_without_tls(db.url())).await?;
    let txn = conn.begin().await?;
    TenantMigrations::default().apply(&txn, None, 0).await?;
    txn.commit().await?;
    Ok(conn)
}

/// A migration that adds one nullable column to `projects`: what a routine schema change
/// looks like.
#[derive(Debug)]
pub struct AddColumn {
    name: String,
    column: String,
}

impl MigrationName for AddColumn {
    fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddColumn {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE projects ADD COLUMN {} integer",
                self.column
            ))
            .await?;
        Ok(())
    }
}

/// The domain's migrations followed by `extra` one-column migrations.
pub fn migrations_with_columns(extra: usize) -> TenantMigrations {
    use tenancy_core::sea_orm_migration::MigratorTrait;
    let mut list = tenancy_core::migration::tenant::Migrator::migrations();
    for i in 0..extra {
        list.push(Box::new(AddColumn {
            name: format!("m9{i:03}_bench_column"),
            column: format!("bench_column_{i}"),
        }));
    }
    TenantMigrations::new(list)
}

/// Creates `n` projects (`p0`, `p1`, ...) through `scope` and commits; returns them.
pub async fn seed_projects(scope: TenantScope, n: usize) -> Result<Vec<Project>> {
    let out = seed::projects_with_tasks(&scope, "p", n, 0).await?;
    scope.commit().await?;
    Ok(out)
}

/// The store's tenant with `slug`, created if missing.
pub async fn tenant(store: &dyn TenantStore, slug: &str) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(Slug::parse(slug)?, slug))
        .await?)
}

/// Creates tenants `{prefix}0` .. `{prefix}{n-1}`, `concurrency` at a time.
pub async fn tenants(
    store: &dyn TenantStore,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Tenant>> {
    use futures::StreamExt;
    let created: Vec<Result<Tenant>> = futures::stream::iter(0..n)
        .map(|i| async move { tenant(store, &format!("{prefix}{i}")).await })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    created.into_iter().collect()
}

/// Where and with what a run was measured (the same fields as `docs/results.py` records).
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    pub date: String,
    pub commit: String,
    pub cpu: String,
    pub cores: usize,
    pub postgresql: String,
    pub rust: String,
    pub sqlx: String,
}

/// The PostgreSQL version `psql --version` reports (the server's binaries on this machine).
pub fn psql_version() -> String {
    std::process::Command::new("psql")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("psql (PostgreSQL) ", "")
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The run's details for a result file: date, commit (`-dirty` with changes), CPU, cores,
/// PostgreSQL, Rust and sqlx.
pub fn measured(postgresql: &str) -> Measured {
    let command = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            )
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| Some(l.split_once(':')?.1.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into());
    let sqlx = std::fs::read_to_string(format!("{root}/Cargo.lock"))
        .ok()
        .and_then(|lock| {
            let at = lock.find("name = \"sqlx\"\nversion = \"")? + 25;
            Some(lock[at..].split('"').next()?.to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Measured {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        commit: command("git", &["-C", root, "describe", "--always", "--dirty"]),
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        postgresql: postgresql.to_owned(),
        rust: command("rustc", &["--version"]),
        sqlx,
    }
}
