//! Integration tests of the separate-schema strategy.

mod lifecycle;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let options = SeparateSchemaOptions {
        max_connections: config.max_connections,
        ..Default::default()
    };
    Ok(Arc::new(
        SeparateSchemaStore::connect(db.url(), options).await?,
    ))
}

tenancy_testkit::conformance_tests!(store);
