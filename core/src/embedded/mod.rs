//! A private PostgreSQL server for tests and the demo, when no `DATABASE_URL` is given.
//!
//! Started through the `postgresql_embedded` crate on binaries already installed on the
//! machine (found with `pg_config --bindir` or in the usual folders), so it starts in about a
//! second and needs no network. PostgreSQL refuses to run as root: as root the server runs as
//! the `postgres` system user instead ([`cluster`]), its data in a folder that user owns under
//! its home, reached through a link at the data folder asked for; where no such user exists,
//! starting fails with the one command that creates it.

pub mod cluster;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgresql_embedded::{PostgreSQL, Settings, VersionReq};

/// Why the embedded server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// PostgreSQL refuses to run as root, and there is no `postgres` system user to run it as.
    #[error(
        "PostgreSQL refuses to run as root, and this machine has no `postgres` system user to \
         run it as. Create one with: useradd --system --user-group --create-home \
         --home-dir /var/lib/postgresql postgres (or set DATABASE_URL to a running PostgreSQL)"
    )]
    RootWithoutServerUser,
    /// A server command (`initdb`, `pg_ctl`, `chown`) failed.
    #[error("{command} failed: {output}")]
    Command {
        /// The command, as run.
        command: String,
        /// What it printed.
        output: String,
    },
    /// No PostgreSQL binaries were found and downloading is not compiled in.
    #[error(
        "no PostgreSQL binaries found (looked for pg_config, /usr/lib/postgresql/*/bin, \
         /usr/local/pgsql/bin). Install PostgreSQL, set PG_BINDIR to its bin folder, \
         or set DATABASE_URL to a running server"
    )]
    NoBinaries,
    /// Preparing the data folder failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The folder that could not be prepared.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The server failed to initialise, start or stop.
    #[error("embedded PostgreSQL: {0}")]
    Server(#[from] postgresql_embedded::Error),
}

/// Where and how to run the embedded server.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// A folder that keeps the data between runs; `None` for a throw-away server.
    pub root: Option<PathBuf>,
    /// The TCP port on 127.0.0.1; `0` picks a free one.
    pub port: u16,
}

/// A running embedded server. Call [`EmbeddedPostgres::stop`] to shut it down cleanly.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    server: Server,
}

#[derive(Debug)]
enum Server {
    /// Started by `postgresql_embedded`, as this process's user.
    Own(PostgreSQL),
    /// Run as the `postgres` system user, this process being root.
    AsServerUser {
        cluster: cluster::Cluster,
        password: String,
        /// A throw-away cluster, removed when stopped.
        throwaway: bool,
    },
}

/// The installation folder (the parent of `bin/`) of local PostgreSQL binaries, if any.
pub fn local_installation() -> Option<PathBuf> {
    let has_server = |bin: &Path| bin.join("postgres").is_file() && bin.join("initdb").is_file();
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        let bin = PathBuf::from(dir);
        if has_server(&bin) {
            return bin.parent().map(Path::to_path_buf);
        }
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && out.status.success()
    {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&bin) {
            return bin.parent().map(Path::to_path_buf);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort();
    candidates.reverse(); // newest major version first
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    candidates
        .into_iter()
        .find(|bin| has_server(bin))
        .and_then(|bin| bin.parent().map(Path::to_path_buf))
}

/// Whether this process runs as root (PostgreSQL will not).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Creates a file only its owner can read, failing if it exists: for secrets kept beside the
/// data (the embedded superuser's password, the demo's admin token).
pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(content.as_bytes())
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl EmbeddedPostgres {
    /// Initialises (on first use) and starts a server.
    pub async fn start(options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        if running_as_root() {
            let task = tokio::task::spawn_blocking(move || Self::start_as_server_user(options));
            return task.await.map_err(|e| EmbeddedError::Command {
                command: "starting the server".into(),
                output: e.to_string(),
            })?;
        }
        let mut settings = Settings::new();
        settings.host = "127.0.0.1".into();
        settings.port = options.port;
        settings.timeout = Some(Duration::from_secs(30));
        match local_installation() {
            Some(dir) => {
                settings.installation_dir = dir;
                settings.trust_installation_dir = true;
                settings.version = VersionReq::STAR;
            }
            None if cfg!(feature = "embedded-download") => {}
            None => return Err(EmbeddedError::NoBinaries),
        }
        settings.temporary = options.root.is_none();
        if let Some(root) = &options.root {
            std::fs::create_dir_all(root).map_err(io(root))?;
            // PostgreSQL changes into its data folder before it uses these paths.
            let root = &std::path::absolute(root).map_err(io(root))?;
            settings.temporary = false;
            settings.data_dir = root.join("data");
            settings.password_file = root.join("password");
            // Keep the password with the data, so a restart can log in again.
            match std::fs::read_to_string(&settings.password_file) {
                Ok(pw) => settings.password = pw.trim().to_owned(),
                Err(_) => write_private(&settings.password_file, &settings.password)
                    .map_err(io(&settings.password_file))?,
            }
        }
        // A socket folder the process owns (the system default, /var/run/postgresql, is not),
        // short and absolute: a socket path may not exceed 107 bytes.
        let sockets = std::env::temp_dir().join(format!(
            "tenancy-pg-{}-{}",
            std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0),
            std::process::id()
        ));
        std::fs::create_dir_all(&sockets).map_err(io(&sockets))?;
        settings.socket_dir = Some(sockets.clone());
        settings.configuration.insert(
            "unix_socket_directories".into(),
            sockets.display().to_string(),
        );
        let mut server = PostgreSQL::new(settings);
        server.setup().await?;
        server.start().await?;
        Ok(EmbeddedPostgres {
            server: Server::Own(server),
        })
    }

    /// As root: the cluster runs as [`cluster::SERVER_USER`], in a folder of its home named
    /// after `options.root`, with `options.root` a link to it (so the data is found where it
    /// was asked for, and [`remove_data`] removes both). The user needs a path it can reach,
    /// which a checkout under `/root` or a `mktemp -d` folder is not.
    fn start_as_server_user(options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let home = cluster::system_user_home(cluster::SERVER_USER)
            .ok_or(EmbeddedError::RootWithoutServerUser)?;
        let bin = local_installation()
            .ok_or(EmbeddedError::NoBinaries)?
            .join("bin");
        let port = match options.port {
            0 => cluster::free_port().map_err(io(Path::new("127.0.0.1")))?,
            port => port,
        };
        let throwaway = options.root.is_none();
        let dir = match &options.root {
            Some(root) => {
                let root = std::path::absolute(root).map_err(io(root))?;
                let dir = server_user_folder(&home, &root);
                if std::fs::symlink_metadata(&root).is_err() {
                    if let Some(parent) = root.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    std::os::unix::fs::symlink(&dir, &root).map_err(io(&root))?;
                }
                dir
            }
            None => std::env::temp_dir().join(format!(
                "tenancy-pg-{}-{}",
                cluster::SERVER_USER,
                random_hex(8)?
            )),
        };
        let cluster = cluster::Cluster::new(dir.clone(), bin, port, "");
        let password_file = dir.join("password");
        let password = if cluster.initialised() {
            std::fs::read_to_string(&password_file)
                .map_err(io(&password_file))?
                .trim()
                .to_owned()
        } else {
            // A folder left by an initdb that failed half-way holds nothing worth keeping.
            std::fs::remove_dir_all(&dir).ok();
            let password = random_hex(16)?;
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            write_private(&password_file, &password).map_err(io(&password_file))?;
            cluster.init(cluster::Auth::Password(&password))?;
            password
        };
        cluster.start()?;
        Ok(EmbeddedPostgres {
            server: Server::AsServerUser {
                cluster,
                password,
                throwaway,
            },
        })
    }

    /// A URL for database `database` on this server, over TCP.
    pub fn url(&self, database: &str) -> String {
        match &self.server {
            Server::Own(server) => {
                let s = server.settings();
                format!(
                    "postgres://{}:{}@127.0.0.1:{}/{}",
                    s.username, s.password, s.port, database
                )
            }
            Server::AsServerUser {
                cluster, password, ..
            } => format!(
                "postgres://postgres:{password}@127.0.0.1:{}/{database}",
                cluster.port()
            ),
        }
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        match &self.server {
            Server::Own(server) => server.settings().data_dir.clone(),
            Server::AsServerUser { cluster, .. } => cluster.data(),
        }
    }

    /// Stops the server cleanly (a fast shutdown: sessions end, data is flushed).
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        match self.server {
            Server::Own(server) => {
                let sockets = server.settings().socket_dir.clone();
                server.stop().await?;
                if let Some(dir) = sockets {
                    std::fs::remove_dir_all(&dir).ok();
                }
            }
            Server::AsServerUser {
                cluster, throwaway, ..
            } => {
                tokio::task::spawn_blocking(move || {
                    cluster.stop()?;
                    if throwaway {
                        std::fs::remove_dir_all(cluster.dir()).ok();
                    }
                    Ok::<_, EmbeddedError>(())
                })
                .await
                .map_err(|e| EmbeddedError::Command {
                    command: "stopping the server".into(),
                    output: e.to_string(),
                })??;
            }
        }
        Ok(())
    }
}

/// The folder, under the server user's home, that holds the cluster asked for at `root`: named
/// after `root`'s absolute path, so each data folder keeps its own cluster across restarts.
fn server_user_folder(home: &Path, root: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    home.join("tenancy-embedded").join(name)
}

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> Result<String, EmbeddedError> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut buf = vec![0u8; bytes];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io(path))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Removes an embedded server's data folder `root` and, when it is a link to a folder of the
/// server user (the path as root), that folder too. The server must be stopped.
pub fn remove_data(root: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(root)?;
            match std::fs::remove_dir_all(&target) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            std::fs::remove_file(root)
        }
        Ok(_) => std::fs::remove_dir_all(root),
    }
}
