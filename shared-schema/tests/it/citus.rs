//! The suite on a Citus cluster (a coordinator and two workers the test process starts, or
//! `CITUS_URL`): the shared tables distributed by `tenant_id`, in both isolation modes.

use super::*;

/// Predicate and row-level security, the binding in each transaction with `SET LOCAL` sent
/// on to the workers (the only binding Citus allows).
async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let store = store_with(db, config, Isolation::PredicateAndRls).await?;
    anyhow::ensure!(store.on_citus(), "the store did not find Citus");
    Ok(Arc::new(store))
}

tenancy_testkit::conformance_tests!(citus store);

/// The predicate alone on Citus: the test role is a superuser, so the checks pass only if
/// every statement carries the predicate to the shards.
mod predicate_only {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        Ok(Arc::new(
            store_with(db, config, Isolation::PredicateOnly).await?,
        ))
    }

    tenancy_testkit::conformance_tests!(citus store;
        isolation_between_tenants, concurrent_tenants_see_only_their_own,
        delete_leaves_other_tenants, summary_join,
        entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
    );
}

/// A session binding never reaches the workers: refused at connect.
#[tokio::test]
async fn a_session_binding_is_refused_on_citus() -> anyhow::Result<()> {
    let db = TestDatabase::create_on(tenancy_testkit::DatabaseOn::Citus).await?;
    let options = SharedSchemaOptions {
        migrations: tenancy_example::migrations(),
        rls_binding: Some(RlsBinding::Session),
        ..SharedSchemaOptions::default()
    };
    match SharedSchemaStore::connect(db.url(), options).await {
        Err(tenancy_core::Error::Invalid {
            field: "rls_binding",
            ..
        }) => {}
        other => anyhow::bail!("expected the session binding to be refused, got {other:?}"),
    }
    db.drop_database().await
}

/// A migration of one statement.
struct Sql(&'static str, &'static str);

impl tenancy_core::sea_orm_migration::MigrationName for Sql {
    fn name(&self) -> &str {
        self.0
    }
}

#[async_trait::async_trait]
impl tenancy_core::sea_orm_migration::MigrationTrait for Sql {
    async fn up(
        &self,
        manager: &tenancy_core::sea_orm_migration::SchemaManager,
    ) -> Result<(), tenancy_core::sea_orm::DbErr> {
        use tenancy_core::sea_orm::ConnectionTrait;
        manager.get_connection().execute_unprepared(self.1).await?;
        Ok(())
    }
}

/// Reference data (a table without `tenant_id` that a tenant table refers to) becomes a
/// reference table, added by a later migration too; the migration ledgers stay on the
/// coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_data_becomes_reference_tables() -> anyhow::Result<()> {
    use tenancy_core::plumbing::sql::stmt;
    use tenancy_core::sea_orm::ConnectionTrait;
    use tenancy_core::sea_orm_migration::{MigrationTrait, MigratorTrait};

    let db = TestDatabase::create_on(tenancy_testkit::DatabaseOn::Citus).await?;
    let first = store_with(&db, StoreConfig::default(), Isolation::PredicateAndRls).await?;
    let acme = first
        .create_tenant(tenancy_core::NewTenant::new(
            tenancy_core::Slug::parse("acme")?,
            "Acme",
        ))
        .await?;
    let mut list: Vec<Box<dyn MigrationTrait>> = tenancy_example::migration::Migrator::migrations();
    list.push(Box::new(Sql(
        "m0200_colors",
        "CREATE TABLE colors (code text PRIMARY KEY)",
    )));
    list.push(Box::new(Sql(
        "m0201_project_color",
        "ALTER TABLE projects ADD COLUMN color text REFERENCES colors (code)",
    )));
    let config = StoreConfig {
        migrations: Some(tenancy_core::migration::TenantMigrations::new(list)),
        ..StoreConfig::default()
    };
    let second = store_with(&db, config, Isolation::PredicateAndRls).await?;
    second
        .migrate_all(tenancy_core::MigrateOptions::default())
        .await?;
    let admin = db.admin().await?;
    let kinds = admin
        .query_all_raw(stmt(
            "SELECT c.relname::text AS name, coalesce(t.citus_table_type, 'local') AS kind \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN citus_tables t ON t.table_name = c.oid::regclass \
             WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
            [],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok(format!(
                "{}={}",
                r.try_get::<String>("", "name")?,
                r.try_get::<String>("", "kind")?
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        kinds
            == [
                "colors=reference",
                "projects=distributed",
                "tasks=distributed",
                "tenancy_control_migrations=local",
            ],
        "public's tables: {kinds:?}"
    );
    // The tenant's rows still reach the reference table through the key.
    admin
        .execute_unprepared("INSERT INTO colors VALUES ('red')")
        .await?;
    let scope = second.scope(&acme).await?;
    let project = tenancy_example::projects::create(
        &scope,
        tenancy_example::projects::NewProject::named("red one"),
    )
    .await?;
    scope.commit().await?;
    admin
        .execute_raw(stmt(
            "UPDATE projects SET color = 'red' WHERE tenant_id = $1 AND id = $2",
            [acme.id.as_uuid().into(), project.id.into()],
        ))
        .await?;
    admin.close().await.ok();
    db.drop_database().await
}
