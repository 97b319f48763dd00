//! A PostgreSQL server of a test's own, on a free loopback port: the second server of the
//! separate-db tests, which they stop and start again to prove that a store survives it.
//!
//! It is a fresh cluster (`initdb` + `pg_ctl` from the machine's PostgreSQL binaries, found
//! through `PG_BINDIR` or `pg_config --bindir`) in a temporary folder. PostgreSQL refuses to
//! run as root, so as root the commands run as the `postgres` user (`runuser`), which Debian's
//! PostgreSQL package creates.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tenancy_core::embedded::cluster::{Auth, Cluster, free_port};
use tenancy_core::embedded::local_installation;

/// A cluster started for one test. [`TestServer::remove`] stops it and deletes its files;
/// a failing test leaves it running and names its folder on stderr.
#[derive(Debug)]
pub struct TestServer {
    cluster: Cluster,
}

/// Settings every test cluster gets: no fsync (throw-away data), room for the tests' pools.
const TEST_SETTINGS: &str = "-c fsync=off -c max_connections=200 -c shared_buffers=32MB";

impl TestServer {
    /// Creates and starts a new cluster; takes a second or two.
    pub fn start() -> Result<Self> {
        Self::start_with("")
    }

    /// Creates and starts a new cluster with more server options (`-c name=value ...`).
    pub fn start_with(settings: &str) -> Result<Self> {
        let install = local_installation().context(
            "the multi-server tests start a second PostgreSQL from local binaries: install \
             PostgreSQL's server package or set PG_BINDIR to the folder holding initdb and pg_ctl",
        )?;
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "tenancy-test-server-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ));
        let cluster = Cluster::new(
            dir,
            install.join("bin"),
            free_port()?,
            &format!("{TEST_SETTINGS} {settings}"),
        );
        cluster.init(Auth::Trust)?;
        cluster.start()?;
        eprintln!(
            "test server on port {} in {}",
            cluster.port(),
            cluster.dir().display()
        );
        Ok(TestServer { cluster })
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.cluster.port()
        )
    }

    /// Whether the server accepts TCP connections.
    pub fn answers(&self) -> bool {
        self.cluster.answers()
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        Ok(self.cluster.start()?)
    }

    /// Stops the server (fast shutdown: open connections are cut, as in an outage).
    pub fn stop(&self) -> Result<()> {
        Ok(self.cluster.stop()?)
    }

    /// The shell command that stops the server and deletes its files, for a watcher that
    /// outlives the test process.
    pub(crate) fn removal_command(&self) -> String {
        self.cluster.removal_command()
    }

    /// Stops the server and deletes its files.
    pub fn remove(self) -> Result<()> {
        self.stop().ok();
        let dir = self.cluster.dir();
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
    }
}
