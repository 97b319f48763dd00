//! The router: connections to tenant databases under a fixed budget per server, spent one
//! connection at a time.
//!
//! A tenant database gets pools of exactly one connection ("slots"), opened as its traffic
//! needs them: a lease takes a free slot of its database, or opens one more (up to
//! `connections_per_database`, one tenant's cap) while the server's budget has room. Each slot
//! takes one connection from the budget before it opens and is used by one lease at a time, so
//! the connections the store holds to a server never exceed the budget, a hot tenant grows to
//! what its traffic needs, and a budget of `n` keeps `n` tenants warm. When the budget is
//! spent, the least recently used slot that no lease is using is closed to make room: an idle
//! tenant gives its connections back one at a time. When every slot is in use, the request
//! waits for one to come free, up to `budget_timeout`, and then fails with
//! [`Error::PoolTimeout`]. A server that does not answer is reported as
//! [`Error::Unavailable`] at once while it stays down; one request every `retry_after` asks it
//! again, and the first answer ends the outage: recovery needs no restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenancy_core::plumbing::{ConnectionHome, PoolSettings, connect_pool};
use tenancy_core::sea_orm::DatabaseConnection;
use tenancy_core::sea_orm::sqlx::Postgres;
use tenancy_core::sea_orm::sqlx::pool::PoolConnection;
use tenancy_core::{Error, PoolOptions, Result, TenantId};

use crate::mutex::lock;
use crate::server::{Server, Via};

/// How the router opens pools; see [`crate::SeparateDbOptions`].
#[derive(Debug, Clone)]
pub(crate) struct RouterSettings {
    pub per_database: u32,
    pub budget_timeout: Duration,
    pub pool: PoolOptions,
    pub idle_timeout: Option<Duration>,
    pub retry_after: Duration,
}

/// A slot's idle connection, held by the router rather than its pool, with the server's
/// count of broken connections when it was given back.
type Held = Arc<Mutex<Option<(PoolConnection<Postgres>, u64)>>>;

/// One slot: a pool of one connection of a tenant database.
#[derive(Debug)]
struct Pool {
    server: usize,
    /// Tells this pool from an earlier one of the same database that was closed while a
    /// lease on it was still alive: that lease must not count against this pool.
    generation: u64,
    conn: DatabaseConnection,
    /// The slot's connection while no scope uses it, kept out of its sqlx pool: a scope takes
    /// it back without the pool's checkout and its ping on return.
    held: Held,
    /// Whether a lease (a scope, maintenance work) holds the slot; it may close only when not.
    leased: bool,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// The slots of each tenant database.
    pools: HashMap<(usize, String), Vec<Pool>>,
    /// Connections the open slots hold, per server.
    allotted: Vec<u32>,
    /// The generation the next opened pool gets.
    next_generation: u64,
    /// Slots closed to make room for another database.
    closed: u64,
}

impl State {
    /// Takes the slot of `generation` out of `key`'s slots (and `key` out of the map when it
    /// was the last), for closing.
    fn take_slot(&mut self, key: &(usize, String), generation: u64) -> Option<Pool> {
        let slots = self.pools.get_mut(key)?;
        let i = slots.iter().position(|p| p.generation == generation)?;
        let pool = slots.swap_remove(i);
        if slots.is_empty() {
            self.pools.remove(key);
        }
        Some(pool)
    }
}

/// The pools of every tenant database, and the budget they share.
#[derive(Debug)]
pub(crate) struct Router {
    pub servers: Vec<Arc<Server>>,
    settings: RouterSettings,
    state: Mutex<State>,
}

/// How long after closing a connection its room is given to another (see `Router::close`).
const CLOSE_GRACE: Duration = Duration::from_millis(5);

/// How long a slot must have been free before a busy tenant may take its room.
const COLD: Duration = Duration::from_secs(1);

/// What [`Router::lease`] does after looking at the state.
enum Next {
    Use(DatabaseConnection, Held, u64),
    Open,
    Close(Pool),
    Wait,
}

// ANCHOR: guard
/// A slot in use. While a lease lives the router will not close its slot.
#[derive(Debug)]
pub(crate) struct Lease {
    router: Arc<Router>,
    key: (usize, String),
    generation: u64,
    conn: DatabaseConnection,
    held: Held,
}

/// Where a scope gives its slot's connection back: into the slot, not its pool.
#[derive(Debug)]
pub(crate) struct SlotHome {
    held: Held,
    server: Arc<Server>,
}

impl ConnectionHome for SlotHome {
    fn give_back(&self, _tenant: TenantId, conn: PoolConnection<Postgres>) {
        let mut held = lock(&self.held);
        if held.is_none() {
            *held = Some((conn, self.server.broken_count()));
        }
    }

    fn connection_broke(&self) {
        self.server.connection_broke();
    }
}

impl Lease {
    /// The slot's pool, for sea-orm work (maintenance, migrations). Its connection goes back
    /// to the pool first, so the pool can hand it out.
    pub fn connection(&self) -> &DatabaseConnection {
        drop(lock(&self.held).take());
        &self.conn
    }

    /// The slot's connection, for a scope to hold ([`tenancy_core::plumbing::LentConnection`]), and
    /// where to give it back.
    pub async fn take_connection(&self) -> Result<(PoolConnection<Postgres>, SlotHome)> {
        let server = self.server().clone();
        let kept = lock(&self.held).take();
        let conn = match kept {
            // Kept since no connection to the server broke: as good as when it was kept.
            Some((conn, broken)) if broken == server.broken_count() => conn,
            // Kept from before a breakage (or none kept): back through the pool, whose
            // checkout pings it and opens a new one if it is dead.
            other => {
                drop(other);
                self.conn.get_postgres_connection_pool().acquire().await?
            }
        };
        let home = SlotHome {
            held: self.held.clone(),
            server,
        };
        Ok((conn, home))
    }

    /// Ends the lease and closes its slot instead of keeping it: for a connection to a
    /// maintenance database, used once in a while, which should not hold a tenant's room.
    pub async fn discard(self) {
        let slot = lock(&self.router.state).take_slot(&self.key, self.generation);
        if let Some(pool) = slot {
            self.router.close(pool).await;
        }
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.router.servers[self.key.0]
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = lock(&self.router.state);
        let slot = state
            .pools
            .get_mut(&self.key)
            .and_then(|slots| slots.iter_mut().find(|p| p.generation == self.generation));
        if let Some(pool) = slot {
            pool.leased = false;
            pool.last_used = Instant::now();
            drop(state);
            self.router.servers[self.key.0].changed.notify_waiters();
        }
    }
}

// ANCHOR_END: guard

impl Router {
    pub fn new(servers: Vec<Arc<Server>>, settings: RouterSettings) -> Self {
        let allotted = vec![0; servers.len()];
        Router {
            servers,
            settings,
            state: Mutex::new(State {
                pools: HashMap::new(),
                allotted,
                next_generation: 0,
                closed: 0,
            }),
        }
    }

    /// The index of the server named `name`.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// The connections all tenant slots hold.
    pub fn connections(&self) -> tenancy_core::Connections {
        lock(&self.state)
            .pools
            .values()
            .flatten()
            .map(|p| tenancy_core::Connections::of(&p.conn))
            .fold(tenancy_core::Connections::default(), |a, b| a + b)
    }

    /// Per server name: the slots open (one connection each) and the connections allotted.
    pub fn open_pools(&self) -> Vec<(String, usize, u32)> {
        let state = lock(&self.state);
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pools = state
                    .pools
                    .values()
                    .flatten()
                    .filter(|p| p.server == i)
                    .count();
                (s.name.clone(), pools, state.allotted[i])
            })
            .collect()
    }

    /// How many slots were closed to make room for another database since the router started.
    pub fn slots_closed(&self) -> u64 {
        lock(&self.state).closed
    }

    // ANCHOR: open
    async fn open(&self, server: &Server, database: &str, via: Via) -> Result<DatabaseConnection> {
        let s = &self.settings;
        let settings = PoolSettings {
            idle_timeout: s.idle_timeout,
            // Through a transaction pooler a named statement may not outlive its transaction.
            statement_cache: if server.pooled(via) {
                0
            } else {
                s.pool.statement_cache
            },
            // Tenant traffic only; maintenance and templates are reached directly.
            statement_timeout: s.pool.statement_timeout.filter(|_| via == Via::Tenant),
            // A lazy pool only builds its handle here; connecting happens on first use.
            lazy: true,
            // One connection: a slot.
            ..PoolSettings::new(&s.pool, 1)
        };
        connect_pool(&server.database_url(database, via), &settings).await
    }
    // ANCHOR_END: open

    // ANCHOR: lease
    /// A lease on the pool of `database` on server `server`, opening the pool when needed
    /// (reaching the database `via` the pooler or directly; a database is always reached the
    /// same way).
    pub async fn lease(self: &Arc<Self>, server: usize, database: &str, via: Via) -> Result<Lease> {
        let srv = self.servers[server].clone();
        srv.check_up(self.settings.retry_after).await?;
        let key = (server, database.to_owned());
        let deadline = tokio::time::Instant::now() + self.settings.budget_timeout;
        loop {
            // Registered before looking, so a pool freed in between still wakes us.
            let freed = srv.changed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();

            let next = {
                let mut state = lock(&self.state);
                let room = state.allotted[server] < srv.budget;
                let slots = state.pools.entry(key.clone()).or_default();
                let at_cap =
                    slots.len() >= usize::try_from(self.settings.per_database).unwrap_or(1);
                // The free slot used last: its connection's caches are the warmest.
                if let Some(pool) = slots
                    .iter_mut()
                    .filter(|p| !p.leased)
                    .max_by_key(|p| p.last_used)
                {
                    pool.leased = true;
                    pool.last_used = Instant::now();
                    Next::Use(pool.conn.clone(), pool.held.clone(), pool.generation)
                } else if at_cap {
                    // This tenant has its share: it waits for one of its own slots.
                    Next::Wait
                } else if room {
                    state.allotted[server] += 1;
                    Next::Open
                } else {
                    // The budget is spent: close the least recently used free slot of this
                    // server. A tenant that has no slot takes any; one that has slots but
                    // wants more takes only a slot that has been idle a while, so a busy
                    // tenant grows into cold room and never evicts its warm neighbours.
                    let has_slots = !slots.is_empty();
                    let victim = state
                        .pools
                        .iter()
                        .flat_map(|(k, slots)| slots.iter().map(move |p| (k, p)))
                        .filter(|(_, p)| p.server == server && !p.leased)
                        .filter(|(_, p)| !has_slots || p.last_used.elapsed() >= COLD)
                        .min_by_key(|(_, p)| p.last_used)
                        .map(|(k, p)| (k.clone(), p.generation));
                    match victim.and_then(|(k, generation)| state.take_slot(&k, generation)) {
                        Some(pool) => {
                            state.closed += 1;
                            Next::Close(pool)
                        }
                        None => Next::Wait,
                    }
                }
            };
            match next {
                Next::Use(conn, held, generation) => {
                    return Ok(self.lease_of(key, generation, conn, held));
                }
                Next::Open => return self.insert(key, &srv, via).await,
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
        held: Held,
    ) -> Lease {
        Lease {
            router: self.clone(),
            key,
            generation,
            conn,
            held,
        }
    }

    /// Opens one more slot of `key`, whose connection is already allotted, and leases it.
    async fn insert(
        self: &Arc<Self>,
        key: (usize, String),
        srv: &Server,
        via: Via,
    ) -> Result<Lease> {
        let conn = match self.open(srv, &key.1, via).await {
            Ok(conn) => conn,
            Err(e) => {
                self.release(key.0, 1);
                return Err(e);
            }
        };
        let held = Held::default();
        let mut state = lock(&self.state);
        state.next_generation += 1;
        let generation = state.next_generation;
        state.pools.entry(key.clone()).or_default().push(Pool {
            server: key.0,
            generation,
            conn: conn.clone(),
            held: held.clone(),
            leased: true,
            last_used: Instant::now(),
        });
        drop(state);
        Ok(self.lease_of(key, generation, conn, held))
    }

    // ANCHOR: evict
    fn release(&self, server: usize, connections: u32) {
        let mut state = lock(&self.state);
        state.allotted[server] = state.allotted[server].saturating_sub(connections);
        drop(state);
        self.servers[server].changed.notify_waiters();
    }

    async fn close(&self, pool: Pool) {
        // A connection the slot holds goes back to its pool first: closing the pool waits for
        // every connection to come back.
        drop(lock(&pool.held).take());
        pool.conn.close().await.ok();
        // The server's backend exits a moment after the client lets go of its connection; the
        // room is reused only once the server no longer counts it (measured: the budget test
        // saw one connection over the budget without this pause).
        tokio::time::sleep(CLOSE_GRACE).await;
        self.release(pool.server, 1);
    }

    /// Closes every slot of `database` on `server` now, even if scopes still use them (they
    /// will fail): for a database about to be dropped, or a template about to be copied.
    pub async fn evict(&self, server: usize, database: &str) {
        let slots = lock(&self.state)
            .pools
            .remove(&(server, database.to_owned()))
            .unwrap_or_default();
        for pool in slots {
            self.close(pool).await;
        }
    }
    // ANCHOR_END: evict
}
