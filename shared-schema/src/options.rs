//! How a shared-schema store connects and which isolation layers it runs with.

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::PoolSettings;
use tenancy_core::{Error, PoolOptions, ReplicaOptions, Result, check_identifier};

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

// ANCHOR: rls_binding
/// How row-level security learns the tenant of a scope: where the setting
/// `tenancy.tenant_id` that the policy compares with is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsBinding {
    /// On the connection, between scopes: a connection that served a tenant is kept aside
    /// for that tenant, and the setting is written again only when a scope of another tenant
    /// takes the connection (`set_config(..., false)` with the tenant as a bound parameter).
    /// A read of a tenant whose connection is warm is then one round trip, like a read of a
    /// plain table. Only sound on a direct connection: behind a transaction pooler the next
    /// transaction may land on another server connection, so the store refuses this with a
    /// [`SharedSchemaOptions::tenant_url`].
    Session,
    /// In the transaction: every scope opens one with `BEGIN; SET LOCAL ROLE ...;
    /// set_config(..., true)` in one message, so nothing outlives it. The binding to use
    /// behind PgBouncer in transaction mode; a read costs two round trips.
    Transaction,
}
// ANCHOR_END: rls_binding

// ANCHOR: options
/// How a [`SharedSchemaStore`](crate::SharedSchemaStore) connects and behaves.
#[derive(Debug, Clone)]
pub struct SharedSchemaOptions {
    /// Most connections of tenant traffic. The catalog, migrations and purges use a second
    /// pool of at most two.
    pub max_connections: u32,
    /// The pool settings every store shares: acquire timeout, connection lifetime,
    /// application name, statement cache, statement timeout (tenant traffic only). Defaults:
    /// [`PoolOptions::default`]. Through [`Self::tenant_url`] statements are not cached.
    pub pool: PoolOptions,
    /// Which isolation layers are on.
    pub isolation: Isolation,
    /// Where row-level security's tenant setting lives. `None`: [`RlsBinding::Session`] on a
    /// direct connection, [`RlsBinding::Transaction`] through [`Self::tenant_url`].
    pub rls_binding: Option<RlsBinding>,
    /// Tenant traffic goes to this URL (a PgBouncer in transaction mode, for instance) while
    /// the catalog, DDL and migrations use the direct URL. Through a pooler statements are
    /// not cached: PgBouncer before 1.21 cannot keep a named statement across transactions.
    pub tenant_url: Option<String>,
    /// The application role tenant traffic runs as (created if missing). Lowercase letters,
    /// digits and `_`.
    pub app_role: String,
    /// Rows deleted per statement when purging a deleted tenant.
    pub purge_batch: u32,
    /// The application's tenant migrations (required: the default, none, is refused at
    /// connect with [`Error::MigrationsMismatch`](tenancy_core::Error::MigrationsMismatch)).
    pub migrations: TenantMigrations,
    /// A read replica of the server (a streaming standby): read-only scopes go there when it
    /// may serve them ([`tenancy_core::plumbing::replica`]), everything else to the primary.
    /// Its pool has as many connections as the tenant pool. Not on Citus.
    pub replica: Option<ReplicaOptions>,
}

impl Default for SharedSchemaOptions {
    fn default() -> Self {
        SharedSchemaOptions {
            max_connections: 10,
            pool: PoolOptions::default(),
            isolation: Isolation::default(),
            rls_binding: None,
            tenant_url: None,
            app_role: "tenancy_app".into(),
            purge_batch: 5_000,
            migrations: TenantMigrations::default(),
            replica: None,
        }
    }
}
// ANCHOR_END: options

impl SharedSchemaOptions {
    /// Refuses options the store cannot run with (an application role that is not a plain
    /// identifier).
    pub(crate) fn check(&self) -> Result<()> {
        check_identifier("app_role", &self.app_role, 0)?;
        if self.tenant_url.is_some() && self.rls_binding == Some(RlsBinding::Session) {
            return Err(Error::invalid(
                "rls_binding",
                "a session binding needs a direct connection: behind a transaction pooler \
                 the next transaction may run on another server connection, with another \
                 tenant's setting. Use RlsBinding::Transaction with a tenant_url",
            ));
        }
        Ok(())
    }

    /// On a Citus coordinator only the transaction binding reaches the workers: a session
    /// setting (and `set_config`) stays on the coordinator.
    pub(crate) fn check_for_citus(&self) -> Result<()> {
        if self.rls_binding == Some(RlsBinding::Session) {
            return Err(Error::invalid(
                "rls_binding",
                "on a Citus coordinator a session setting never reaches the workers, where \
                 row-level security runs: use RlsBinding::Transaction (the default there)",
            ));
        }
        if self.replica.is_some() {
            return Err(Error::Unsupported(
                "a read replica of a Citus coordinator (each node would need its own)".into(),
            ));
        }
        Ok(())
    }

    /// The binding in force.
    pub(crate) fn binding(&self) -> RlsBinding {
        self.rls_binding.unwrap_or(match self.tenant_url {
            Some(_) => RlsBinding::Transaction,
            None => RlsBinding::Session,
        })
    }

    /// The pool of the catalog, migrations and purges, on the direct URL: not held to the
    /// statement timeout.
    pub(crate) fn control_pool(&self) -> PoolSettings {
        PoolSettings {
            statement_timeout: None,
            ..PoolSettings::new(&self.pool, self.max_connections.min(2))
        }
    }

    /// The pool of reads on the replica: the tenant pool's, waiting for a connection no longer
    /// than the replica is left alone after it fails (a replica down is soon passed over).
    pub(crate) fn replica_pool(&self, replica: &ReplicaOptions) -> PoolSettings {
        PoolSettings {
            acquire_timeout: self.pool.acquire_timeout.min(replica.retry_after),
            ..self.tenant_pool()
        }
    }

    /// The pool of tenant traffic.
    pub(crate) fn tenant_pool(&self) -> PoolSettings {
        PoolSettings {
            statement_cache: if self.tenant_url.is_none() {
                self.pool.statement_cache
            } else {
                0
            },
            lazy: true,
            ..PoolSettings::new(&self.pool, self.max_connections)
        }
    }
}
