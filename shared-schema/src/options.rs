//! How a shared-schema store connects and which isolation layers it runs with.

use std::time::Duration;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::{PoolSettings, Result, check_identifier};

// ANCHOR: isolation
/// Which layers isolate tenant traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// The tenant predicate on every statement, and row-level security beneath it, with
    /// traffic running as the application role. The default; the one to ship.
    #[default]
    PredicateAndRls,
    /// The predicate alone, on the store's own connection role with no transaction-local
    /// setting. Saves the role switch (and, in autocommit mode, the transaction), but a
    /// statement that forgets the predicate sees every tenant when the connecting role is a
    /// superuser or `BYPASSRLS`. Kept to measure what row-level security costs, and to test
    /// the predicate layer on its own.
    PredicateOnly,
}
// ANCHOR_END: isolation

// ANCHOR: options
/// How a [`SharedSchemaStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct SharedSchemaOptions {
    /// Most connections the store holds.
    pub max_connections: u32,
    /// How long a request waits for a free connection before [`Error::PoolTimeout`].
    pub acquire_timeout: Duration,
    /// Which isolation layers are on.
    pub isolation: Isolation,
    /// The application role tenant traffic runs as (created if missing). Lowercase letters,
    /// digits and `_`.
    pub app_role: String,
    /// Rows deleted per statement when purging a deleted tenant.
    pub purge_batch: u32,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}

impl Default for SharedSchemaOptions {
    fn default() -> Self {
        SharedSchemaOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            isolation: Isolation::default(),
            app_role: "tenancy_app".into(),
            purge_batch: 5_000,
            migrations: TenantMigrations::default(),
        }
    }
}
// ANCHOR_END: options

impl SharedSchemaOptions {
    /// Refuses options the store cannot run with (an application role that is not a plain
    /// identifier).
    pub(crate) fn check(&self) -> Result<()> {
        check_identifier("app_role", &self.app_role, 0)
    }

    /// The store's one pool.
    pub(crate) fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            ..PoolSettings::default()
        }
    }
}
