//! The command line's definitions: the commands, their arguments and their help, as clap
//! reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use uuid::Uuid;

// ANCHOR: commands
/// The tenancy demo: one API, three ways to keep tenants apart.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// A TOML settings file (default: tenancy-demo.toml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// shared-schema, separate-schema, separate-db or hybrid (must be compiled in).
    #[arg(long, global = true, env = "TENANCY_STRATEGY")]
    pub strategy: Option<String>,
    /// Remove the data folder first (the embedded database, the admin token) and start clean.
    /// With DATABASE_URL, the database it names is left as it is.
    #[arg(long, global = true)]
    pub fresh: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create, list or delete tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Migrate every tenant.
    Migrate {
        /// Tenants migrated at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Create tenants full of projects and tasks.
    Seed {
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        #[arg(long, default_value_t = 10)]
        projects: usize,
        #[arg(long, default_value_t = 5)]
        tasks: usize,
    },
    /// Create users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Issue, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// separate-db: the server to place it on.
        #[arg(long)]
        server: Option<String>,
        /// Where its rows go: shared, schema or database (a store of one strategy takes its
        /// own only; hybrid defaults to its configured default placement).
        #[arg(long)]
        placement: Option<String>,
    },
    List,
    Delete {
        slug: String,
    },
    /// Suspend a tenant: its data stays, it is served nothing until it is resumed.
    Suspend {
        slug: String,
    },
    /// Resume a suspended tenant.
    Resume {
        slug: String,
    },
    /// Put a tenant on a plan (one of the configured `plans`; `default` for the default plan).
    Plan {
        slug: String,
        plan: String,
    },
    /// What a tenant uses: its rows against its plan, its storage (as JSON).
    Usage {
        slug: String,
    },
    /// Write one tenant's rows to a file (a per-tenant backup).
    Export {
        slug: String,
        /// The file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore an export into a new tenant (the file is checked whole before anything is
    /// written).
    Import {
        file: PathBuf,
        /// The new tenant's slug (default: the exported tenant's, which must then be free).
        #[arg(long)]
        slug: Option<String>,
        /// The new tenant's name (default: the exported tenant's).
        #[arg(long)]
        name: Option<String>,
        /// Where to put it: shared, schema or database (hybrid; default: the configured
        /// default placement).
        #[arg(long)]
        placement: Option<String>,
    },
    /// Run a task for every tenant (or those of --only), a few at a time per server; a run
    /// stopped part-way is finished by running it again with the same --run.
    Run {
        /// The task: purge-done-tasks (delete done tasks created more than --days ago).
        task: String,
        /// The run's name (default: the task and today's date).
        #[arg(long)]
        run: Option<String>,
        /// Only these tenants, separated by commas.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Tenants at once on each server.
        #[arg(long, default_value_t = 4)]
        per_server: usize,
        /// purge-done-tasks: how old a done task must be, in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Move a live tenant to another placement (hybrid), or to another worker of a Citus
    /// cluster (shared-schema and separate-schema on Citus, with --node).
    Move {
        slug: String,
        /// Where to: shared, schema or database.
        #[arg(long, required_unless_present = "node", conflicts_with = "node")]
        to: Option<String>,
        /// separate-db: the server to move it to.
        #[arg(long, conflicts_with = "node")]
        server: Option<String>,
        /// On a Citus cluster: the worker to move it to, as `host:port`.
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Make the user an owner of this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    Create {
        /// The user's id.
        #[arg(long)]
        user: Uuid,
        /// The token stops working after this many days (default: never, until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// A user's tokens (ids and dates; the tokens themselves are not stored).
    List {
        #[arg(long)]
        user: Uuid,
    },
    /// Revoke a token by its id: every process stops accepting it at once.
    Revoke { id: Uuid },
}
// ANCHOR_END: commands
