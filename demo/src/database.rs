//! The PostgreSQL the demo talks to: `DATABASE_URL` when set, otherwise an embedded server
//! whose data lives in `data_dir/postgres` and survives restarts.

use std::path::Path;

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use tenancy_core::embedded::{EmbeddedOptions, EmbeddedPostgres};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database};

use crate::settings::Settings;

/// The database in use, and the embedded server behind it if the demo started one.
pub struct DemoDatabase {
    /// Holds a password: never log it.
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl std::fmt::Debug for DemoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoDatabase")
            .field("url", &"<redacted>")
            .field("embedded", &self.embedded.is_some())
            .finish()
    }
}

impl DemoDatabase {
    /// Connects to `DATABASE_URL`, or starts (and on first use initialises) the embedded
    /// server and creates the demo's database on it.
    pub async fn start(settings: &Settings) -> Result<Self> {
        if let Some(url) = &settings.database_url {
            return Ok(DemoDatabase {
                url: url.expose_secret().to_owned(),
                embedded: None,
            });
        }
        let root = std::path::absolute(settings.data_dir.join("postgres"))?;
        eprintln!(
            "no DATABASE_URL: starting an embedded PostgreSQL with its data in {}",
            root.display()
        );
        let server = EmbeddedPostgres::start(EmbeddedOptions {
            root: Some(root),
            port: 0,
        })
        .await
        .context("starting the embedded PostgreSQL")?;
        if tenancy_core::embedded::running_as_root() {
            eprintln!(
                "as root: the server runs as the `{}` user, its files in {}",
                tenancy_core::embedded::cluster::SERVER_USER,
                server.data_dir().display()
            );
        }
        let admin = Database::connect(server.url("postgres")).await?;
        let exists = admin
            .query_one_raw(stmt(
                "SELECT 1 AS one FROM pg_database WHERE datname = $1",
                [settings.database_name.clone().into()],
            ))
            .await?
            .is_some();
        if !exists {
            admin
                .execute_unprepared(&format!(
                    "CREATE DATABASE {}",
                    tenancy_core::quote_ident(&settings.database_name)
                ))
                .await?;
        }
        admin.close().await.ok();
        Ok(DemoDatabase {
            url: server.url(&settings.database_name),
            embedded: Some(server),
        })
    }

    /// Whether the demo runs its own server.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops the embedded server cleanly, if there is one.
    pub async fn stop(self) -> Result<()> {
        if let Some(server) = self.embedded {
            server
                .stop()
                .await
                .context("stopping the embedded PostgreSQL")?;
            eprintln!("embedded PostgreSQL stopped cleanly");
        }
        Ok(())
    }
}

/// Removes the demo's data folder (for `--fresh`), with the embedded server's data wherever
/// it lives (as root, a folder of the `postgres` user that `postgres` links to).
pub fn wipe(dir: &Path) -> Result<()> {
    if dir.exists() {
        let server = dir.join("postgres");
        tenancy_core::embedded::remove_data(&server)
            .with_context(|| format!("removing {}", server.display()))?;
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        eprintln!("--fresh: removed {}", dir.display());
    }
    Ok(())
}
