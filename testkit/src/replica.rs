//! A primary and its streaming replica, of a test's own: a [`TestServer`] and a standby made
//! from it with `pg_basebackup -R` into a folder of the test's, started on a free loopback
//! port (as the `postgres` user when the test runs as root), removed at the end. Lag is made
//! on demand by pausing the standby's replay.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tenancy_core::embedded::cluster::{Cluster, free_port};
use tenancy_core::embedded::local_installation;
use tenancy_core::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::TestServer;

/// The primary's settings: room for the tests' pools; the standby cancels a query that holds
/// back replay after a second (a recovery conflict, on demand).
const PRIMARY: &str = "-c wal_level=replica -c max_wal_senders=4";
const STANDBY: &str = "-c fsync=off -c max_connections=200 -c shared_buffers=32MB \
                       -c hot_standby=on -c max_standby_streaming_delay=1s";

/// A primary and a standby that streams from it.
#[derive(Debug)]
pub struct Replicated {
    /// The primary: every write goes here.
    pub primary: TestServer,
    standby: Cluster,
}

impl Replicated {
    /// Starts a primary, makes a standby of it with `pg_basebackup -R` and starts that; takes a
    /// few seconds.
    pub fn start() -> Result<Self> {
        let primary = TestServer::start_with(PRIMARY)?;
        let install = local_installation().context("PostgreSQL's binaries for the standby")?;
        let dir = std::env::temp_dir().join(format!(
            "tenancy-test-standby-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ));
        let standby = Cluster::new(dir, install.join("bin"), free_port()?, STANDBY);
        standby
            .base_backup(primary.port())
            .context("pg_basebackup -R from the test primary")?;
        standby.start().context("starting the standby")?;
        eprintln!(
            "standby of port {} on port {} in {}",
            primary.port(),
            standby.port(),
            standby.dir().display()
        );
        Ok(Replicated { primary, standby })
    }

    /// The primary's administrative URL (database `postgres`), where a test makes its database.
    pub fn primary_url(&self) -> String {
        self.primary.url("postgres")
    }

    /// A URL for `database` on the standby.
    pub fn standby_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.standby.port()
        )
    }

    async fn standby_admin(&self) -> Result<DatabaseConnection> {
        Ok(Database::connect(self.standby_url("postgres")).await?)
    }

    async fn on_standby(&self, sql: &str) -> Result<()> {
        let admin = self.standby_admin().await?;
        admin
            .execute_raw(Statement::from_string(admin.get_database_backend(), sql))
            .await?;
        admin.close().await.ok();
        Ok(())
    }

    /// Pauses the standby's replay: it keeps receiving WAL and serves what it had.
    pub async fn pause_replay(&self) -> Result<()> {
        self.on_standby("SELECT pg_wal_replay_pause()").await
    }

    /// Resumes the standby's replay.
    pub async fn resume_replay(&self) -> Result<()> {
        self.on_standby("SELECT pg_wal_replay_resume()").await
    }

    /// Waits (up to ten seconds) until the standby has replayed everything the primary had
    /// written when this was called.
    pub async fn caught_up(&self) -> Result<()> {
        let primary = Database::connect(self.primary_url()).await?;
        let row = primary
            .query_one_raw(Statement::from_string(
                primary.get_database_backend(),
                "SELECT pg_current_wal_lsn()::text",
            ))
            .await?
            .context("the primary's LSN")?;
        let target: String = row.try_get_by_index(0)?;
        primary.close().await.ok();
        let standby = self.standby_admin().await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = standby
                .query_one_raw(Statement::from_string(
                    standby.get_database_backend(),
                    format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"),
                ))
                .await?
                .context("the standby's LSN")?;
            if row.try_get_by_index::<bool>(0)? {
                standby.close().await.ok();
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the standby did not replay up to {target} within ten seconds");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the standby (fast: open connections are cut, as in an outage).
    pub fn stop_standby(&self) -> Result<()> {
        Ok(self.standby.stop()?)
    }

    /// Starts the standby again, waiting until it accepts connections.
    pub fn start_standby(&self) -> Result<()> {
        Ok(self.standby.start()?)
    }

    /// Stops both servers and deletes their files.
    pub fn remove(self) -> Result<()> {
        self.standby.stop().ok();
        std::fs::remove_dir_all(self.standby.dir()).ok();
        self.primary.remove()
    }
}
