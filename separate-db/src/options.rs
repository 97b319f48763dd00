//! How a separate-db store connects: its servers, their connection budgets, and how tenant
//! databases are named.

use std::time::Duration;

use tenancy_core::migration::TenantMigrations;
use tenancy_core::{Error, PoolSettings, Result, Slug, check_identifier};

use crate::router::RouterSettings;

/// A PostgreSQL server to place tenants on, besides the control server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The name recorded in each tenant's placement. Lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// A URL of the server, with a database that exists (`postgres`, say): the store runs
    /// `CREATE DATABASE` and `DROP DATABASE` from there.
    pub url: String,
}

// ANCHOR: options
/// How a [`SeparateDbStore`] connects and behaves.
#[derive(Debug, Clone)]
pub struct SeparateDbOptions {
    /// The name of the server that holds the control database (the store's URL).
    pub control_server: String,
    /// More servers to place tenants on.
    pub servers: Vec<ServerConfig>,
    /// The most connections the store holds to each server, control pool included. The
    /// server's own `max_connections` must leave room for it.
    pub connections_per_server: u32,
    /// The most connections of one tenant database's pool. Every open pool takes this many
    /// from its server's budget, so `connections_per_server / connections_per_database` pools
    /// can be open on a server at once.
    pub connections_per_database: u32,
    /// Connections of the control database's pool (catalog queries), taken from the control
    /// server's budget.
    pub control_connections: u32,
    /// How long a request waits for room in a server's budget before [`Error::PoolTimeout`].
    pub budget_timeout: Duration,
    /// How long a request waits for a connection of its tenant's pool.
    pub acquire_timeout: Duration,
    /// Pooled connections are closed after this long (bounds the server's per-connection
    /// caches); `None` keeps them.
    pub max_connection_lifetime: Option<Duration>,
    /// Tenant databases are named this prefix followed by the slug; the template database of
    /// each server is the prefix followed by `_template`. `None`: the control database's name
    /// followed by `_`.
    pub database_prefix: Option<String>,
    /// The `application_name` of every connection, which tells the store's connections apart
    /// in `pg_stat_activity`.
    pub application_name: String,
    /// After a server failed to answer, requests for its tenants fail at once with
    /// [`Error::Unavailable`] for this long, then the next one tries again.
    pub retry_after: Duration,
    /// The tenant migrations.
    pub migrations: TenantMigrations,
}

impl Default for SeparateDbOptions {
    fn default() -> Self {
        SeparateDbOptions {
            control_server: "main".into(),
            servers: Vec::new(),
            connections_per_server: 20,
            connections_per_database: 2,
            control_connections: 2,
            budget_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            max_connection_lifetime: Some(Duration::from_secs(300)),
            database_prefix: None,
            application_name: "tenancy-separate-db".into(),
            retry_after: Duration::from_secs(1),
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

    /// Refuses budgets that cannot hold the control pool and one tenant pool.
    pub(crate) fn check_budget(&self) -> Result<()> {
        if self.connections_per_database == 0 || self.control_connections == 0 {
            return Err(Error::invalid(
                "connections_per_database",
                "pools need at least one connection",
            ));
        }
        if self.connections_per_server < self.control_connections + self.connections_per_database {
            return Err(Error::invalid(
                "connections_per_server",
                "must leave room for the control pool and one tenant pool",
            ));
        }
        Ok(())
    }

    /// The control database's pool.
    pub(crate) fn control_pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.control_connections,
            acquire_timeout: self.acquire_timeout,
            max_lifetime: self.max_connection_lifetime,
            application_name: Some(self.application_name.clone()),
            ..PoolSettings::default()
        }
    }

    /// How the router opens tenant pools.
    pub(crate) fn router(&self) -> RouterSettings {
        RouterSettings {
            per_database: self.connections_per_database,
            budget_timeout: self.budget_timeout,
            acquire_timeout: self.acquire_timeout,
            max_lifetime: self.max_connection_lifetime,
            idle_timeout: Some(Duration::from_secs(60)),
            application_name: self.application_name.clone(),
            retry_after: self.retry_after,
        }
    }
}
