//! Connection URLs and pools as the stores use them.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::error::Result;

// ANCHOR: pool_options
/// How a store's connections are pooled and timed: the settings every strategy shares, in each
/// store's options as `pool` (`SharedSchemaOptions::pool`, `SeparateSchemaOptions::pool`,
/// `SeparateDbOptions::pool`). How many connections a store holds is the strategy's own
/// (`max_connections`, or separate-db's budgets), beside it.
///
/// Each store starts from defaults of its own (separate-schema and separate-db recycle
/// connections after 300 s, separate-schema keeps 2,000 statements, separate-db names its
/// connections): change the fields you need on the store's default, as in
/// `options.pool.acquire_timeout = Duration::from_secs(2)`, rather than starting from
/// [`PoolOptions::default`] (5 s acquire timeout, sqlx's 100 statements, nothing else set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// How long a request waits for a free connection before
    /// [`Error::PoolTimeout`](crate::Error::PoolTimeout).
    pub acquire_timeout: Duration,
    /// A pooled connection is closed after this long, which bounds the caches PostgreSQL keeps
    /// per connection of every relation the connection has touched (thousands of schemas or
    /// databases means thousands of relations). `None` sets no lifetime of the store's own.
    pub max_lifetime: Option<Duration>,
    /// The `application_name` of every connection, which tells the store's connections apart
    /// in `pg_stat_activity`; `None` leaves sqlx's.
    pub application_name: Option<String>,
    /// Prepared statements each connection keeps (sqlx's default is 100). Each kept statement
    /// costs the server a little memory per connection, bounded with the connection by its
    /// lifetime. Through a transaction pooler (a store's `tenant_url`) the stores keep none:
    /// PgBouncer before 1.21 cannot keep a named statement across transactions.
    pub statement_cache: usize,
    /// Each tenant statement that runs longer is cancelled
    /// ([`Error::StatementTimeout`](crate::Error::StatementTimeout)), so one tenant's runaway
    /// query cannot hold a connection for long. Tenant traffic only: the catalog, migrations
    /// and purges are not limited. `None`: the server's setting. Sent as a startup option when
    /// a connection opens, so not through a pooler, which drops startup options
    /// (`ignore_startup_parameters = options`): set it on the role there
    /// (`ALTER ROLE ... SET statement_timeout`).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            acquire_timeout: Duration::from_secs(5),
            max_lifetime: None,
            application_name: None,
            statement_cache: 100,
            statement_timeout: None,
        }
    }
}
// ANCHOR_END: pool_options

// ANCHOR: pool_settings
/// How one pool connects: a store's [`PoolOptions`] as [`PoolSettings::new`] maps them, with
/// what the store decides per pool (its size, the statement cache through a pooler, the
/// statement timeout on tenant traffic only, lazy opening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections the pool holds.
    pub max_connections: u32,
    /// How long a request waits for a free connection before
    /// [`Error::PoolTimeout`](crate::Error::PoolTimeout).
    pub acquire_timeout: Duration,
    /// A connection is closed after this long (bounds the server's per-connection caches);
    /// `None` keeps connections forever.
    pub max_lifetime: Option<Duration>,
    /// A connection idle this long is closed; `None` keeps idle connections.
    pub idle_timeout: Option<Duration>,
    /// The `application_name` the server shows in `pg_stat_activity`; `None` leaves sqlx's.
    pub application_name: Option<String>,
    /// How many prepared statements each connection keeps (sqlx's default is 100); `0` turns
    /// the cache off, as a transaction pooler older than PgBouncer 1.21 needs (it cannot keep
    /// a named statement across transactions).
    pub statement_cache: usize,
    /// Statements that run longer are cancelled by the server (its `statement_timeout`, sent
    /// when a connection opens); `None` leaves the server's setting. PgBouncer drops startup
    /// options (`ignore_startup_parameters = options`): behind it, set the timeout on the
    /// role (`ALTER ROLE ... SET statement_timeout`) instead.
    pub statement_timeout: Option<Duration>,
    /// Whether opening the pool only builds its handle (connections open on first use).
    pub lazy: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            max_lifetime: None,
            idle_timeout: None,
            application_name: None,
            statement_cache: 100,
            statement_timeout: None,
            lazy: false,
        }
    }
}

impl PoolSettings {
    /// The settings of a pool of at most `max_connections` with a store's `options`, opened
    /// eagerly and with no idle timeout: the one place a store's [`PoolOptions`] become pool
    /// settings. The store then changes what it decides per pool; the catalog's pool, for one,
    /// takes `statement_timeout: None`.
    pub fn new(options: &PoolOptions, max_connections: u32) -> Self {
        PoolSettings {
            max_connections,
            acquire_timeout: options.acquire_timeout,
            max_lifetime: options.max_lifetime,
            idle_timeout: None,
            application_name: options.application_name.clone(),
            statement_cache: options.statement_cache,
            statement_timeout: options.statement_timeout,
            lazy: false,
        }
    }
}

/// Opens a pool on `url` (after [`loopback_without_tls`]) with `settings`. Connections are
/// opened on demand (`min_connections` 0), and sqlx's statement logging is off.
pub async fn connect_pool(url: &str, settings: &PoolSettings) -> Result<DatabaseConnection> {
    let mut connect = ConnectOptions::new(loopback_without_tls(url));
    connect
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy(settings.lazy)
        .sqlx_logging(false);
    if let Some(lifetime) = settings.max_lifetime {
        connect.max_lifetime(lifetime);
    }
    if let Some(idle) = settings.idle_timeout {
        connect.idle_timeout(idle);
    }
    let app = settings.application_name.clone();
    let cache = settings.statement_cache;
    let timeout = settings.statement_timeout;
    connect.map_sqlx_postgres_opts(move |mut o| {
        if let Some(app) = &app {
            o = o.application_name(app);
        }
        if let Some(t) = timeout {
            o = o.options([("statement_timeout", format!("{}ms", t.as_millis()))]);
        }
        o = o.statement_cache_capacity(cache);
        o
    });
    Ok(Database::connect(connect).await?)
}

/// SQL a raw pool runs on each connection at moments of its life (see [`connect_sqlx_pool`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionHooks {
    /// Run once on every new connection (session settings every user of the pool shares).
    pub after_connect: Option<String>,
    /// Run whenever a connection goes back to the pool (to clear what a user left on it).
    pub after_release: Option<String>,
}

/// Opens a raw sqlx pool on `url` (after [`loopback_without_tls`]) with `settings` and `hooks`:
/// for a strategy that lends connections to scopes ([`crate::plumbing::LentConnection`]). Its
/// sea-orm view is `SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone())`.
pub async fn connect_sqlx_pool(
    url: &str,
    settings: &PoolSettings,
    hooks: ConnectionHooks,
) -> Result<sea_orm::sqlx::PgPool> {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sea_orm::sqlx::{AssertSqlSafe, ConnectOptions, Executor};
    let mut connect: PgConnectOptions = loopback_without_tls(url)
        .parse()
        .map_err(|e: sea_orm::sqlx::Error| crate::Error::invalid("url", e.to_string()))?;
    if let Some(app) = &settings.application_name {
        connect = connect.application_name(app);
    }
    if let Some(t) = settings.statement_timeout {
        connect = connect.options([("statement_timeout", format!("{}ms", t.as_millis()))]);
    }
    // Statement logging off, as `connect_pool` has it (sea-orm's `sqlx_logging(false)`).
    connect = connect
        .statement_cache_capacity(settings.statement_cache)
        .disable_statement_logging();
    let mut options = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .max_lifetime(settings.max_lifetime)
        .idle_timeout(settings.idle_timeout);
    if let Some(sql) = hooks.after_connect {
        let sql: std::sync::Arc<str> = sql.into();
        options = options.after_connect(move |conn, _| {
            let sql = sql.clone();
            Box::pin(async move { conn.execute(AssertSqlSafe(sql)).await.map(drop) })
        });
    }
    if let Some(sql) = hooks.after_release {
        let sql: std::sync::Arc<str> = sql.into();
        options = options.after_release(move |conn, _| {
            let sql = sql.clone();
            Box::pin(async move { conn.execute(AssertSqlSafe(sql)).await.map(|_| true) })
        });
    }
    if settings.lazy {
        Ok(options.connect_lazy_with(connect))
    } else {
        Ok(options.connect_with(connect).await?)
    }
}
// ANCHOR_END: pool_settings

/// Adds `sslmode=disable` to a URL whose host is the loopback interface and that does not
/// choose an `sslmode` itself; returns other URLs unchanged.
///
/// TLS over loopback protects nothing, and sqlx sets up TLS afresh for every connection:
/// measured on our 2-core machine, a connection to a local PostgreSQL with `ssl = on` took
/// about 92 ms with the default `sslmode=prefer` and 3 ms without TLS. A pool that opens
/// connections rarely hardly notices; a database-per-tenant router that opens pools on demand
/// pays it on every cold tenant. Name an `sslmode` in the URL to decide for yourself.
pub fn loopback_without_tls(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    if !loopback || parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return url.to_owned();
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::loopback_without_tls;

    #[test]
    fn only_loopback_urls_without_a_choice_change() {
        assert_eq!(
            loopback_without_tls("postgres://u@127.0.0.1:5432/db"),
            "postgres://u@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(
            loopback_without_tls("postgres://u@localhost/db?application_name=x"),
            "postgres://u@localhost/db?application_name=x&sslmode=disable"
        );
        for unchanged in [
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u@db.example.com/db",
            "not a url",
        ] {
            assert_eq!(loopback_without_tls(unchanged), unchanged);
        }
    }
}
