//! The command line: `serve` (the default) and the operations a learner runs by hand. This
//! module runs one command: it reads the settings, starts the database, opens the store and
//! hands the command to the file of its family.

mod args;
mod migrate;
mod moves;
mod progress;
mod run;
mod seed;
mod serve;
mod tenants;
mod transfer;
mod users;

use anyhow::{Context, Result};

pub use args::{Cli, Command, TenantsCommand, TokensCommand, UsersCommand};

use crate::database::{DemoDatabase, wipe};
use crate::settings::Settings;
use crate::startup::Backend;

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if cli.strategy.is_some() {
        settings.strategy = cli.strategy.clone();
    }
    let strategy = crate::strategy::pick(settings.strategy.as_deref())?;
    if cli.fresh {
        wipe(&settings.data_dir)?;
        if settings.database_url.is_some() {
            eprintln!(
                "--fresh: removed {} only; DATABASE_URL is set and the database it names is \
                 left as it is (to start clean, point DATABASE_URL at a new, empty database)",
                settings.data_dir.display()
            );
        }
    }
    let database = DemoDatabase::start(&settings).await?;
    let result = async {
        let backend = Backend::open(strategy, &database.url, &settings)
            .await
            .context("opening the store")?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve::serve(&settings, &backend, strategy, &database.url).await,
            Command::Tenants(cmd) => tenants::tenants(&settings, &backend, cmd).await,
            Command::Migrate { concurrency } => migrate::migrate(&backend, concurrency).await,
            Command::Seed {
                tenants,
                projects,
                tasks,
            } => seed::seed(&backend, tenants, projects, tasks).await,
            Command::Users(cmd) => users::users(&backend, cmd).await,
            Command::Tokens(cmd) => users::tokens(&backend, cmd).await,
        }
    }
    .await;
    database.stop().await?;
    result
}
