//! How a separate-schema store connects and names its schemas.

use std::time::Duration;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::PoolSettings;
use tenancy_core::{PoolOptions, ReplicaOptions, Result, Slug, check_identifier};

// ANCHOR: options
/// How a [`SeparateSchemaStore`](crate::SeparateSchemaStore) connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateSchemaOptions {
    /// Most connections the store holds (to the database, or to the pooler when
    /// [`SeparateSchemaOptions::tenant_url`] is set).
    pub max_connections: u32,
    /// The pool settings every store shares (see [`PoolOptions`]). This store's defaults:
    /// connections recycled after 300 s (`max_lifetime`), which bounds the per-connection
    /// caches PostgreSQL keeps of every relation a connection has touched, thousands with
    /// thousands of schemas; and 2,000 statements kept per connection (`statement_cache`),
    /// because every tenant's statements have their own text (the schema is in it): the cache
    /// must hold the statements of the tenants a connection serves, or every read prepares its
    /// statement again (one more round trip), and sqlx's 100 covers a few dozen tenants.
    pub pool: PoolOptions,
    /// Tenant schemas are named this prefix followed by the slug.
    pub schema_prefix: String,
    /// The pre-migrated schema new tenants are copied from.
    pub template_schema: String,
    /// Tenant traffic goes to this URL (a PgBouncer in transaction mode, for instance) while
    /// the catalog, DDL and migrations use the direct URL. Through a pooler every scope is a
    /// transaction and statements are not cached: PgBouncer before 1.21 cannot keep a named
    /// statement across transactions. The pooler must run `DEALLOCATE ALL` when it hands a
    /// connection back (`server_reset_query_always = 1`).
    pub tenant_url: Option<String>,
    /// The application's tenant migrations (required: the default, none, is refused at
    /// connect with [`Error::MigrationsMismatch`](tenancy_core::Error::MigrationsMismatch)).
    pub migrations: TenantMigrations,
    /// A read replica of the server (a streaming standby): read-only scopes go there when it
    /// may serve them ([`tenancy_core::plumbing::replica`]), everything else to the primary.
    /// Its pool has `max_connections` of its own. Not on Citus.
    pub replica: Option<ReplicaOptions>,
}
// ANCHOR_END: options

impl Default for SeparateSchemaOptions {
    fn default() -> Self {
        SeparateSchemaOptions {
            max_connections: 10,
            pool: PoolOptions {
                max_lifetime: Some(Duration::from_secs(300)),
                statement_cache: 2_000,
                ..PoolOptions::default()
            },
            schema_prefix: "tenant_".into(),
            template_schema: "tenant_template".into(),
            tenant_url: None,
            migrations: TenantMigrations::default(),
            replica: None,
        }
    }
}

impl SeparateSchemaOptions {
    /// Refuses names that are not plain identifiers, or a prefix too long to leave room for a
    /// slug within PostgreSQL's 63-byte names.
    pub(crate) fn check(&self) -> Result<()> {
        check_identifier("schema_prefix", &self.schema_prefix, Slug::MAX_LEN)?;
        check_identifier("template_schema", &self.template_schema, 0)
    }
}

// ANCHOR: pool
/// Which of the store's pools [`SeparateSchemaOptions::pool_for`] configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolFor {
    /// The catalog, DDL and migrations, on the direct URL: never held to the statement timeout.
    Catalog,
    /// Tenant traffic on the direct URL: a pool of its own only to carry the statement
    /// timeout.
    Tenants,
    /// Tenant traffic through a transaction pooler ([`SeparateSchemaOptions::tenant_url`]),
    /// which must not cache named statements.
    TenantsThroughPooler,
    /// Reads on the replica ([`SeparateSchemaOptions::replica`]): lazy (a replica down when
    /// the store starts is found out by a read), waiting for a connection no longer than the
    /// replica is left alone after it fails.
    Replica,
}

impl SeparateSchemaOptions {
    /// The settings of one of the store's pools: [`PoolOptions`] as every store maps them,
    /// then what differs by pool.
    pub(crate) fn pool_for(&self, pool: PoolFor) -> PoolSettings {
        let settings = PoolSettings::new(&self.pool, self.max_connections);
        match pool {
            PoolFor::Catalog => PoolSettings {
                statement_timeout: None,
                ..settings
            },
            PoolFor::Tenants => settings,
            PoolFor::TenantsThroughPooler => PoolSettings {
                statement_cache: 0,
                ..settings
            },
            PoolFor::Replica => PoolSettings {
                lazy: true,
                acquire_timeout: self.pool.acquire_timeout.min(
                    self.replica
                        .as_ref()
                        .map_or(self.pool.acquire_timeout, |r| r.retry_after),
                ),
                ..settings
            },
        }
    }
}
// ANCHOR_END: pool
