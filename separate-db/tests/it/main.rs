//! Integration tests of the separate-db strategy.

mod budget;
mod two_servers;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

/// The suite's "pool of N" becomes a budget of N tenant connections (one per tenant database)
/// and one more for the catalog: the router must then close and reopen connections as tenants
/// take turns.
async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let options = SeparateDbOptions {
        connections_per_server: config.max_connections,
        migrations: config.migrations(),
        connections_per_database: 1,
        control_connections: 1,
        ..Default::default()
    };
    Ok(Arc::new(SeparateDbStore::connect(db.url(), options).await?))
}

tenancy_testkit::conformance_tests!(store);

/// A migration run leaves no connection to the template behind: a tenant created right after
/// it is copied from the template at once (a leftover connection makes `CREATE DATABASE ...
/// TEMPLATE` wait and then fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_after_a_migration_run_works() -> anyhow::Result<()> {
    use tenancy_core::{MigrateOptions, NewTenant, Slug};
    let db = TestDatabase::create().await?;
    let store = SeparateDbStore::connect(db.url(), SeparateDbOptions::default()).await?;
    store
        .create_tenant(NewTenant::new(Slug::parse("first")?, "First"))
        .await?;
    for _ in 0..2 {
        let report = store.migrate_all(MigrateOptions::default()).await?;
        anyhow::ensure!(report.is_success(), "{report:?}");
    }
    store
        .create_tenant(NewTenant::new(Slug::parse("second")?, "Second"))
        .await?;
    drop(store);
    db.drop_database().await
}
