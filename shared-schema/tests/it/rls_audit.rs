//! The row-level security audit: the second layer checked on its own, with no predicate.

use anyhow::{Result, bail, ensure};
use tenancy_core::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tenancy_core::{NewTenant, Slug, TenantStore};
use tenancy_example::TENANT_TABLES;
use tenancy_example::seed;
use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
use tenancy_testkit::TestDatabase;

async fn scalar(conn: &impl ConnectionTrait, sql: &str) -> Result<i64> {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    match row {
        Some(r) => Ok(r.try_get_by_index::<i64>(0)?),
        None => bail!("no row from {sql}"),
    }
}

async fn seeded(
    db: &TestDatabase,
) -> Result<(
    SharedSchemaStore,
    tenancy_core::Tenant,
    tenancy_core::Tenant,
)> {
    let store = SharedSchemaStore::connect(
        db.url(),
        SharedSchemaOptions {
            migrations: tenancy_example::migrations(),
            ..SharedSchemaOptions::default()
        },
    )
    .await?;
    let a = store
        .create_tenant(NewTenant::new(Slug::parse("alpha")?, "A"))
        .await?;
    let b = store
        .create_tenant(NewTenant::new(Slug::parse("bravo")?, "B"))
        .await?;
    for (t, n) in [(&a, 3), (&b, 2)] {
        let s = store.scope(t).await?;
        seed::projects_with_tasks(&s, "p", n, 1).await?;
        s.commit().await?;
    }
    Ok((store, a, b))
}

/// As the application role, a bare `SELECT * FROM` each tenant table, with no predicate,
/// returns only A's rows inside A's scope, and no rows outside any scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_selects_see_only_the_scoped_tenant() -> Result<()> {
    let db = TestDatabase::create().await?;
    let (store, a, _b) = seeded(&db).await?;
    let role = &store.options().app_role;
    for table in TENANT_TABLES {
        // Inside A's scope: everything visible is A's, and all of A's is visible.
        let scope_txn = store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .begin()
            .await?;
        scope_txn
            .execute_unprepared(&format!(
                "SET LOCAL ROLE {role}; SELECT set_config('tenancy.tenant_id', '{}', true)",
                a.id
            ))
            .await?;
        let visible = scalar(&scope_txn, &format!("SELECT count(*) FROM {table}")).await?;
        let foreign = scalar(
            &scope_txn,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id <> '{}'", a.id),
        )
        .await?;
        scope_txn.rollback().await?;
        ensure!(
            visible == 3,
            "inside A's scope {table} shows {visible} rows, want A's 3"
        );
        ensure!(
            foreign == 0,
            "inside A's scope {table} shows {foreign} rows of other tenants"
        );

        // Outside any scope: nothing.
        let bare = store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .begin()
            .await?;
        bare.execute_unprepared(&format!("SET LOCAL ROLE {role}"))
            .await?;
        let unscoped = scalar(&bare, &format!("SELECT count(*) FROM {table}")).await?;
        bare.rollback().await?;
        ensure!(
            unscoped == 0,
            "outside any scope {table} shows {unscoped} rows"
        );
    }
    db.drop_database().await
}

/// The application role owns nothing, is not superuser nor BYPASSRLS, and every tenant table
/// has row-level security enabled and forced with a policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_is_forced_under_a_policy() -> Result<()> {
    let db = TestDatabase::create().await?;
    let (store, _a, _b) = seeded(&db).await?;
    let role = &store.options().app_role;
    let admin = db.admin().await?;
    ensure!(
        scalar(&admin, &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}' AND NOT rolsuper AND NOT rolbypassrls")).await? == 1,
        "the application role exists and is neither superuser nor BYPASSRLS"
    );
    ensure!(
        scalar(&admin, &format!("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = '{role}'")).await? == 0,
        "the application role owns nothing"
    );
    let unprotected = scalar(
        &admin,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
         WHERE n.nspname = 'public' AND c.relkind = 'r' \
         AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                  AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))",
    )
    .await?;
    ensure!(
        unprotected == 0,
        "{unprotected} tenant tables lack forced row-level security"
    );
    let tables = scalar(
        &admin,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'",
    )
    .await?;
    ensure!(
        tables == TENANT_TABLES.len() as i64,
        "all {} tenant tables are audited, found {tables}",
        TENANT_TABLES.len()
    );
    admin.close().await.ok();
    db.drop_database().await
}

/// Inside A's scope, the policy's WITH CHECK refuses to write a row for B, even when the
/// statement is written by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_for_another_tenant_are_refused() -> Result<()> {
    let db = TestDatabase::create().await?;
    let (store, a, b) = seeded(&db).await?;
    let role = &store.options().app_role;
    let txn = store
        .connection(tenancy_core::plumbing::StrategyDoor)
        .begin()
        .await?;
    txn.execute_unprepared(&format!(
        "SET LOCAL ROLE {role}; SELECT set_config('tenancy.tenant_id', '{}', true)",
        a.id
    ))
    .await?;
    let res = txn
        .execute_unprepared(&format!(
            "INSERT INTO projects (tenant_id, id, name) VALUES ('{}', gen_random_uuid(), 'smuggled')",
            b.id
        ))
        .await;
    ensure!(res.is_err(), "inserting B's row inside A's scope must fail");
    txn.rollback().await?;
    db.drop_database().await
}

/// At start the store checks that row-level security is in force and refuses to serve
/// tenants when it is not, saying what is wrong: FORCE switched off on a table, the
/// application role owning a table, or the role given BYPASSRLS. A role of the test's own,
/// since roles are shared by every database of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_when_rls_is_not_in_force() -> Result<()> {
    let db = TestDatabase::create().await?;
    let role = format!("{}_app", db.name());
    let options = || SharedSchemaOptions {
        migrations: tenancy_example::migrations(),
        app_role: role.clone(),
        ..SharedSchemaOptions::default()
    };
    SharedSchemaStore::connect(db.url(), options()).await?;
    let admin = db.admin().await?;
    let quoted = format!("\"{role}\"");
    for (sabotage, undo, expect) in [
        (
            "ALTER TABLE public.tasks NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE public.tasks FORCE ROW LEVEL SECURITY",
            "public.tasks lacks FORCE ROW LEVEL SECURITY",
        ),
        (
            "ALTER TABLE public.projects OWNER TO ROLE_",
            "ALTER TABLE public.projects OWNER TO CURRENT_USER",
            "public.projects is owned by the application role",
        ),
        (
            "ALTER ROLE ROLE_ BYPASSRLS",
            "ALTER ROLE ROLE_ NOBYPASSRLS",
            "has BYPASSRLS",
        ),
    ] {
        admin
            .execute_unprepared(&sabotage.replace("ROLE_", &quoted))
            .await?;
        let res = SharedSchemaStore::connect(db.url(), options()).await;
        admin
            .execute_unprepared(&undo.replace("ROLE_", &quoted))
            .await?;
        match res {
            Err(tenancy_core::Error::Insecure(why)) if why.contains(expect) => {}
            Err(e) => bail!("after {sabotage:?}: refused, but not as expected: {e}"),
            Ok(_) => bail!("after {sabotage:?}: the store started"),
        }
    }
    // Undone, it starts again.
    SharedSchemaStore::connect(db.url(), options()).await?;
    admin.close().await?;
    db.drop_database().await?;
    let server =
        tenancy_core::sea_orm::Database::connect(tenancy_testkit::admin_url().await?).await?;
    server
        .execute_unprepared(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .await?;
    Ok(())
}
