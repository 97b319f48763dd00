//! Integration tests of the separate-db strategy.

mod budget;
mod two_servers;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

/// The suite's "pool of N" becomes a budget of N tenant connections (pools of one connection)
/// plus one for the catalog: the router must then close and reopen pools as tenants take turns.
async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let options = SeparateDbOptions {
        connections_per_server: config.max_connections + 1,
        connections_per_database: 1,
        control_connections: 1,
        ..Default::default()
    };
    Ok(Arc::new(SeparateDbStore::connect(db.url(), options).await?))
}

tenancy_testkit::conformance_tests!(store);
