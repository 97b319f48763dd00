//! The command line: `serve` (the default) and the operations a learner runs by hand.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tenancy_core::{MigrateOptions, NewTenant, PageRequest, PlacementKind, Slug};
use tenancy_example::seed;
use uuid::Uuid;

use crate::accounts::{self, NewUser};
use crate::database::{DemoDatabase, wipe};
use crate::settings::Settings;
use crate::startup::{Application, Backend, admin_token};

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
            Command::Serve => serve(&settings, &backend, strategy, &database.url).await,
            Command::Tenants(cmd) => tenants(&settings, &backend, cmd).await,
            Command::Migrate { concurrency } => migrate(&backend, concurrency).await,
            Command::Seed {
                tenants,
                projects,
                tasks,
            } => seed(&backend, tenants, projects, tasks).await,
            Command::Users(UsersCommand::Create {
                email,
                name,
                tenant,
            }) => {
                let user = accounts::create_user(&backend.control, NewUser { email, name }).await?;
                if let Some(slug) = tenant {
                    let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
                    accounts::set_membership(
                        &backend.control,
                        t.id,
                        user.id,
                        accounts::Role::Owner,
                    )
                    .await?;
                }
                println!("{}", serde_json::to_string_pretty(&user)?);
                Ok(())
            }
            Command::Tokens(TokensCommand::Create {
                user,
                expires_in_days,
            }) => {
                let expires_at = expires_in_days
                    .map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
                let token = accounts::create_token(&backend.control, user, expires_at).await?;
                println!("{}", token.token);
                eprintln!("(shown once: it is stored hashed; its id is {})", token.id);
                Ok(())
            }
            Command::Tokens(TokensCommand::List { user }) => {
                let tokens = accounts::list_tokens(&backend.control, user).await?;
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                Ok(())
            }
            Command::Tokens(TokensCommand::Revoke { id }) => {
                accounts::revoke_token(&backend.control, id).await?;
                eprintln!("token {id} revoked");
                Ok(())
            }
        }
    }
    .await;
    database.stop().await?;
    result
}

/// Writes `content` to `path`, readable by its owner only, replacing what was there.
fn replace_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    tenancy_core::embedded::write_private(path, content)
}

async fn serve(
    settings: &Settings,
    backend: &Backend,
    strategy: tenancy_core::Strategy,
    database_url: &str,
) -> Result<()> {
    if let Some(mover) = &backend.mover {
        let resumed = mover.resume().await?;
        if resumed > 0 {
            eprintln!("tenancy-demo: {resumed} interrupted moves rolled back or finished");
        }
    }
    // On a Citus cluster: node moves a stopped process left, finished.
    let resumed = backend.store.resume_node_moves().await?;
    if !resumed.is_empty() {
        eprintln!(
            "tenancy-demo: {} interrupted node moves finished",
            resumed.len()
        );
    }
    backend.ensure_static_tenants(settings).await?;
    let first = if settings.sample_data {
        backend.first_run().await?
    } else {
        None
    };
    let (admin, new_admin) = admin_token(settings)?;
    let app = Application::build(settings, backend, &admin)?;
    let base = app.base_url();
    // For psql and the book's commands: where the database is, and the sample owner's token.
    std::fs::create_dir_all(&settings.data_dir)?;
    let url_file = settings.data_dir.join("database-url");
    replace_private(&url_file, database_url)
        .with_context(|| format!("writing {}", url_file.display()))?;
    if let Some(first) = &first {
        let token_file = settings.data_dir.join("sample-token");
        replace_private(&token_file, &first.token)
            .with_context(|| format!("writing {}", token_file.display()))?;
    }
    println!("tenancy-demo: strategy {strategy}, listening on {base}");
    println!("  API page: {base}/docs/   explorer: {base}/explorer   OpenAPI: {base}/openapi.json");
    println!(
        "  psql: psql \"$(cat {})\"   metrics: {base}/metrics",
        url_file.display()
    );
    if new_admin {
        println!(
            "  admin token (saved in {}): {admin}",
            settings.data_dir.join("admin-token").display()
        );
    }
    if let Some(first) = first {
        println!(
            "first run: created tenant {:?}, user demo@example.com (owner) and a token (saved \
             in {}). Try:",
            first.tenant,
            settings.data_dir.join("sample-token").display()
        );
        println!(
            "  curl -H 'Authorization: Bearer {}' {base}/t/{}/api/projects",
            first.token, first.tenant
        );
    }
    app.run_until_stopped().await?;
    eprintln!("tenancy-demo: stopped");
    Ok(())
}

async fn tenants(settings: &Settings, backend: &Backend, cmd: TenantsCommand) -> Result<()> {
    let statics = crate::statics::StaticTenants::new(&settings.tenants);
    match cmd {
        TenantsCommand::Create {
            slug,
            name,
            server,
            placement,
        } => {
            let slug = Slug::parse(&slug)?;
            let mut new = NewTenant::new(slug.clone(), name.unwrap_or_else(|| slug.to_string()));
            new.server = server;
            new.placement = placement
                .as_deref()
                .map(str::parse::<PlacementKind>)
                .transpose()?;
            let t = backend.store.create_tenant(new).await?;
            println!(
                "{} {} {}",
                t.slug,
                t.state.as_str(),
                serde_json::to_string(&t.placement)?
            );
        }
        TenantsCommand::List => {
            // Static tenants first, apart from the customers'.
            let mut all = Vec::new();
            let mut page = PageRequest::first(500);
            loop {
                let got = backend.store.list_tenants(page).await?;
                all.extend(got.items);
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let (fixed, customers): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|t| statics.purpose(t.slug.as_str()).is_some());
            for (heading, group) in [("static", fixed), ("dynamic", customers)] {
                println!("{heading} tenants: {}", group.len());
                for t in &group {
                    let purpose = statics
                        .purpose(t.slug.as_str())
                        .map(|p| format!("\tpurpose {}", p.as_str()))
                        .unwrap_or_default();
                    println!(
                        "  {}\t{}\t{}\t{}{purpose}",
                        t.slug,
                        t.state.as_str(),
                        t.name,
                        serde_json::to_string(&t.placement)?
                    );
                }
            }
        }
        TenantsCommand::Delete { slug } => {
            statics.refuse(&slug, "deleted")?;
            let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
            backend.store.delete_tenant(t.id).await?;
            println!("deleted {slug}");
        }
        TenantsCommand::Export { slug, out } => export(backend, &slug, &out).await?,
        TenantsCommand::Import {
            file,
            slug,
            name,
            placement,
        } => import(backend, &file, slug, name, placement).await?,
        TenantsCommand::Move {
            slug,
            to,
            server,
            node,
        } => {
            statics.refuse(&slug, "moved")?;
            match (node, to) {
                (Some(node), _) => move_to_node(backend, &slug, &node).await?,
                (None, Some(to)) => move_tenant(backend, &slug, &to, server).await?,
                (None, None) => anyhow::bail!("say where to: --to PLACEMENT or --node HOST:PORT"),
            }
        }
    }
    Ok(())
}

/// A bar over the rows of an export, import or move.
fn rows_bar(what: &str) -> (ProgressBar, impl Fn(tenancy_core::Progress) + Send + Sync) {
    let bar = progress(0, what);
    let b = bar.clone();
    let tell = move |p: tenancy_core::Progress| {
        b.set_length(p.rows_total);
        b.set_position(p.rows_done);
    };
    (bar, tell)
}

// ANCHOR: export
async fn export(backend: &Backend, slug: &str, out: &std::path::Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let t = backend.store.tenant_by_slug(&Slug::parse(slug)?).await?;
    // Written beside the target and renamed when complete: a failed export leaves no file
    // that looks like one.
    let partial = out.with_extension("partial");
    let mut file = tokio::io::BufWriter::new(
        tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let (bar, tell) = rows_bar("exporting");
    let manifest = backend.store.export(&t, &mut file, &tell).await;
    bar.finish_and_clear();
    let manifest = manifest?;
    file.shutdown().await?;
    tokio::fs::rename(&partial, out).await?;
    eprintln!(
        "exported {} ({} rows in {} tables, schema version {}) to {}",
        t.slug,
        manifest.rows(),
        manifest.tables.len(),
        manifest.schema_version,
        out.display()
    );
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
// ANCHOR_END: export

async fn import(
    backend: &Backend,
    file: &std::path::Path,
    slug: Option<String>,
    name: Option<String>,
    placement: Option<String>,
) -> Result<()> {
    let mut input = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let manifest = tenancy_core::plumbing::transfer::check_file(&mut input).await?;
    let slug = Slug::parse(slug.as_deref().unwrap_or(&manifest.slug))?;
    let mut new = NewTenant::new(slug, name.unwrap_or(manifest.name.clone()));
    new.placement = placement
        .as_deref()
        .map(str::parse::<PlacementKind>)
        .transpose()?;
    let (bar, tell) = rows_bar("importing");
    let t = backend.store.import(new, &mut input, &tell).await;
    bar.finish_and_clear();
    let t = t?;
    eprintln!(
        "imported {} rows into tenant {} ({})",
        manifest.rows(),
        t.slug,
        t.placement
    );
    Ok(())
}

async fn move_tenant(
    backend: &Backend,
    slug: &str,
    to: &str,
    server: Option<String>,
) -> Result<()> {
    let Some(mover) = &backend.mover else {
        anyhow::bail!(
            "strategy {} moves no tenant: run with --strategy hybrid",
            backend.store.strategy()
        );
    };
    let to: PlacementKind = to.parse()?;
    let t = backend.store.tenant_by_slug(&Slug::parse(slug)?).await?;
    let job = mover.start(t.id, to, server).await?;
    eprintln!("moving {} (job {})", t.slug, job.id);
    let (bar, tell) = rows_bar("copying");
    let moved = mover.run(t.id, &tell).await;
    bar.finish_and_clear();
    let moved = moved?;
    eprintln!("moved {} to {}", moved.slug, moved.placement);
    Ok(())
}

/// A node move on a Citus cluster, its steps on a bar (`started`, `isolated` in shared
/// tables, `moved`, `done`) read from its job while it runs.
async fn move_to_node(backend: &Backend, slug: &str, node: &str) -> Result<()> {
    const STEPS: [&str; 4] = ["started", "isolated", "moved", "done"];
    let store = &backend.store;
    let t = store.tenant_by_slug(&Slug::parse(slug)?).await?;
    let job = store.start_node_move(&t, node).await?;
    eprintln!("moving {} to node {node} (job {})", t.slug, job.id);
    let bar = progress(STEPS.len() as u64 - 1, "started");
    let mut shown = String::new();
    let run = store.run_node_move(t.id);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let done = loop {
        tokio::select! {
            done = &mut run => break done,
            _ = tick.tick() => {
                let Ok(now) = store.job(job.id).await else { continue };
                if now.step != shown {
                    if bar.is_hidden() {
                        eprintln!("{}: {}", t.slug, now.step);
                    }
                    let at = STEPS.iter().position(|s| *s == now.step).unwrap_or(0);
                    bar.set_position(at as u64);
                    bar.set_message(now.step.clone());
                    shown = now.step;
                }
            }
        }
    };
    bar.finish_and_clear();
    let done = done?;
    if done.step != "done" {
        anyhow::bail!(
            "the move of {} ended {}: {}",
            t.slug,
            done.step,
            done.error.unwrap_or_default()
        );
    }
    eprintln!("moved {} to node {node}", t.slug);
    Ok(())
}

async fn migrate(backend: &Backend, concurrency: usize) -> Result<()> {
    let spinner = progress(0, "migrating");
    if spinner.is_hidden() {
        eprintln!("migrating every tenant, {} at a time", concurrency.max(1));
    } else {
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    let report = backend
        .store
        .migrate_all(MigrateOptions {
            concurrency: concurrency.max(1),
        })
        .await?;
    spinner.finish_and_clear();
    eprintln!(
        "migrated: {} tenants changed, {} already current, {} failed",
        report
            .tenants
            .iter()
            .filter(|t| t.tenant_id.is_some()
                && matches!(t.outcome, tenancy_core::MigrationOutcome::Migrated { .. }))
            .count(),
        report.up_to_date,
        report.failures().count()
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.is_success() {
        anyhow::bail!("{} tenants failed to migrate", report.failures().count());
    }
    Ok(())
}

/// A progress bar on a terminal; plain lines (every tenth of the way) otherwise.
fn progress(len: u64, what: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = if len == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(len)
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        bar
    } else {
        ProgressBar::hidden()
    }
}

async fn seed(backend: &Backend, n: usize, projects_each: usize, tasks_each: usize) -> Result<()> {
    let bar = progress(n as u64, "seeding");
    let plain = bar.is_hidden();
    for i in 0..n {
        let slug = Slug::parse(&format!("seed-{i}"))?;
        let t = backend
            .store
            .create_tenant(NewTenant::new(slug, format!("Seed {i}")))
            .await?;
        let scope = backend.store.scope(&t).await?;
        seed::projects_with_tasks(&scope, "Project ", projects_each, tasks_each).await?;
        scope.commit().await?;
        bar.inc(1);
        if plain && (n < 10 || (i + 1).is_multiple_of(n / 10)) {
            eprintln!("seeded {}/{n} tenants", i + 1);
        }
    }
    bar.finish_and_clear();
    println!("seeded {n} tenants with {projects_each} projects of {tasks_each} tasks each");
    Ok(())
}
