//! How a separate-schema store connects and names its schemas.

use std::time::Duration;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::PoolSettings;
use tenancy_core::{Result, Slug, check_identifier};

// ANCHOR: options
/// How a [`SeparateSchemaStore`](crate::SeparateSchemaStore) connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateSchemaOptions {
    /// Most connections the store holds (to the database, or to the pooler when
    /// [`SeparateSchemaOptions::tenant_url`] is set).
    pub max_connections: u32,
    /// How long a request waits for a free connection before [`Error::PoolTimeout`](tenancy_core::Error::PoolTimeout).
    pub acquire_timeout: Duration,
    /// A pooled connection is closed after this long, which bounds the per-connection caches
    /// PostgreSQL keeps of every relation the connection has touched (thousands of schemas
    /// means thousands of relations). `None` keeps connections forever.
    pub max_connection_lifetime: Option<Duration>,
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
    /// Prepared statements each connection keeps. Every tenant's statements have their own
    /// text (the schema is in it), so the cache must hold the statements of the tenants a
    /// connection serves, or every read prepares its statement again (one more round trip);
    /// sqlx's default of 100 covers a few dozen tenants. Each kept statement costs the server
    /// a little memory per connection, bounded with the connection by its lifetime.
    pub statement_cache: usize,
    /// Each tenant statement that runs longer is cancelled ([`tenancy_core::Error::StatementTimeout`]), so
    /// one tenant's runaway query cannot hold a connection for long. Tenant traffic only: the
    /// catalog, migrations and purges are not limited. `None`: the server's setting. Not sent
    /// through a pooler, which drops startup options: set it on the role there.
    pub statement_timeout: Option<Duration>,
    /// The application's tenant migrations (required: the default, none, is refused at
    /// connect with [`Error::MigrationsMismatch`](tenancy_core::Error::MigrationsMismatch)).
    pub migrations: TenantMigrations,
}
// ANCHOR_END: options

impl Default for SeparateSchemaOptions {
    fn default() -> Self {
        SeparateSchemaOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            max_connection_lifetime: Some(Duration::from_secs(300)),
            schema_prefix: "tenant_".into(),
            template_schema: "tenant_template".into(),
            tenant_url: None,
            statement_cache: 2_000,
            statement_timeout: None,
            migrations: TenantMigrations::default(),
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

    // ANCHOR: pool
    /// The settings of the direct pool, or (`through_pooler`) of the pool to a transaction
    /// pooler, which must not cache named statements.
    /// The pool of the catalog and DDL (`tenant: false`), or of tenant traffic.
    pub(crate) fn pool(&self, through_pooler: bool, tenant: bool) -> PoolSettings {
        PoolSettings {
            statement_timeout: self.statement_timeout.filter(|_| tenant),
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            max_lifetime: self.max_connection_lifetime,
            statement_cache: if through_pooler {
                0
            } else {
                self.statement_cache
            },
            ..PoolSettings::default()
        }
    }
    // ANCHOR_END: pool
}
