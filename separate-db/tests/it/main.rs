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

/// The leak tests with tenant traffic through PgBouncer in transaction pooling mode. A
/// database of its own leaves no session state to leak, but a pooler serves one server
/// connection to many clients: these show the slots, their held connections and the
/// uncached statements work there, and nothing crosses databases.
mod through_pgbouncer {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        let options = SeparateDbOptions {
            connections_per_server: config.max_connections,
            migrations: config.migrations(),
            tenant_url: Some(tenancy_testkit::pgbouncer_url(db.name()).await?),
            ..Default::default()
        };
        Ok(Arc::new(SeparateDbStore::connect(db.url(), options).await?))
    }

    tenancy_testkit::conformance_tests!(store;
        concurrent_tenants_see_only_their_own, no_state_survives_checkout,
        isolation_between_tenants, summary_join, tenant_id_never_changes,
        entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
        entity_writes_of_another_tenant_are_refused,
        lifecycle, delete_leaves_other_tenants,
    );

    /// Tenant traffic really takes the pooler URL: pointed at a port where nothing listens,
    /// creating a tenant (direct) works and its scope (pooled) does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_traffic_takes_the_pooler_url() -> anyhow::Result<()> {
        use tenancy_core::{Error, NewTenant, Slug};
        let db = TestDatabase::create().await?;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let options = SeparateDbOptions {
            migrations: tenancy_example::migrations(),
            tenant_url: Some(format!("postgres://postgres@127.0.0.1:{closed}/x")),
            pool: tenancy_core::PoolOptions {
                acquire_timeout: std::time::Duration::from_secs(1),
                ..SeparateDbOptions::default().pool
            },
            ..Default::default()
        };
        let store = SeparateDbStore::connect(db.url(), options).await?;
        let acme = store
            .create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme"))
            .await;
        // Provisioning pins the new database's tables through a tenant connection, so even
        // the creation needs the pooler; it must fail as unavailable, not succeed elsewhere.
        anyhow::ensure!(
            matches!(acme, Err(Error::Unavailable(_)) | Err(Error::PoolTimeout)),
            "a store whose pooler does not answer served a tenant: {acme:?}"
        );
        db.drop_database().await
    }
}

/// A migration run leaves no connection to the template behind: a tenant created right after
/// it is copied from the template at once (a leftover connection makes `CREATE DATABASE ...
/// TEMPLATE` wait and then fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_after_a_migration_run_works() -> anyhow::Result<()> {
    use tenancy_core::{MigrateOptions, NewTenant, Slug};
    let db = TestDatabase::create().await?;
    let store = SeparateDbStore::connect(
        db.url(),
        SeparateDbOptions {
            migrations: tenancy_example::migrations(),
            ..SeparateDbOptions::default()
        },
    )
    .await?;
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

/// On a Citus coordinator the store refuses at connect, and leaves the database as it was.
#[tokio::test]
async fn a_citus_coordinator_is_refused() -> anyhow::Result<()> {
    let db = TestDatabase::create_on(tenancy_testkit::DatabaseOn::Citus).await?;
    let options = SeparateDbOptions {
        migrations: tenancy_example::migrations(),
        ..SeparateDbOptions::default()
    };
    match SeparateDbStore::connect(db.url(), options).await {
        Err(tenancy_core::Error::Unsupported(why)) if why.contains("separate-db") => {}
        other => anyhow::bail!("expected separate-db to be refused on Citus, got {other:?}"),
    }
    tenancy_testkit::assert_no_schema(&db, "tenancy").await?;
    db.drop_database().await
}
