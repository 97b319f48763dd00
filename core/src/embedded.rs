//! A private PostgreSQL server for tests and the demo, when no `DATABASE_URL` is given.
//!
//! Started through the `postgresql_embedded` crate on binaries already installed on the
//! machine (found with `pg_config --bindir` or in the usual folders), so it starts in about a
//! second and needs no network. PostgreSQL refuses to run as root; as root this fails with a
//! message saying to set `DATABASE_URL` instead.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgresql_embedded::{PostgreSQL, Settings, VersionReq};

/// Why the embedded server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// PostgreSQL refuses to run as root.
    #[error(
        "PostgreSQL refuses to run as root, so no embedded server can be started. \
         Set DATABASE_URL to a running PostgreSQL (for example \
         postgres://postgres@127.0.0.1:5432/postgres), or run as an unprivileged user"
    )]
    RunningAsRoot,
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
    server: PostgreSQL,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl EmbeddedPostgres {
    /// Initialises (on first use) and starts a server.
    pub async fn start(options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        if running_as_root() {
            return Err(EmbeddedError::RunningAsRoot);
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
        Ok(EmbeddedPostgres { server })
    }

    /// A URL for database `database` on this server, over TCP.
    pub fn url(&self, database: &str) -> String {
        let s = self.server.settings();
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            s.username, s.password, s.port, database
        )
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.server.settings().data_dir
    }

    /// Stops the server cleanly (a fast shutdown: sessions end, data is flushed).
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        let sockets = self.server.settings().socket_dir.clone();
        self.server.stop().await?;
        if let Some(dir) = sockets {
            std::fs::remove_dir_all(&dir).ok();
        }
        Ok(())
    }
}
