//! A PostgreSQL cluster driven with `initdb` and `pg_ctl` from the machine's binaries, run as
//! another system user when this process is root (PostgreSQL refuses to run as root): the
//! embedded server's path as root, and the test servers of the testkit.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{EmbeddedError, io, running_as_root};

/// The system user the server runs as when this process is root: Debian's PostgreSQL package
/// creates it, and it owns the cluster's folder.
pub const SERVER_USER: &str = "postgres";

/// How the superuser `postgres` logs in.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No password (`trust`), for throw-away test clusters on loopback.
    Trust,
    /// `scram-sha-256` with this password, for a cluster that outlives the process.
    Password(&'a str),
}

/// A cluster in `dir` (its data in `dir/data`, its log in `dir/log`, its socket in `dir`),
/// listening on 127.0.0.1:`port`.
#[derive(Debug, Clone)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// More `-c name=value` options for the server.
    settings: String,
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it a moment later).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether system user `user` exists, and its home folder.
pub fn system_user_home(user: &str) -> Option<PathBuf> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    line.trim().split(':').nth(5).map(PathBuf::from)
}

impl Cluster {
    /// A cluster in `dir` run by the binaries in `bin`; nothing is created yet.
    pub fn new(dir: PathBuf, bin: PathBuf, port: u16, settings: &str) -> Self {
        Cluster {
            dir,
            bin,
            port,
            settings: settings.to_owned(),
        }
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `dir/data` holds an initialised cluster.
    pub fn initialised(&self) -> bool {
        self.data().join("PG_VERSION").is_file()
    }

    /// Runs `program args` as the server's user when this process is root, else as itself.
    fn run(&self, program: &Path, args: &[&std::ffi::OsStr]) -> Result<(), EmbeddedError> {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args);
        let out = cmd.output().map_err(io(program))?;
        if out.status.success() {
            return Ok(());
        }
        Err(EmbeddedError::Command {
            command: format!("{cmd:?}"),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    /// Creates the folder (owned by the server's user when this process is root) and
    /// initialises the data folder with superuser `postgres`.
    pub fn init(&self, auth: Auth<'_>) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let data = self.data();
        let mut args: Vec<&std::ffi::OsStr> = ["-U", "postgres", "-E", "UTF8", "--no-sync"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
        let pwfile = self.dir.join("initdb-password");
        match auth {
            Auth::Trust => args.extend(["-A", "trust"].map(std::ffi::OsStr::new)),
            Auth::Password(pw) => {
                std::fs::remove_file(&pwfile).ok();
                super::write_private(&pwfile, pw).map_err(io(&pwfile))?;
                args.extend(["-A", "scram-sha-256", "--pwfile"].map(std::ffi::OsStr::new));
                args.push(pwfile.as_os_str());
            }
        }
        args.extend([std::ffi::OsStr::new("-D"), data.as_os_str()]);
        if running_as_root() {
            self.chown()?;
        }
        let done = self.run(&self.bin.join("initdb"), &args);
        std::fs::remove_file(&pwfile).ok();
        done
    }

    /// Creates the folder and fills the data folder with a base backup of the server on
    /// 127.0.0.1:`primary` (`pg_basebackup -R`, WAL streamed): a standby of that server, which
    /// follows it once started.
    pub fn base_backup(&self, primary: u16) -> Result<(), EmbeddedError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        if running_as_root() {
            self.chown()?;
        }
        let data = self.data();
        let port = primary.to_string();
        self.run(
            &self.bin.join("pg_basebackup"),
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-R".as_ref(),
                "--no-sync".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        )
    }

    /// Gives the folder to the server's user (as root).
    fn chown(&self) -> Result<(), EmbeddedError> {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{SERVER_USER}:"))
            .arg(&self.dir)
            .output()
            .map_err(io(&self.dir))?;
        if !out.status.success() {
            return Err(EmbeddedError::Command {
                command: format!("chown -R {SERVER_USER}: {}", self.dir.display()),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Whether the server accepts TCP connections.
    pub fn answers(&self) -> bool {
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(300),
        )
        .is_ok()
    }

    /// Starts the server, waiting until it accepts connections.
    pub fn start(&self) -> Result<(), EmbeddedError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} {}",
            self.port,
            self.dir.display(),
            self.settings
        );
        let log = self.dir.join("log");
        let data = self.data();
        self.run(
            &self.bin.join("pg_ctl"),
            &[
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-D".as_ref(),
                data.as_os_str(),
                "start".as_ref(),
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if Instant::now() > deadline {
                return Err(EmbeddedError::Command {
                    command: format!("pg_ctl start on port {}", self.port),
                    output: "started, but does not answer on its port".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: sessions end, data is flushed).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let data = self.data();
        self.run(
            &self.bin.join("pg_ctl"),
            &[
                "-w".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "stop".as_ref(),
            ],
        )
    }

    /// The shell command that stops the server and deletes its files, for a watcher that
    /// outlives this process.
    pub fn removal_command(&self) -> String {
        let stop = format!(
            "{} -w -m fast -D {} stop",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let stop = if running_as_root() {
            format!("runuser -u {SERVER_USER} -- {stop}")
        } else {
            stop
        };
        format!("{stop} >/dev/null 2>&1; rm -rf {}", self.dir.display())
    }
}
