//! The invoices table under all three strategies: provisioned with new tenants, added to
//! existing ones by `migrate_all`, and isolated, with every count taken directly in the
//! database (as a superuser, in every schema and database of the test).

use std::sync::Arc;

use anyhow::{Result, ensure};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, EntityTrait};
use tenancy_core::entity::{ActiveModelInTenant, SelectInTenant};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::sql::stmt;
use tenancy_core::{Error, MigrateOptions, NewTenant, Slug, Tenant, TenantStore};
use tenancy_example_invoices::{bill, invoice, migrations, settle, unpaid};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::rows_in;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
enum Kind {
    SharedSchema,
    SeparateSchema,
    SeparateDb,
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

/// A tenant created before the application had invoices gets the table from `migrate_all`
/// and can bill at once.
async fn existing_tenants_are_migrated(kind: Kind) -> Result<()> {
    let db = TestDatabase::create().await?;
    let before = store(kind, &db, TenantMigrations::default()).await?;
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
            }
        )+
    };
}

each_strategy!(
    shared_schema => Kind::SharedSchema,
    separate_schema => Kind::SeparateSchema,
    separate_db => Kind::SeparateDb,
);
