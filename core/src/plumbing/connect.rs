//! Connection URLs and pools as the stores use them.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::error::Result;

// ANCHOR: pool_settings
/// How a store's pool connects: the settings every strategy shares.
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
