//! The suite on a Citus cluster (a coordinator and two workers the test process starts, or
//! `CITUS_URL`): every tenant schema a distributed schema, and what Citus refuses in one
//! refused before anything changes.

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::StrategyDoor;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::ConnectionTrait;
use tenancy_core::sea_orm_migration::prelude::*;
use tenancy_core::{Error, NewTenant, Slug};
use tenancy_testkit::DatabaseOn;

use super::*;

async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let options = SeparateSchemaOptions {
        max_connections: config.max_connections,
        migrations: config.migrations(),
        ..Default::default()
    };
    let store = SeparateSchemaStore::connect(db.url(), options).await?;
    anyhow::ensure!(store.on_citus(), "the store did not find Citus");
    Ok(Arc::new(store))
}

tenancy_testkit::conformance_tests!(citus store);

/// A migration of one statement, to offer Citus what it refuses in a distributed schema.
struct Sql(&'static str, &'static str);

impl MigrationName for Sql {
    fn name(&self) -> &str {
        self.0
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Sql {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.1).await?;
        Ok(())
    }
}

/// Citus refuses these in a distributed schema (`schema_based_sharding.c` and its tests;
/// the last is Citus sending a DDL message's whole text on to the worker): the store
/// refuses each at connect, naming it, and neither the template nor a tenant changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_citus_refuses_in_a_tenant_schema_is_refused_first() -> anyhow::Result<()> {
    let db = TestDatabase::create_on(DatabaseOn::Citus).await?;
    let first = SeparateSchemaStore::connect(
        db.url(),
        SeparateSchemaOptions {
            migrations: tenancy_example::migrations(),
            ..Default::default()
        },
    )
    .await?;
    let acme = first
        .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme"))
        .await?;
    let refused = [
        Sql(
            "m0900_inherited",
            "CREATE TABLE archived_projects () INHERITS (projects)",
        ),
        Sql(
            "m0900_two_statements_in_one_message",
            "CREATE TABLE labels (tenant_id uuid NOT NULL, name text NOT NULL); \
             CREATE INDEX labels_name_idx ON labels (tenant_id, name)",
        ),
        Sql(
            "m0900_key_to_the_catalog",
            "ALTER TABLE projects ADD CONSTRAINT projects_tenant_fk \
             FOREIGN KEY (tenant_id) REFERENCES tenancy.tenants (id)",
        ),
    ];
    for bad in refused {
        let name = bad.0;
        let mut list: Vec<Box<dyn MigrationTrait>> =
            tenancy_example::migration::Migrator::migrations();
        list.push(Box::new(bad));
        let options = SeparateSchemaOptions {
            migrations: TenantMigrations::new(list),
            ..Default::default()
        };
        match SeparateSchemaStore::connect(db.url(), options).await {
            Err(Error::Unsupported(why)) if why.contains(name) => {
                eprintln!("refused: {why}");
            }
            other => anyhow::bail!("expected {name} to be refused, got {other:?}"),
        }
    }
    // Nothing changed: the template and the tenant at version 1 with two tables each, the
    // refused names not recorded, no probe schema left.
    let admin = first.connection(StrategyDoor);
    let row = admin
        .query_one_raw(stmt(
            "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname IN ('tenant_template', $1)) AS tables, \
                    (SELECT max(version) FROM tenancy.tenant_migrations) AS recorded, \
                    (SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%probe') AS probes, \
                    (SELECT schema_version FROM tenancy.tenants WHERE slug = 'acme') AS version",
            [first.schema_for(&acme.slug).into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let counts = (
        row.try_get::<i64>("", "tables")?,
        row.try_get::<i32>("", "recorded")?,
        row.try_get::<i64>("", "probes")?,
        row.try_get::<i32>("", "version")?,
    );
    anyhow::ensure!(
        counts == (4, 1, 0, 1),
        "something changed: (tables, recorded, probes, version) = {counts:?}"
    );
    db.drop_database().await
}
