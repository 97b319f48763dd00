//! Integration tests of the separate-schema strategy, on one server, through PgBouncer, and on
//! a Citus cluster.

mod citus;
mod lifecycle;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    let options = SeparateSchemaOptions {
        max_connections: config.max_connections,
        migrations: config.migrations(),
        ..Default::default()
    };
    Ok(Arc::new(
        SeparateSchemaStore::connect(db.url(), options).await?,
    ))
}

tenancy_testkit::conformance_tests!(store);

/// The leak tests again, with tenant traffic through PgBouncer in transaction pooling mode:
/// consecutive transactions of one client land on different server connections, and one
/// server connection serves many clients. This is where session-scoped `search_path` mixed
/// tenants in django-tenants and ros-apartment.
mod through_pgbouncer {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        let options = SeparateSchemaOptions {
            max_connections: config.max_connections,
            migrations: config.migrations(),
            tenant_url: Some(tenancy_testkit::pgbouncer_url(db.name()).await?),
            ..Default::default()
        };
        Ok(Arc::new(
            SeparateSchemaStore::connect(db.url(), options).await?,
        ))
    }

    tenancy_testkit::conformance_tests!(store;
        concurrent_tenants_see_only_their_own, no_state_survives_checkout,
        isolation_between_tenants, summary_join, tenant_id_never_changes,
        entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
        entity_writes_of_another_tenant_are_refused,
    );
}
