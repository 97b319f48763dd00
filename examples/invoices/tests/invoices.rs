//! The invoices table under all three strategies and the hybrid store: provisioned with new
//! tenants, added to existing ones by `migrate_all`, isolated, and, as an application with only
//! its own tables, exported, imported, moved and deleted. Every count is taken directly in the
//! database (as a superuser, in every schema and database of the test).

use std::sync::Arc;

use anyhow::{Result, ensure};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, EntityTrait};
use tenancy_core::entity::{ActiveModelInTenant, SelectInTenant};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::{Error, MigrateOptions, NewTenant, PlacementKind, Slug, Tenant, TenantStore};
use tenancy_example_invoices::{bill, first_version, invoice, migrations, settle, unpaid};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::rows_in;
use uuid::Uuid;

/// A statement with values, for the superuser's counts (sea-orm's own, as an application has
/// it: nothing here reaches core's strategy door).
fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    SharedSchema,
    SeparateSchema,
    SeparateDb,
    Hybrid,
}

async fn store(
    kind: Kind,
    db: &TestDatabase,
    migrations: TenantMigrations,
) -> Result<Arc<dyn TenantStore>> {
    Ok(match kind {
        Kind::SharedSchema => Arc::new(
            tenancy_shared_schema::SharedSchemaStore::connect(
                db.url(),
                tenancy_shared_schema::SharedSchemaOptions {
                    migrations,
                    ..Default::default()
                },
            )
            .await?,
        ),
        Kind::SeparateSchema => Arc::new(
            tenancy_separate_schema::SeparateSchemaStore::connect(
                db.url(),
                tenancy_separate_schema::SeparateSchemaOptions {
                    migrations,
                    ..Default::default()
                },
            )
            .await?,
        ),
        Kind::SeparateDb => Arc::new(
            tenancy_separate_db::SeparateDbStore::connect(
                db.url(),
                tenancy_separate_db::SeparateDbOptions {
                    migrations,
                    ..Default::default()
                },
            )
            .await?,
        ),
        Kind::Hybrid => Arc::new(
            tenancy_hybrid::HybridStore::connect(
                db.url(),
                tenancy_hybrid::HybridOptions {
                    default_placement: tenancy_hybrid::DefaultPlacement::Spread,
                    ..tenancy_hybrid::HybridOptions::with_migrations(migrations)
                },
            )
            .await?,
        ),
    })
}

async fn tenant(store: &dyn TenantStore, slug: &str) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(Slug::parse(slug)?, slug))
        .await?)
}

/// New tenants get the table; each tenant's invoices stay its own through reads, a bulk
/// update and a write carrying the other tenant's id.
async fn provisioned_and_isolated(kind: Kind) -> Result<()> {
    let db = TestDatabase::create().await?;
    let store = store(kind, &db, migrations()).await?;
    let a = tenant(&*store, "acme").await?;
    let b = tenant(&*store, "bluth").await?;
    ensure!(a.schema_version == 2 && b.schema_version == 2, "{a:?}");

    let s = store.scope(&a).await?;
    for (customer, cents) in [("Globex", 100), ("Globex", 250), ("Initech", 999)] {
        bill(&s, customer, cents).await?;
    }
    s.commit().await?;
    let s = store.scope(&b).await?;
    let theirs = bill(&s, "Globex", 5).await?;
    s.commit().await?;
    ensure!(rows_in(&db, a.id).await? == 3 && rows_in(&db, b.id).await? == 1);

    let s = store.scope(&a).await?;
    let open = unpaid(&s).await?;
    ensure!(
        open.len() == 3 && open.iter().all(|i| i.tenant_id == a.id.as_uuid()),
        "{open:?}"
    );
    ensure!(settle(&s, "Globex").await? == 2);
    let by_key = invoice::Entity::find_by_id((theirs.tenant_id, theirs.id))
        .one_in(&s)
        .await?;
    ensure!(by_key.is_none(), "acme read bluth's invoice");
    let forged = invoice::ActiveModel {
        tenant_id: Set(b.id.as_uuid()),
        id: Set(Uuid::now_v7()),
        customer: Set("Globex".into()),
        amount_cents: Set(1),
        ..Default::default()
    }
    .insert_in(&s)
    .await;
    ensure!(
        matches!(forged, Err(Error::TenantMismatch { .. })),
        "{forged:?}"
    );
    let refused = bill(&s, "Nobody", -5).await;
    ensure!(refused.is_err(), "a negative amount was stored");
    s.commit().await?;

    let s = store.scope(&b).await?;
    ensure!(unpaid(&s).await?.len() == 1, "acme's settle reached bluth");
    s.commit().await?;
    ensure!(rows_in(&db, a.id).await? == 3 && rows_in(&db, b.id).await? == 1);

    if let Kind::SharedSchema = kind {
        // The store's row-level security covers the application's table as well.
        let admin = db.admin().await?;
        let row = admin
            .query_one_raw(stmt(
                "SELECT relrowsecurity AND relforcerowsecurity AS forced FROM pg_class \
                 WHERE oid = 'public.invoices'::regclass",
                [],
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no invoices table"))?;
        ensure!(
            row.try_get::<bool>("", "forced")?,
            "invoices without forced RLS"
        );
        admin.close().await.ok();
    }
    db.drop_database().await
}

/// A tenant created at the application's first version gets the second from `migrate_all`
/// and bills as before.
async fn existing_tenants_are_migrated(kind: Kind) -> Result<()> {
    let db = TestDatabase::create().await?;
    let before = store(kind, &db, first_version()).await?;
    let old = tenant(&*before, "olden").await?;
    ensure!(old.schema_version == 1);
    drop(before);

    let store = store(kind, &db, migrations()).await?;
    let report = store.migrate_all(MigrateOptions::default()).await?;
    ensure!(report.is_success(), "{report:?}");
    let old = store.tenant(old.id).await?;
    ensure!(old.schema_version == 2, "{old:?}");
    let s = store.scope(&old).await?;
    bill(&s, "Globex", 42).await?;
    s.commit().await?;
    let s = store.scope(&old).await?;
    ensure!(unpaid(&s).await?.len() == 1);
    s.commit().await?;
    ensure!(rows_in(&db, old.id).await? == 1);
    db.drop_database().await
}

// ANCHOR: only_its_own_tables
/// An application with only its own tables, through the application door alone: its tenants
/// are created at the first version, migrated to the second, scoped and queried, exported and
/// imported, moved (hybrid) and deleted, and no schema or database of the test holds a table
/// of the workspace's example domain (`projects`, `tasks`).
async fn an_application_with_only_its_own_tables(kind: Kind) -> Result<()> {
    let db = TestDatabase::create().await?;
    let first = store(kind, &db, first_version()).await?;
    let acme = tenant(&*first, "acme").await?;
    let bluth = tenant(&*first, "bluth").await?;
    ensure!(
        acme.schema_version == 1 && bluth.schema_version == 1,
        "{acme:?}"
    );
    for t in [&acme, &bluth] {
        let s = first.scope(t).await?;
        bill(&s, "Globex", 100).await?;
        s.commit().await?;
    }
    drop(first);

    // The second version, for every tenant.
    let store = store(kind, &db, migrations()).await?;
    let report = store.migrate_all(MigrateOptions::default()).await?;
    ensure!(
        report.is_success() && report.target_version == 2,
        "{report:?}"
    );
    let acme = store.tenant(acme.id).await?;
    ensure!(acme.schema_version == 2, "{acme:?}");
    let s = store.scope(&acme).await?;
    bill(&s, "Initech", 250).await?;
    let open = unpaid(&s).await?;
    ensure!(open.len() == 2, "{open:?}");
    s.commit().await?;

    // A list that no longer begins with the one the tenants were built with is refused.
    let reordered = TenantMigrations::new(vec![
        Box::new(tenancy_example_invoices::M0101InvoicesByCustomer),
        Box::new(tenancy_example_invoices::M0100Invoices),
    ]);
    let refused = self::store(kind, &db, reordered).await;
    ensure!(
        refused
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<Error>())
            .is_some_and(|e| matches!(e, Error::MigrationsMismatch(_))),
        "a reordered migration list was accepted: {:?}",
        refused.err()
    );

    // Export and import: the application's one table travels, and nothing else.
    let mut file = Vec::new();
    let manifest = store.export(&acme, &mut file, &|_| {}).await?;
    let tables: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    ensure!(
        tables == ["invoices"] && manifest.rows() == 2,
        "{manifest:?}"
    );
    let copy = store
        .import(
            NewTenant::new(Slug::parse("acme-copy")?, "Acme copy"),
            &mut std::io::Cursor::new(file),
            &|_| {},
        )
        .await?;
    ensure!(rows_in(&db, copy.id).await? == 2);
    let s = store.scope(&copy).await?;
    ensure!(unpaid(&s).await?.len() == 2);
    s.commit().await?;

    if let Kind::Hybrid = kind {
        // Moves: through every other placement and back, the rows with it.
        let hybrid = tenancy_hybrid::HybridStore::connect(
            db.url(),
            tenancy_hybrid::HybridOptions::with_migrations(migrations()),
        )
        .await?;
        let home = acme.placement.kind();
        for to in PlacementKind::ALL
            .into_iter()
            .filter(|k| *k != home)
            .chain([home])
        {
            let moved = hybrid.move_tenant(acme.id, to, None).await?;
            ensure!(moved.placement.kind() == to, "{moved:?}");
            ensure!(
                rows_in(&db, acme.id).await? == 2,
                "rows lost in a move to {to}"
            );
            let s = hybrid.scope(&moved).await?;
            ensure!(unpaid(&s).await?.len() == 2);
            s.commit().await?;
        }
    }

    // Only the application's table, in every schema and database of the test.
    let found = tables_named(&db, &["invoices", "projects", "tasks"]).await?;
    ensure!(
        found.iter().any(|t| t.ends_with(".invoices")),
        "no invoices table was found: {found:?}"
    );
    ensure!(
        found.iter().all(|t| t.ends_with(".invoices")),
        "tables of the example domain in an application that has none: {found:?}"
    );

    for t in [copy.id, bluth.id, acme.id] {
        store.delete_tenant(t).await?;
        ensure!(
            rows_in(&db, t).await? == 0,
            "rows of a deleted tenant remain"
        );
    }
    drop(store);
    db.drop_database().await
}
// ANCHOR_END: only_its_own_tables

/// `database.schema.table` for every table named one of `names` in the test's database and
/// the tenant databases made beside it (as a superuser, through `information_schema`).
async fn tables_named(db: &TestDatabase, names: &[&str]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (database, url) in db.with_tenant_databases().await? {
        let conn = sea_orm::Database::connect(url.as_str()).await?;
        for name in names {
            for row in conn
                .query_all_raw(stmt(
                    "SELECT table_schema AS s FROM information_schema.tables WHERE table_name = $1",
                    [(*name).into()],
                ))
                .await?
            {
                let schema: String = row.try_get("", "s")?;
                found.push(format!("{database}.{schema}.{name}"));
            }
        }
        conn.close().await.ok();
    }
    Ok(found)
}

macro_rules! each_strategy {
    ($($name:ident => $kind:expr),+ $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn invoices_are_provisioned_and_isolated() -> Result<()> {
                    provisioned_and_isolated($kind).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn existing_tenants_are_migrated_to_invoices() -> Result<()> {
                    existing_tenants_are_migrated($kind).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_application_with_only_its_own_tables() -> Result<()> {
                    super::an_application_with_only_its_own_tables($kind).await
                }
            }
        )+
    };
}

each_strategy!(
    shared_schema => Kind::SharedSchema,
    separate_schema => Kind::SeparateSchema,
    separate_db => Kind::SeparateDb,
    hybrid => Kind::Hybrid,
);
