//! A PostgreSQL server of a test's own, on a free loopback port: the second server of the
//! separate-db tests, which they stop and start again to prove that a store survives it.
//!
//! It is a fresh cluster (`initdb` + `pg_ctl` from the machine's PostgreSQL binaries, found
//! through `PG_BINDIR` or `pg_config --bindir`) in a temporary folder. PostgreSQL refuses to
//! run as root, so as root the commands run as the `postgres` user (`runuser`), which Debian's
//! PostgreSQL package creates.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tenancy_core::embedded::{local_installation, running_as_root};

/// A cluster started for one test. [`TestServer::remove`] stops it and deletes its files;
/// a failing test leaves it running and names its folder on stderr.
#[derive(Debug)]
pub struct TestServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// More `-c name=value` options for the server (Citus' preload library, for instance).
    settings: String,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

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
        let bin = install.join("bin");
        let dir = std::env::temp_dir().join(format!(
            "tenancy-test-server-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ));
        std::fs::create_dir_all(&dir)?;
        let server = TestServer {
            dir,
            bin,
            port: free_port()?,
            settings: settings.to_owned(),
        };
        if running_as_root() {
            server.run(
                Command::new("chown").arg("postgres:").arg(&server.dir),
                false,
            )?;
        }
        let data = server.data();
        server.run(
            Command::new(server.bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
            true,
        )?;
        server.start_again()?;
        eprintln!(
            "test server on port {} in {}",
            server.port,
            server.dir.display()
        );
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, cmd: &mut Command, as_postgres: bool) -> Result<()> {
        let mut cmd = if as_postgres && running_as_root() {
            let mut wrapped = Command::new("runuser");
            wrapped
                .args(["-u", "postgres", "--"])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            wrapped
        } else {
            std::mem::replace(cmd, Command::new("true"))
        };
        let out = cmd
            .output()
            .with_context(|| format!("running {:?}", cmd.get_program()))?;
        ensure!(
            out.status.success(),
            "{:?} failed: {}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether the server accepts TCP connections.
    pub fn answers(&self) -> bool {
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(300),
        )
        .is_ok()
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c max_connections=200 -c shared_buffers=32MB {}",
            self.port,
            self.dir.display(),
            self.settings
        );
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .args(["-w", "-t", "30", "-o", &options, "-l"])
                .arg(self.dir.join("log"))
                .arg("-D")
                .arg(self.data())
                .arg("start"),
            true,
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if Instant::now() > deadline {
                bail!("the test server on port {} does not answer", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: open connections are cut, as in an outage).
    pub fn stop(&self) -> Result<()> {
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .args(["-w", "-m", "fast", "-D"])
                .arg(self.data())
                .arg("stop"),
            true,
        )
    }

    /// The shell command that stops the server and deletes its files, for a watcher that
    /// outlives the test process.
    pub(crate) fn removal_command(&self) -> String {
        let stop = format!(
            "{} -w -m fast -D {} stop",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let stop = if running_as_root() {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        format!("{stop} >/dev/null 2>&1; rm -rf {}", self.dir.display())
    }

    /// Stops the server and deletes its files.
    pub fn remove(self) -> Result<()> {
        self.stop().ok();
        remove_dir(&self.dir)
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}
