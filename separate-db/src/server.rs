//! One PostgreSQL server of a separate-db store: where it is, its connection budget, and
//! whether it answers (a server that does not is reported `Unavailable` and left alone for a
//! while, then tried again).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tenancy_core::{Error, Result};
use tokio::sync::Notify;

use crate::mutex::lock;

/// How a connection reaches a database: tenant traffic (through the server's pooler, if it
/// has one), or directly (the maintenance database, the template, which `CREATE DATABASE`
/// copies only when nothing else is connected to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Tenant,
    Direct,
}

/// How long the probe waits for a TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A server that did not answer the last probe.
#[derive(Debug)]
struct Down {
    /// When a probe last began.
    probed: Instant,
}

/// One PostgreSQL server the store places tenants on.
#[derive(Debug)]
pub(crate) struct Server {
    pub name: String,
    /// A URL of the server; its database is the maintenance database (`CREATE DATABASE` runs
    /// there).
    pub url: url::Url,
    /// Where tenant databases' traffic goes instead of [`Server::url`] (a pooler).
    pub tenant_url: Option<url::Url>,
    /// The most connections the store holds to this server.
    pub budget: u32,
    /// Wakes requests waiting for budget when a pool comes free or closes.
    pub(crate) changed: Notify,
    /// Set while the server is known not to answer: requests fail fast.
    down: Mutex<Option<Down>>,
    /// Counts connections to this server that broke under a scope. A slot's idle connection
    /// kept since an earlier count is not trusted: it goes through its pool's ping first.
    broken: AtomicU64,
}

impl Server {
    pub fn new(name: String, url: url::Url, tenant_url: Option<url::Url>, budget: u32) -> Self {
        Server {
            name,
            url,
            tenant_url,
            budget,
            changed: Notify::new(),
            down: Mutex::new(None),
            broken: AtomicU64::new(0),
        }
    }

    /// How many connections to this server broke so far (see [`Server::connection_broke`]).
    pub(crate) fn broken_count(&self) -> u64 {
        self.broken.load(Ordering::Acquire)
    }

    /// A connection to this server broke (a restart, a terminated backend): the idle
    /// connections the slots keep may be dead as well.
    pub(crate) fn connection_broke(&self) {
        self.broken.fetch_add(1, Ordering::AcqRel);
    }

    /// The URL of `database` on this server, through the pooler when `via` is
    /// [`Via::Tenant`] and the server has one.
    pub fn database_url(&self, database: &str, via: Via) -> String {
        let mut u = match (&self.tenant_url, via) {
            (Some(pooler), Via::Tenant) => pooler.clone(),
            _ => self.url.clone(),
        };
        u.set_path(database);
        u.to_string()
    }

    /// Whether tenant traffic goes through a pooler.
    pub fn pooled(&self, via: Via) -> bool {
        self.tenant_url.is_some() && via == Via::Tenant
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
        lock(&self.down).is_none()
    }

    // ANCHOR: health
    /// Fails at once with [`Error::Unavailable`] while the server is marked down, except
    /// that one request every `retry_after` asks the server again (a TCP connect): the first
    /// answer ends the outage for every request, with no wait for a timer to run out.
    pub(crate) async fn check_up(&self, retry_after: Duration) -> Result<()> {
        {
            let mut down = lock(&self.down);
            match down.as_mut() {
                None => return Ok(()),
                Some(d) if d.probed.elapsed() < retry_after => return Err(self.unavailable()),
                // This request asks; the others fail fast until `retry_after` from now.
                Some(d) => d.probed = Instant::now(),
            }
        }
        if self.probe().await {
            Ok(())
        } else {
            Err(self.unavailable())
        }
    }

    /// Asks the server directly whether it answers, and marks it down (or up) accordingly.
    async fn probe(&self) -> bool {
        let host = self.url.host_str().unwrap_or("localhost").to_owned();
        let port = self.url.port().unwrap_or(5432);
        let up = matches!(
            tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port))
            )
            .await,
            Ok(Ok(_))
        );
        *lock(&self.down) = (!up).then(|| Down {
            probed: Instant::now(),
        });
        if !up {
            tracing::warn!(server = %self.name, "server does not answer");
        }
        up
    }

    /// Turns a timeout on this server's pools into `Unavailable` when the server is down.
    pub async fn explain(&self, err: Error) -> Error {
        match err {
            Error::PoolTimeout | Error::Unavailable(_) => {
                if self.probe().await {
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
