//! Integration tests of the shared-schema strategy: the conformance suite in both isolation
//! modes and both row-level security bindings, the leak tests through PgBouncer, the
//! row-level security audit, and the suite on a Citus cluster.

mod citus;
mod rls_audit;

use std::sync::Arc;

use tenancy_core::TenantStore;
use tenancy_shared_schema::{Isolation, RlsBinding, SharedSchemaOptions, SharedSchemaStore};
use tenancy_testkit::TestDatabase;
use tenancy_testkit::conformance::StoreConfig;

async fn store_with(
    db: &TestDatabase,
    config: StoreConfig,
    isolation: Isolation,
) -> anyhow::Result<SharedSchemaStore> {
    let options = SharedSchemaOptions {
        max_connections: config.max_connections,
        migrations: config.migrations(),
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
        entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
        entity_writes_of_another_tenant_are_refused,
    );
}

/// Row-level security with the binding in the transaction (the one used through a pooler),
/// on a direct connection.
mod transaction_binding {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        let options = SharedSchemaOptions {
            max_connections: config.max_connections,
            migrations: config.migrations(),
            rls_binding: Some(RlsBinding::Transaction),
            ..SharedSchemaOptions::default()
        };
        Ok(Arc::new(
            SharedSchemaStore::connect(db.url(), options).await?,
        ))
    }

    tenancy_testkit::conformance_tests!(store);
}

/// The leak tests with tenant traffic through PgBouncer in transaction pooling mode, where
/// consecutive transactions of one client land on different server connections: only the
/// transaction binding is sound there, and the store picks it.
mod through_pgbouncer {
    use super::*;

    async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
        let options = SharedSchemaOptions {
            max_connections: config.max_connections,
            migrations: config.migrations(),
            tenant_url: Some(tenancy_testkit::pgbouncer_url(db.name()).await?),
            ..SharedSchemaOptions::default()
        };
        Ok(Arc::new(
            SharedSchemaStore::connect(db.url(), options).await?,
        ))
    }

    tenancy_testkit::conformance_tests!(store;
        concurrent_tenants_see_only_their_own, no_state_survives_checkout,
        isolation_between_tenants, summary_join, tenant_id_never_changes,
        entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
        entity_writes_of_another_tenant_are_refused,
    );

    #[tokio::test]
    async fn a_session_binding_is_refused_behind_a_pooler() -> anyhow::Result<()> {
        let db = TestDatabase::create().await?;
        let options = SharedSchemaOptions {
            migrations: tenancy_example::migrations(),
            tenant_url: Some(tenancy_testkit::pgbouncer_url(db.name()).await?),
            rls_binding: Some(RlsBinding::Session),
            ..SharedSchemaOptions::default()
        };
        match SharedSchemaStore::connect(db.url(), options).await {
            Err(tenancy_core::Error::Invalid {
                field: "rls_binding",
                ..
            }) => {}
            other => anyhow::bail!("expected the session binding to be refused, got {other:?}"),
        }
        db.drop_database().await
    }
}
