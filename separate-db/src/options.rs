//! How a separate-db store connects: its servers, their connection budgets, and how tenant
//! databases are named.

use std::time::Duration;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::plumbing::PoolSettings;
use tenancy_core::{Error, PoolOptions, ReplicaOptions, Result, Slug, check_identifier};

use crate::router::RouterSettings;

/// A PostgreSQL server to place tenants on, besides the control server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// The name recorded in each tenant's placement. Lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// A URL of the server, with a database that exists (`postgres`, say): the store runs
    /// `CREATE DATABASE` and `DROP DATABASE` from there.
    pub url: String,
    /// Tenant traffic to this server's databases goes to this URL instead (its database is
    /// replaced by the tenant's): a PgBouncer in transaction mode that forwards every
    /// database name to the server (`* = host=... port=...`), say. Creating databases, the
    /// template and its migrations stay on [`Self::url`]. Through a pooler statements are
    /// not cached (PgBouncer before 1.21 cannot keep a named statement across transactions).
    pub tenant_url: Option<String>,
    /// A read replica of the server (a streaming standby, with the same databases): tenants'
    /// read-only scopes go there when it may serve them ([`tenancy_core::plumbing::replica`]).
    /// Its connections have a budget of [`SeparateDbOptions::connections_per_server`] of their
    /// own.
    pub replica: Option<ReplicaOptions>,
}

// ANCHOR: options
/// How a [`SeparateDbStore`](crate::SeparateDbStore) connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateDbOptions {
    /// The name of the server that holds the control database (the store's URL).
    pub control_server: String,
    /// Tenant traffic to the control server's databases goes to this URL, as
    /// [`ServerConfig::tenant_url`] does for the other servers.
    pub tenant_url: Option<String>,
    /// A read replica of the control server, as [`ServerConfig::replica`] is of the others.
    pub replica: Option<ReplicaOptions>,
    /// More servers to place tenants on.
    pub servers: Vec<ServerConfig>,
    /// The budget: the most connections to tenant databases the store holds to each server.
    /// On the control server the control pool ([`Self::control_connections`]) comes on top.
    /// The server's own `max_connections` must leave room for both.
    pub connections_per_server: u32,
    /// One tenant database's share of the budget at most. A database's connections are
    /// opened one at a time as its traffic needs them and closed one at a time, least
    /// recently used first, when another database needs room; so a budget of `n` keeps `n`
    /// quiet tenants warm, or a busy one with this many connections.
    pub connections_per_database: u32,
    /// Connections of the control database's pool (catalog queries), on the control server
    /// beside the budget.
    pub control_connections: u32,
    /// How long a request waits for room in a server's budget before [`Error::PoolTimeout`].
    pub budget_timeout: Duration,
    /// The pool settings every store shares (see [`PoolOptions`]), for the control pool and
    /// every tenant database's slots. `acquire_timeout` is how long a request waits for a
    /// connection of its tenant's pool: a scope's whole wait, for room in the budget and then
    /// for the connection, ends after the longer of it and [`Self::budget_timeout`]. This
    /// store's defaults: connections recycled after 300 s (`max_lifetime`), and every
    /// connection named `tenancy-separate-db` (`application_name`), which tells the store's
    /// connections apart in `pg_stat_activity`. Through a pooler ([`Self::tenant_url`],
    /// [`ServerConfig::tenant_url`]) statements are not cached.
    pub pool: PoolOptions,
    /// Tenant databases are named this prefix followed by the slug; the template database of
    /// each server is the prefix followed by `_template`. `None`: the control database's name
    /// followed by `_`.
    pub database_prefix: Option<String>,
    /// After a server failed to answer, requests for its tenants fail at once with
    /// [`Error::Unavailable`]; one of them every `retry_after` asks the server again (a TCP
    /// connect), and the first answer ends the outage.
    pub retry_after: Duration,
    /// The application's tenant migrations (required: the default, none, is refused at
    /// connect with [`Error::MigrationsMismatch`](tenancy_core::Error::MigrationsMismatch)).
    pub migrations: TenantMigrations,
}

impl Default for SeparateDbOptions {
    fn default() -> Self {
        SeparateDbOptions {
            control_server: "main".into(),
            tenant_url: None,
            replica: None,
            servers: Vec::new(),
            connections_per_server: 20,
            connections_per_database: 10,
            control_connections: 2,
            budget_timeout: Duration::from_secs(5),
            pool: PoolOptions {
                max_lifetime: Some(Duration::from_secs(300)),
                application_name: Some("tenancy-separate-db".into()),
                ..PoolOptions::default()
            },
            database_prefix: None,
            retry_after: Duration::from_millis(200),
            migrations: TenantMigrations::default(),
        }
    }
}
// ANCHOR_END: options

impl SeparateDbOptions {
    // ANCHOR: prefix
    /// The prefix of tenant databases when the control database is `control_db`: the
    /// configured one, or `control_db` followed by `_`; it must leave room for a slug within
    /// PostgreSQL's 63-byte names.
    pub(crate) fn prefix(&self, control_db: &str) -> Result<String> {
        let prefix = match &self.database_prefix {
            Some(p) => p.clone(),
            None => format!("{control_db}_"),
        };
        check_identifier("database_prefix", &prefix, Slug::MAX_LEN)?;
        Ok(prefix)
    }
    // ANCHOR_END: prefix

    /// The longest a scope waits for its connection, budget included.
    pub(crate) fn scope_wait(&self) -> Duration {
        self.pool.acquire_timeout.max(self.budget_timeout)
    }

    /// Refuses budgets that cannot hold one connection.
    pub(crate) fn check_budget(&self) -> Result<()> {
        for (field, n) in [
            ("connections_per_server", self.connections_per_server),
            ("connections_per_database", self.connections_per_database),
            ("control_connections", self.control_connections),
        ] {
            if n == 0 {
                return Err(Error::invalid(field, "must be at least one connection"));
            }
        }
        Ok(())
    }

    /// The control database's pool: not held to the statement timeout.
    pub(crate) fn control_pool(&self) -> PoolSettings {
        PoolSettings {
            statement_timeout: None,
            ..PoolSettings::new(&self.pool, self.control_connections)
        }
    }

    /// How the router opens tenant pools.
    pub(crate) fn router(&self) -> RouterSettings {
        RouterSettings {
            per_database: self.connections_per_database,
            budget_timeout: self.budget_timeout,
            pool: self.pool.clone(),
            idle_timeout: Some(Duration::from_secs(60)),
            retry_after: self.retry_after,
        }
    }
}
