//! One PostgreSQL server of a separate-db store: where it is, its connection budget, and
//! whether it answers (a server that does not is reported `Unavailable` and left alone for a
//! while, then tried again).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tenancy_core::{Error, Result};
use tokio::sync::Notify;

use crate::router::lock;

/// One PostgreSQL server the store places tenants on.
#[derive(Debug)]
pub(crate) struct Server {
    pub name: String,
    /// A URL of the server; its database is the maintenance database (`CREATE DATABASE` runs
    /// there).
    pub url: url::Url,
    /// The most connections the store holds to this server.
    pub budget: u32,
    /// Wakes requests waiting for budget when a pool comes free or closes.
    pub(crate) changed: Notify,
    /// Set when the server did not answer: requests fail fast until then.
    down_until: Mutex<Option<Instant>>,
}

impl Server {
    pub fn new(name: String, url: url::Url, budget: u32) -> Self {
        Server {
            name,
            url,
            budget,
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

    pub(crate) fn check_up(&self) -> Result<()> {
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
