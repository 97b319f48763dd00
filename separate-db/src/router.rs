//! The router: one lazily opened pool per tenant database, under a fixed connection budget
//! per server.
//!
//! Every pool is opened with room for `connections_per_database` connections, and that room
//! is taken from its server's budget before the pool exists; so the connections the store
//! holds to a server can never exceed the budget, whatever the traffic. When the budget is
//! spent, the least recently used pool that no scope is using is closed to make room; when
//! every pool is in use, the request waits for one to come free, up to `budget_timeout`, and
//! then fails with [`Error::PoolTimeout`]. A server that does not answer is reported as
//! [`Error::Unavailable`] and is not asked again for a short while (`retry_after`), after which
//! the next request tries it: recovery needs no restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::{Error, PoolSettings, Result, ScopeGuard, connect_pool};
use tokio::sync::Notify;

/// How the router opens pools; see [`crate::SeparateDbOptions`].
#[derive(Debug, Clone)]
pub(crate) struct RouterSettings {
    pub per_database: u32,
    pub budget_timeout: Duration,
    pub acquire_timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub application_name: String,
    pub retry_after: Duration,
}

/// One PostgreSQL server the store places tenants on.
#[derive(Debug)]
pub(crate) struct Server {
    pub name: String,
    /// A URL of the server; its database is the maintenance database (`CREATE DATABASE` runs
    /// there).
    pub url: url::Url,
    /// The most connections the store holds to this server.
    pub budget: u32,
    /// Connections reserved outside the router (the control pool on the control server).
    pub reserved: u32,
    /// Wakes requests waiting for budget when a pool comes free or closes.
    changed: Notify,
    /// Set when the server did not answer: requests fail fast until then.
    down_until: Mutex<Option<Instant>>,
}

impl Server {
    pub fn new(name: String, url: url::Url, budget: u32, reserved: u32) -> Self {
        Server {
            name,
            url,
            budget,
            reserved,
            changed: Notify::new(),
            down_until: Mutex::new(None),
        }
    }

    /// The URL of `database` on this server.
    pub fn database_url(&self, database: &str) -> String {
        let mut u = self.url.clone();
        u.set_path(database);
        u.to_string()
    }

    /// The maintenance database.
    pub fn maintenance_database(&self) -> String {
        self.url.path().trim_start_matches('/').to_owned()
    }

    fn unavailable(&self) -> Error {
        Error::Unavailable(format!("server {:?} does not answer", self.name))
    }

    /// Whether the server is not known to be down.
    pub fn is_up(&self) -> bool {
        self.check_up().is_ok()
    }

    fn check_up(&self) -> Result<()> {
        match *lock(&self.down_until) {
            Some(until) if Instant::now() < until => Err(self.unavailable()),
            _ => Ok(()),
        }
    }

    // ANCHOR: health
    /// Asks the server directly whether it answers, and remembers a "no" for `retry_after`.
    async fn probe(&self, retry_after: Duration) -> bool {
        let host = self.url.host_str().unwrap_or("localhost").to_owned();
        let port = self.url.port().unwrap_or(5432);
        let up = matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((host.as_str(), port))
            )
            .await,
            Ok(Ok(_))
        );
        *lock(&self.down_until) = (!up).then(|| Instant::now() + retry_after);
        if !up {
            tracing::warn!(server = %self.name, "server does not answer");
        }
        up
    }

    /// Turns a timeout on this server's pools into `Unavailable` when the server is down.
    pub async fn explain(&self, err: Error, retry_after: Duration) -> Error {
        match err {
            Error::PoolTimeout | Error::Unavailable(_) => {
                if self.probe(retry_after).await {
                    err
                } else {
                    self.unavailable()
                }
            }
            other => other,
        }
    }
    // ANCHOR_END: health
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Pool {
    server: usize,
    /// Tells this pool from an earlier one of the same database that was closed while a
    /// lease on it was still alive: that lease must not count against this pool.
    generation: u64,
    conn: DatabaseConnection,
    /// Scopes (and maintenance work) using the pool; it may close only at zero.
    active: usize,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct State {
    pools: HashMap<(usize, String), Pool>,
    /// Connections the open pools may hold, per server.
    allotted: Vec<u32>,
    /// The generation the next opened pool gets.
    next_generation: u64,
}

/// The pools of every tenant database, and the budget they share.
#[derive(Debug)]
pub(crate) struct Router {
    pub servers: Vec<Arc<Server>>,
    settings: RouterSettings,
    state: Mutex<State>,
}

/// What [`Router::lease`] does after looking at the state.
enum Next {
    Use(DatabaseConnection, u64),
    Open,
    Close(Pool),
    Wait,
}

// ANCHOR: guard
/// A pool in use. While a lease lives the router will not close its pool.
#[derive(Debug)]
pub(crate) struct Lease {
    router: Arc<Router>,
    key: (usize, String),
    generation: u64,
    conn: DatabaseConnection,
}

impl Lease {
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.router.servers[self.key.0]
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = lock(&self.router.state);
        if let Some(pool) = state
            .pools
            .get_mut(&self.key)
            .filter(|p| p.generation == self.generation)
        {
            pool.active = pool.active.saturating_sub(1);
            pool.last_used = Instant::now();
            if pool.active == 0 {
                self.router.servers[self.key.0].changed.notify_waiters();
            }
        }
    }
}

#[async_trait]
impl ScopeGuard for Lease {
    async fn explain_timeout(&self, err: Error) -> Error {
        self.server()
            .explain(err, self.router.settings.retry_after)
            .await
    }
}
// ANCHOR_END: guard

impl Router {
    pub fn new(servers: Vec<Arc<Server>>, settings: RouterSettings) -> Self {
        let allotted = servers.iter().map(|s| s.reserved).collect();
        Router {
            servers,
            settings,
            state: Mutex::new(State {
                pools: HashMap::new(),
                allotted,
                next_generation: 0,
            }),
        }
    }

    /// The index of the server named `name`.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// The connections all tenant pools hold.
    pub fn connections(&self) -> tenancy_core::Connections {
        lock(&self.state)
            .pools
            .values()
            .map(|p| tenancy_core::Connections::of(&p.conn))
            .fold(tenancy_core::Connections::default(), |a, b| a + b)
    }

    /// How many pools are open, and how many connections they may hold, per server name.
    pub fn open_pools(&self) -> Vec<(String, usize, u32)> {
        let state = lock(&self.state);
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pools = state.pools.values().filter(|p| p.server == i).count();
                (s.name.clone(), pools, state.allotted[i])
            })
            .collect()
    }

    // ANCHOR: open
    async fn open(&self, server: &Server, database: &str) -> Result<DatabaseConnection> {
        let s = &self.settings;
        let settings = PoolSettings {
            max_connections: s.per_database,
            acquire_timeout: s.acquire_timeout,
            max_lifetime: s.max_lifetime,
            idle_timeout: s.idle_timeout,
            application_name: Some(s.application_name.clone()),
            statement_cache: true,
            // A lazy pool only builds its handle here; connecting happens on first use.
            lazy: true,
        };
        connect_pool(&server.database_url(database), &settings).await
    }
    // ANCHOR_END: open

    // ANCHOR: lease
    /// A lease on the pool of `database` on server `server`, opening the pool when needed.
    pub async fn lease(self: &Arc<Self>, server: usize, database: &str) -> Result<Lease> {
        let srv = self.servers[server].clone();
        srv.check_up()?;
        let key = (server, database.to_owned());
        let deadline = tokio::time::Instant::now() + self.settings.budget_timeout;
        loop {
            // Registered before looking, so a pool freed in between still wakes us.
            let freed = srv.changed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();

            let next = {
                let mut state = lock(&self.state);
                if let Some(pool) = state.pools.get_mut(&key) {
                    pool.active += 1;
                    pool.last_used = Instant::now();
                    Next::Use(pool.conn.clone(), pool.generation)
                } else if state.allotted[server] + self.settings.per_database <= srv.budget {
                    state.allotted[server] += self.settings.per_database;
                    Next::Open
                } else {
                    // The budget is spent: close the least recently used idle pool here.
                    let victim = state
                        .pools
                        .iter()
                        .filter(|(_, p)| p.server == server && p.active == 0)
                        .min_by_key(|(_, p)| p.last_used)
                        .map(|(k, _)| k.clone());
                    match victim.and_then(|k| state.pools.remove(&k)) {
                        Some(pool) => Next::Close(pool),
                        None => Next::Wait,
                    }
                }
            };
            match next {
                Next::Use(conn, generation) => return Ok(self.lease_of(key, generation, conn)),
                Next::Open => return self.insert(key, &srv).await,
                Next::Close(pool) => self.close(pool).await,
                Next::Wait => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        tracing::warn!(server = %srv.name, "connection budget exhausted");
                        return Err(Error::PoolTimeout);
                    }
                }
            }
        }
    }
    // ANCHOR_END: lease

    fn lease_of(
        self: &Arc<Self>,
        key: (usize, String),
        generation: u64,
        conn: DatabaseConnection,
    ) -> Lease {
        Lease {
            router: self.clone(),
            key,
            generation,
            conn,
        }
    }

    /// Opens the pool of `key`, whose connections are already allotted, and leases it.
    async fn insert(self: &Arc<Self>, key: (usize, String), srv: &Server) -> Result<Lease> {
        let conn = match self.open(srv, &key.1).await {
            Ok(conn) => conn,
            Err(e) => {
                self.release(key.0);
                return Err(e);
            }
        };
        let mut state = lock(&self.state);
        if let Some(pool) = state.pools.get_mut(&key) {
            // Another request opened the same pool meanwhile: use theirs, give ours back.
            pool.active += 1;
            let (theirs, generation) = (pool.conn.clone(), pool.generation);
            drop(state);
            self.release(key.0);
            return Ok(self.lease_of(key, generation, theirs));
        }
        state.next_generation += 1;
        let generation = state.next_generation;
        state.pools.insert(
            key.clone(),
            Pool {
                server: key.0,
                generation,
                conn: conn.clone(),
                active: 1,
                last_used: Instant::now(),
            },
        );
        Ok(self.lease_of(key, generation, conn))
    }

    // ANCHOR: evict
    fn release(&self, server: usize) {
        let mut state = lock(&self.state);
        state.allotted[server] = state.allotted[server].saturating_sub(self.settings.per_database);
        drop(state);
        self.servers[server].changed.notify_waiters();
    }

    async fn close(&self, pool: Pool) {
        pool.conn.close().await.ok();
        self.release(pool.server);
    }

    /// Closes the pool of `database` on `server` now, even if scopes still use it (they will
    /// fail): for a database about to be dropped.
    pub async fn evict(&self, server: usize, database: &str) {
        let pool = lock(&self.state)
            .pools
            .remove(&(server, database.to_owned()));
        if let Some(pool) = pool {
            self.close(pool).await;
        }
    }
    // ANCHOR_END: evict
}
