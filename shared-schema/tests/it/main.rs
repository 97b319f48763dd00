//! Integration tests of the shared-schema strategy: the conformance suite in both isolation
//! modes, and the row-level security audit.

mod rls_audit;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_shared_schema::{Isolation, SharedSchemaOptions, SharedSchemaStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

async fn store_with(
    db: &TestDatabase,
    config: StoreConfig,
    isolation: Isolation,
) -> anyhow::Result<SharedSchemaStore> {
    let options = SharedSchemaOptions {
        max_connections: config.max_connections,
        isolation,
        ..SharedSchemaOptions::default()
    };
    Ok(SharedSchemaStore::connect(db.url(), options).await?)
}

/// The recommended mode: predicate and row-level security.
async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
    Ok(Arc::new(
        store_with(db, config, Isolation::PredicateAndRls).await?,
    ))
}

tenancy_testkit::conformance_tests!(store);

/// The predicate layer alone: the test role is a superuser, which row-level security does not
/// apply to, so these checks pass only if every statement carries the tenant predicate.
mod predicate_only {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        Ok(Arc::new(
            store_with(db, config, Isolation::PredicateOnly).await?,
        ))
    }

    tenancy_testkit::conformance_tests!(store;
        projects_crud_and_paging, tasks_crud_and_paging, summary_join,
        isolation_between_tenants, concurrent_tenants_see_only_their_own,
        delete_leaves_other_tenants,
    );
}
