//! Shared set-up for the criterion benches: databases on a real PostgreSQL (`DATABASE_URL`,
//! or the embedded server of the testkit), stores of every strategy (opened as the demo opens
//! them) and plain single-tenant baselines, seeded outside the timed part.

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tenancy_core::migration::TenantMigrations;
use tenancy_core::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait,
};
use tenancy_core::sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use tenancy_core::{NewTenant, Slug, Strategy, Tenant, TenantScope, TenantStore};
use tenancy_demo::strategy::StoreSettings;
use tenancy_example::projects::Project;
use tenancy_example::seed;
use tenancy_testkit::TestDatabase;

/// The strategies the benches compare, in the order they appear in reports.
pub const STRATEGIES: &[Strategy] = &[
    Strategy::SharedSchema,
    Strategy::SeparateSchema,
    Strategy::SeparateDb,
];

/// Whether criterion runs in test mode: each bench once, so the set-up uses small sizes to
/// keep CI fast. Criterion runs so under `cargo bench -- --test`, and under `cargo test
/// --benches`, which starts a bench without `--bench`.
pub fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// The filter criterion was given (`cargo bench --bench NAME -- FILTER`): the first argument
/// that is neither an option nor an option's value. Criterion reads it as a regular
/// expression over the benchmark ids (`group/variant/parameter`).
pub fn filter() -> Option<String> {
    filter_in(std::env::args().skip(1))
}

/// Criterion's options that take a value, whose value is not the filter.
const VALUED: &[&str] = &[
    "-c",
    "--color",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--profile-time",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
    "--format",
    "--logfile",
];

fn filter_in(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if VALUED.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// Which of a bench's `variants` to set up under criterion's filter: all of them unless the
/// filter names some (it matches `/variant/`, as the variant appears in an id), and then
/// those, with `always` (the baseline) kept for comparison. So
/// `cargo bench --bench routing_tax -- separate-db` builds only separate-db's database and
/// the baseline's, and a filter on a group (`routing_tax/read`) still sets up everything.
pub fn selected<'a>(variants: &[&'a str], always: &[&str]) -> Vec<&'a str> {
    select(filter().as_deref(), variants, always)
}

fn select<'a>(filter: Option<&str>, variants: &[&'a str], always: &[&str]) -> Vec<&'a str> {
    let Some(re) = filter.and_then(|f| regex::Regex::new(f).ok()) else {
        return variants.to_vec();
    };
    let named: Vec<&str> = variants
        .iter()
        .copied()
        .filter(|v| !always.contains(v) && re.is_match(&format!("/{v}/")))
        .collect();
    if named.is_empty() {
        // The filter names only what is always kept, or no variant at all (a group).
        let only_always = variants
            .iter()
            .any(|v| always.contains(v) && re.is_match(&format!("/{v}/")));
        return if only_always {
            variants
                .iter()
                .copied()
                .filter(|v| always.contains(v))
                .collect()
        } else {
            variants.to_vec()
        };
    }
    variants
        .iter()
        .copied()
        .filter(|v| always.contains(v) || named.contains(v))
        .collect()
}

/// [`STRATEGIES`] under criterion's filter (see [`selected`]; these benches have no baseline).
pub fn strategies() -> Vec<Strategy> {
    let names: Vec<&str> = STRATEGIES.iter().map(|s| s.as_str()).collect();
    let keep = selected(&names, &[]);
    STRATEGIES
        .iter()
        .copied()
        .filter(|s| keep.contains(&s.as_str()))
        .collect()
}

/// A multi-threaded tokio runtime for `to_async`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

/// Opens a store of `strategy` on `db` with `migrations`, through the demo's
/// [`tenancy_demo::strategy::open`], in each strategy's recommended configuration (the
/// libraries' defaults; separate-db: a budget of 20 connections).
pub async fn open_store(
    strategy: Strategy,
    db: &TestDatabase,
    migrations: TenantMigrations,
) -> Result<Arc<dyn TenantStore>> {
    let settings = StoreSettings {
        migrations,
        ..StoreSettings::default()
    };
    tenancy_demo::strategy::open(strategy, db.url(), &settings).await
}

/// The baseline's database: the domain's tables, unqualified, in `db` with no tenancy
/// around them.
pub async fn plain_database(db: &TestDatabase) -> Result<DatabaseConnection> {
    let conn = Database::connect(tenancy_core::plumbing::loopback_without_tls(db.url())).await?;
    let txn = conn.begin().await?;
    tenancy_example::migrations().apply(&txn, None, 0).await?;
    txn.commit().await?;
    Ok(conn)
}

/// A migration that adds one nullable column to `projects`: what a routine schema change
/// looks like.
#[derive(Debug)]
pub struct AddColumn {
    name: String,
    column: String,
}

impl MigrationName for AddColumn {
    fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddColumn {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE projects ADD COLUMN {} integer",
                self.column
            ))
            .await?;
        Ok(())
    }
}

/// The domain's migrations followed by `extra` one-column migrations.
pub fn migrations_with_columns(extra: usize) -> TenantMigrations {
    use tenancy_core::sea_orm_migration::MigratorTrait;
    let mut list = tenancy_example::migration::Migrator::migrations();
    for i in 0..extra {
        list.push(Box::new(AddColumn {
            name: format!("m9{i:03}_bench_column"),
            column: format!("bench_column_{i}"),
        }));
    }
    TenantMigrations::new(list)
}

/// Creates `n` projects (`p0`, `p1`, ...) through `scope` and commits; returns them.
pub async fn seed_projects(scope: TenantScope, n: usize) -> Result<Vec<Project>> {
    let out = seed::projects_with_tasks(&scope, "p", n, 0).await?;
    scope.commit().await?;
    Ok(out)
}

/// One point read of project `id` through an autocommit scope of `t`, as the domain code
/// makes it: what the read benches time.
pub async fn read_project(store: &dyn TenantStore, t: &Tenant, id: uuid::Uuid) -> Project {
    let scope = store
        .scope_with(t, tenancy_core::ScopeMode::Autocommit)
        .await
        .expect("scope");
    tenancy_example::projects::get(&scope, id)
        .await
        .expect("read")
}

/// The store's tenant with `slug`, created if missing.
pub async fn tenant(store: &dyn TenantStore, slug: &str) -> Result<Tenant> {
    Ok(store
        .create_tenant(NewTenant::new(Slug::parse(slug)?, slug))
        .await?)
}

/// Creates tenants `{prefix}0` .. `{prefix}{n-1}`, `concurrency` at a time.
pub async fn tenants(
    store: &dyn TenantStore,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Tenant>> {
    use futures::StreamExt;
    let created: Vec<Result<Tenant>> = futures::stream::iter(0..n)
        .map(|i| async move { tenant(store, &format!("{prefix}{i}")).await })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    created.into_iter().collect()
}

/// Where and with what a run was measured (the same fields as `docs/results.py` records).
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    pub date: String,
    pub commit: String,
    pub cpu: String,
    pub cores: usize,
    pub postgresql: String,
    pub rust: String,
    pub sqlx: String,
}

/// The PostgreSQL version `psql --version` reports (the server's binaries on this machine).
pub fn psql_version() -> String {
    std::process::Command::new("psql")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("psql (PostgreSQL) ", "")
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The run's details for a result file: date, commit (`-dirty` with changes), CPU, cores,
/// PostgreSQL, Rust and sqlx.
pub fn measured(postgresql: &str) -> Measured {
    let command = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            )
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| Some(l.split_once(':')?.1.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into());
    let sqlx = std::fs::read_to_string(format!("{root}/Cargo.lock"))
        .ok()
        .and_then(|lock| {
            let at = lock.find("name = \"sqlx\"\nversion = \"")? + 25;
            Some(lock[at..].split('"').next()?.to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Measured {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        commit: command("git", &["-C", root, "describe", "--always", "--dirty"]),
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        postgresql: postgresql.to_owned(),
        rust: command("rustc", &["--version"]),
        sqlx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &[&str] = &[
        "baseline",
        "shared-schema",
        "shared-schema-predicate-only",
        "separate-db",
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_filter_is_the_first_free_argument() {
        assert_eq!(filter_in(args(&["--bench"])), None);
        assert_eq!(
            filter_in(args(&[
                "--bench",
                "--save-baseline",
                "before",
                "separate-db"
            ]))
            .as_deref(),
            Some("separate-db")
        );
        assert_eq!(filter_in(args(&["--baseline", "x", "--test"])), None);
    }

    #[test]
    fn a_filter_naming_a_variant_sets_up_it_and_the_baseline() {
        assert_eq!(select(None, V, &["baseline"]), V);
        assert_eq!(
            select(Some("separate-db"), V, &["baseline"]),
            ["baseline", "separate-db"]
        );
        // `/v/` keeps a name from matching a longer one.
        assert_eq!(
            select(Some("/shared-schema/"), V, &["baseline"]),
            ["baseline", "shared-schema"]
        );
        assert_eq!(
            select(Some("predicate"), V, &["baseline"]),
            ["baseline", "shared-schema-predicate-only"]
        );
        // A group: every variant, as criterion will run them all; the baseline alone: itself.
        assert_eq!(select(Some("routing_tax/read"), V, &["baseline"]), V);
        assert_eq!(select(Some("baseline"), V, &["baseline"]), ["baseline"]);
    }
}
