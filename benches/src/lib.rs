//! Shared set-up for the criterion benches: databases on a real PostgreSQL (`DATABASE_URL`,
//! or the embedded server of the testkit), stores of every strategy, seeded outside the timed
//! part.

use std::sync::Arc;

use anyhow::Result;
use tenancy_core::domain::projects::{self, NewProject, Project};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::sea_orm::{ConnectionTrait, DbErr};
use tenancy_core::sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use tenancy_core::{NewTenant, Slug, Strategy, Tenant, TenantScope, TenantStore};
use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore};
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
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

/// Opens a store of `strategy` on `db` with `migrations`, in each strategy's recommended
/// configuration (separate-db: a budget of 20 connections).
pub async fn open_store(
    strategy: Strategy,
    db: &TestDatabase,
    migrations: TenantMigrations,
) -> Result<Arc<dyn TenantStore>> {
    Ok(match strategy {
        Strategy::SharedSchema => Arc::new(
            SharedSchemaStore::connect(
                db.url(),
                SharedSchemaOptions {
                    migrations,
                    ..SharedSchemaOptions::default()
                },
            )
            .await?,
        ),
        Strategy::SeparateSchema => Arc::new(
            SeparateSchemaStore::connect(
                db.url(),
                SeparateSchemaOptions {
                    migrations,
                    ..SeparateSchemaOptions::default()
                },
            )
            .await?,
        ),
        Strategy::SeparateDb => Arc::new(
            SeparateDbStore::connect(
                db.url(),
                SeparateDbOptions {
                    migrations,
                    ..SeparateDbOptions::default()
                },
            )
            .await?,
        ),
    })
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

/// Creates `n` projects through `scope` and commits; returns them.
pub async fn seed_projects(scope: TenantScope, n: usize) -> Result<Vec<Project>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            projects::create(
                &scope,
                NewProject {
                    name: format!("p{i}"),
                    description: String::new(),
                },
            )
            .await?,
        );
    }
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
