//! Integration tests of the hybrid store: the conformance suite with tenants of all three
//! placements in one catalog, and live moves between them.

mod moves;

use std::sync::Arc;
use std::time::Duration;

use tenancy_core::TenantStore;
use tenancy_hybrid::{DefaultPlacement, HybridOptions, HybridStore, MoveOptions};
use tenancy_separate_db::SeparateDbOptions;
use tenancy_separate_schema::SeparateSchemaOptions;
use tenancy_shared_schema::SharedSchemaOptions;
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

/// The options every test starts from: `max_connections` per placement's pool, and each
/// new tenant placed by its slug, so every check meets all three placements.
pub(crate) fn options(config: &StoreConfig) -> HybridOptions {
    let migrations = config.migrations();
    HybridOptions {
        shared: SharedSchemaOptions {
            max_connections: config.max_connections,
            migrations: migrations.clone(),
            ..Default::default()
        },
        schema: SeparateSchemaOptions {
            max_connections: config.max_connections,
            migrations: migrations.clone(),
            ..Default::default()
        },
        database: SeparateDbOptions {
            connections_per_server: config.max_connections.max(4),
            migrations,
            ..Default::default()
        },
        default_placement: DefaultPlacement::Spread,
        moves: MoveOptions {
            lock_timeout: Duration::from_secs(5),
            drain: Duration::from_millis(300),
        },
    }
}

async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    Ok(Arc::new(
        HybridStore::connect(db.url(), options(&config)).await?,
    ))
}

tenancy_testkit::conformance_tests!(store);

/// The suite above places tenants by slug; this shows its tenants really span the three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_places_tenants_in_all_three() -> anyhow::Result<()> {
    use tenancy_core::{NewTenant, PlacementKind, Slug};
    let db = TestDatabase::create().await?;
    let store = HybridStore::connect(db.url(), options(&StoreConfig::default())).await?;
    let mut seen = std::collections::BTreeSet::new();
    for s in ["acme", "globex", "initech", "umbrella", "hooli"] {
        let t = store
            .create_tenant(NewTenant::new(Slug::parse(s)?, s))
            .await?;
        seen.insert(t.placement.kind().as_str());
    }
    anyhow::ensure!(seen.len() == 3, "placements used: {seen:?}");
    let asked = store
        .create_tenant(
            NewTenant::new(Slug::parse("wayne")?, "Wayne").placed(PlacementKind::Database),
        )
        .await?;
    anyhow::ensure!(asked.placement.kind() == PlacementKind::Database);
    // "hybrid" names a store, never a placement: the one parser of placement names refuses
    // it, so no NewTenant can ask for it (the type has the three placements only).
    let refused = "hybrid".parse::<PlacementKind>();
    anyhow::ensure!(
        matches!(
            refused,
            Err(tenancy_core::Error::Invalid {
                field: "placement",
                ..
            })
        ),
        "{refused:?}"
    );
    anyhow::ensure!(store.tenant_by_slug(&Slug::parse("stark")?).await.is_err());
    db.drop_database().await
}

/// On a Citus coordinator the store refuses at connect, before its shared-schema store would
/// distribute anything, and leaves the database as it was.
#[tokio::test]
async fn a_citus_coordinator_is_refused() -> anyhow::Result<()> {
    let db = TestDatabase::create_on(tenancy_testkit::DatabaseOn::Citus).await?;
    match HybridStore::connect(db.url(), options(&StoreConfig::default())).await {
        Err(tenancy_core::Error::Unsupported(why)) if why.contains("hybrid") => {}
        other => anyhow::bail!("expected the hybrid store to be refused on Citus, got {other:?}"),
    }
    tenancy_testkit::assert_no_schema(&db, "tenancy").await?;
    db.drop_database().await
}
