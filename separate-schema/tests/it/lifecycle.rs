//! Provisioning, migration and deletion of tenant schemas.

use anyhow::{Result, bail, ensure};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::catalog;
use tenancy_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
use tenancy_core::sea_orm_migration::prelude::*;
use tenancy_core::{
    Error, MigrateOptions, MigrationOutcome, NewTenant, Placement, Slug, TenantState, TenantStore,
};
use tenancy_example::projects::{self, NewProject};
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_testkit::TestDatabase;

async fn scalar(conn: &impl ConnectionTrait, sql: &str) -> Result<i64> {
    match conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
    {
        Some(r) => Ok(r.try_get_by_index::<i64>(0)?),
        None => bail!("no row from {sql}"),
    }
}

/// A migration that adds a column, like the one the benches time.
struct AddArchived;

impl MigrationName for AddArchived {
    fn name(&self) -> &str {
        "m0002_add_archived"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddArchived {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE projects ADD COLUMN archived boolean NOT NULL DEFAULT false",
            )
            .await?;
        Ok(())
    }
}

fn with_archived() -> TenantMigrations {
    let mut list = tenancy_example::migration::Migrator::migrations();
    list.push(Box::new(AddArchived));
    TenantMigrations::new(list)
}

/// A store on `db` with the example domain's migrations.
async fn connect(db: &TestDatabase) -> tenancy_core::Result<SeparateSchemaStore> {
    SeparateSchemaStore::connect(
        db.url(),
        SeparateSchemaOptions {
            migrations: tenancy_example::migrations(),
            ..SeparateSchemaOptions::default()
        },
    )
    .await
}

/// A creation interrupted after the catalog row was written (and with a stray, half-built
/// schema) is never served, and a retry completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_creation_is_completed_by_a_retry() -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let slug = Slug::parse("acme")?;
    let schema = store.schema_for(&slug);
    // The first step of create_tenant, then a "crash" that left a shell behind.
    let (t, inserted) = catalog::insert_provisioning(
        store.connection(tenancy_core::plumbing::StrategyDoor),
        &slug,
        "Acme",
        &Placement::Schema {
            schema: schema.clone(),
        },
    )
    .await?;
    ensure!(inserted && t.state == TenantState::Provisioning);
    store
        .connection(tenancy_core::plumbing::StrategyDoor)
        .execute_unprepared(&format!(
            "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".projects (id int)"
        ))
        .await?;
    match store.scope(&t).await {
        Err(Error::TenantNotReady { .. }) => {}
        other => bail!("a provisioning tenant must not be served, got {other:?}"),
    }
    let done = store.create_tenant(NewTenant::new(slug, "Acme")).await?;
    ensure!(
        done.id == t.id && done.state == TenantState::Ready,
        "the retry completed the same tenant"
    );
    let scope = store.scope(&done).await?;
    let p = projects::create(&scope, NewProject::named("works")).await?;
    scope.commit().await?;
    ensure!(p.tenant_id == done.id.as_uuid());
    let admin = db.admin().await?;
    let fks = scalar(&admin, &format!("SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = '{schema}' AND c.contype = 'f'")).await?;
    ensure!(
        fks == 1,
        "the copied schema has the task-to-project foreign key, found {fks}"
    );
    admin.close().await.ok();
    db.drop_database().await
}

/// Nothing pending: every tenant is reported up to date. One added column: the template and
/// every tenant get it, each reported; a tenant that fails is reported and left behind without
/// stopping the others, and a rerun picks it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_per_tenant_and_resumable() -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let mut tenants = Vec::new();
    for i in 0..6 {
        tenants.push(
            store
                .create_tenant(NewTenant::new(Slug::parse(&format!("t{i}"))?, "t"))
                .await?,
        );
    }
    let idle = store.migrate_all(MigrateOptions::default()).await?;
    ensure!(
        idle.up_to_date == 6 && idle.tenants.len() == 1,
        "nothing pending: {idle:?}"
    );

    // Sabotage one tenant: the column exists already, so its ALTER fails.
    let admin = db.admin().await?;
    admin
        .execute_unprepared("ALTER TABLE \"tenant_t3\".projects ADD COLUMN archived boolean")
        .await?;

    let upgraded = SeparateSchemaStore::connect(
        db.url(),
        SeparateSchemaOptions {
            migrations: with_archived(),
            ..Default::default()
        },
    )
    .await?;
    let report = upgraded
        .migrate_all(MigrateOptions { concurrency: 3 })
        .await?;
    ensure!(report.target_version == 2);
    ensure!(
        matches!(
            report.tenants[0].outcome,
            MigrationOutcome::Migrated { from: 1, to: 2 }
        ),
        "template migrated: {report:?}"
    );
    let failed: Vec<_> = report.failures().map(|l| l.name.clone()).collect();
    ensure!(
        failed == vec!["t3".to_string()],
        "only t3 fails: {report:?}"
    );
    let migrated = report
        .tenants
        .iter()
        .filter(|l| matches!(l.outcome, MigrationOutcome::Migrated { .. }))
        .count();
    ensure!(
        migrated == 1 + 5,
        "the template and five tenants migrated: {report:?}"
    );
    ensure!(
        upgraded.tenant(tenants[3].id).await?.schema_version == 1,
        "t3 stays at version 1"
    );
    ensure!(upgraded.tenant(tenants[0].id).await?.schema_version == 2);

    // Repair and rerun: only t3 has work left.
    admin
        .execute_unprepared("ALTER TABLE \"tenant_t3\".projects DROP COLUMN archived")
        .await?;
    let rerun = upgraded.migrate_all(MigrateOptions::default()).await?;
    ensure!(
        rerun.is_success() && rerun.up_to_date == 5,
        "rerun: {rerun:?}"
    );
    ensure!(
        rerun.tenants.len() == 2 && rerun.tenants[1].name == "t3",
        "the rerun touched only t3: {rerun:?}"
    );
    let with_column = scalar(&admin, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived' AND table_name = 'projects'").await?;
    ensure!(
        with_column == 7,
        "template and six tenants have the column, found {with_column}"
    );

    // A tenant created now is copied from the migrated template.
    let fresh = upgraded
        .create_tenant(NewTenant::new(Slug::parse("fresh")?, "f"))
        .await?;
    ensure!(fresh.schema_version == 2);
    ensure!(scalar(&admin, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'archived' AND table_schema = 'tenant_fresh'").await? == 1);
    admin.close().await.ok();
    db.drop_database().await
}

/// Deleting drops the schema and frees the slug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_drops_the_schema() -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let t = store
        .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme"))
        .await?;
    let admin = db.admin().await?;
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'";
    ensure!(scalar(&admin, schemas).await? == 1);
    store.delete_tenant(t.id).await?;
    ensure!(scalar(&admin, schemas).await? == 0, "the schema is dropped");
    admin.close().await.ok();
    db.drop_database().await
}

/// A tenant's schema carries the template's index and constraint names, so a migration that
/// names one (`DROP INDEX ...`, `ALTER TABLE ... DROP CONSTRAINT ...`) works on every tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_schemas_keep_the_template_names() -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let acme = store
        .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme"))
        .await?;
    let names = |schema: String| {
        let conn = store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .clone();
        async move {
            let rows = conn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT 'index ' || c.relname AS name FROM pg_class c \
                       JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = $1 AND c.relkind = 'i' \
                     UNION ALL SELECT 'constraint ' || k.conname FROM pg_constraint k \
                       JOIN pg_namespace n ON n.oid = k.connamespace \
                       WHERE n.nspname = $1 AND k.conname <> 'tenancy_pinned_tenant' \
                     ORDER BY 1",
                    [schema.into()],
                ))
                .await?;
            rows.iter()
                .map(|r| r.try_get::<String>("", "name").map_err(anyhow::Error::from))
                .collect::<Result<Vec<_>>>()
        }
    };
    let template = names("tenant_template".into()).await?;
    let tenant = names(store.schema_for(&acme.slug)).await?;
    ensure!(
        template.len() >= 5,
        "the template has keys and indexes: {template:?}"
    );
    ensure!(
        tenant == template,
        "tenant {tenant:?} differs from template {template:?}"
    );
    drop(store);
    db.drop_database().await
}

/// A migration that adds a tenant table of its own, as an application would.
struct AddNotes;

impl MigrationName for AddNotes {
    fn name(&self) -> &str {
        "m0002_add_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddNotes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("CREATE TABLE notes (id uuid PRIMARY KEY, tenant_id uuid NOT NULL)")
            .await?;
        Ok(())
    }
}

/// How many tables with a `tenant_id` in `schema` lack the tenant pin.
async fn unpinned(admin: &impl ConnectionTrait, schema: &str) -> Result<i64> {
    scalar(
        admin,
        &format!(
            "SELECT count(*) FROM information_schema.columns c WHERE c.table_schema = '{schema}' \
             AND c.column_name = 'tenant_id' AND NOT EXISTS (SELECT 1 FROM pg_constraint k \
             WHERE k.conrelid = format('%I.%I', c.table_schema, c.table_name)::regclass \
             AND k.conname = 'tenancy_pinned_tenant')"
        ),
    )
    .await
}

/// Every table with a `tenant_id` in a tenant's schema is pinned to that tenant, the ones it
/// was created with (as soon as it is created) and one a later migration adds: the database
/// refuses another tenant's id in any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_is_pinned_to_its_tenant() -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = connect(&db).await?;
    let a = store
        .create_tenant(NewTenant::new(Slug::parse("alpha")?, "A"))
        .await?;
    let b = store
        .create_tenant(NewTenant::new(Slug::parse("bravo")?, "B"))
        .await?;
    let admin = db.admin().await?;
    for (t, other) in [(&a, &b), (&b, &a)] {
        let schema = store.schema_for(&t.slug);
        let n = unpinned(&admin, &schema).await?;
        ensure!(
            n == 0,
            "{schema}: {n} tenant tables are not pinned at creation"
        );
        let foreign = admin
            .execute_unprepared(&format!(
                "INSERT INTO \"{schema}\".projects (id, tenant_id, name) \
                 VALUES (gen_random_uuid(), '{}', 'x')",
                other.id.as_uuid()
            ))
            .await;
        ensure!(
            foreign.is_err(),
            "{schema}.projects took another tenant's id"
        );
    }
    let mut list = tenancy_example::migration::Migrator::migrations();
    list.push(Box::new(AddNotes));
    let upgraded = SeparateSchemaStore::connect(
        db.url(),
        SeparateSchemaOptions {
            migrations: TenantMigrations::new(list),
            ..Default::default()
        },
    )
    .await?;
    ensure!(
        upgraded
            .migrate_all(MigrateOptions::default())
            .await?
            .is_success()
    );
    for (t, other) in [(&a, &b), (&b, &a)] {
        let schema = store.schema_for(&t.slug);
        let n = unpinned(&admin, &schema).await?;
        ensure!(
            n == 0,
            "{schema}: {n} tenant tables are not pinned after the migration"
        );
        let foreign = admin
            .execute_unprepared(&format!(
                "INSERT INTO \"{schema}\".notes VALUES (gen_random_uuid(), '{}')",
                other.id.as_uuid()
            ))
            .await;
        ensure!(foreign.is_err(), "{schema}.notes took another tenant's id");
    }
    admin.close().await.ok();
    db.drop_database().await
}
