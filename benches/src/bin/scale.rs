//! The scale runner: grows each strategy to many tenants and records what it costs.
//!
//! Run with `cargo run --release -p tenancy-benches --bin scale -- --tenants 1000`
//! (`--strategy shared-schema` to pick one; `--help` for the rest). Against `DATABASE_URL`, on
//! the same machine as PostgreSQL (backend memory is read from `/proc`). Per strategy it
//! records tenants created per second, the mean of one more creation at a time with that many
//! present, `migrate_all` with nothing pending and with one new column (the median of
//! `--rounds` runs, each adding one more), p50/p99 scoped read
//! latency under concurrent load spread over every tenant, the connections held on the server,
//! backend memory after the load touched every tenant, and disk per tenant. For
//! separate-schema it also runs the physical baselines with `psql` in the same run: the
//! creation's DDL and the new column, one transaction per schema, the column right after each
//! of the store's rounds. It writes
//! `scale-<strategy>-<tenants>.json` (with the date, commit, CPU, PostgreSQL, Rust and sqlx of
//! the run) into the output folder, which the book renders, and SVG charts of every result
//! file there: one per measure and tenant count (`<measure>-<tenants>.svg`), a bar per
//! strategy in its own colour with its value, psql's bar beside it where the run measured
//! the physical limit, on a logarithmic axis when the values span more than a decade.
//! `--charts-only` redraws them from the files without measuring anything.
//!
//! `--citus` runs shared-schema and separate-schema twice in the same run, on a database of the
//! test server and on one of a Citus cluster (the tests' own coordinator and two workers, or
//! `CITUS_URL`), into `docs/src/scale/citus/` (`scale-<strategy>[-citus]-<tenants>.json`).
//! On Citus the backends' memory and the disk are summed over the coordinator and the workers,
//! the connections counted are those to the coordinator, and creation has no psql baseline
//! (a distributed schema is not the DDL psql would send).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tenancy_benches::{Measured, measured};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database};
use tenancy_core::{MigrateOptions, ScopeMode, Strategy, Tenant};
use tenancy_example::projects;
use tenancy_testkit::{DatabaseOn, TestDatabase};
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Args {
    strategies: Vec<Strategy>,
    tenants: usize,
    projects: usize,
    reads: usize,
    concurrency: usize,
    creates: usize,
    migrate_concurrency: usize,
    rounds: usize,
    out: PathBuf,
    charts: bool,
    charts_only: bool,
    /// Each strategy on one server and on a Citus cluster.
    citus: bool,
}

const USAGE: &str = "scale [--strategy NAME]... [--tenants N=1000] [--projects N=5] \
[--reads N=20000] [--concurrency N=16] [--creates N=50] [--migrate-concurrency N=4] [--rounds N=3] [--out DIR=docs/src/scale] [--no-charts | --charts-only] [--citus]";

fn parse() -> Result<Args> {
    let mut args = Args {
        strategies: Vec::new(),
        tenants: 1_000,
        projects: 5,
        reads: 20_000,
        concurrency: 16,
        creates: 50,
        migrate_concurrency: MigrateOptions::default().concurrency,
        rounds: 3,
        out: PathBuf::from("docs/src/scale"),
        charts: true,
        charts_only: false,
        citus: false,
    };
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--strategy" => {
                let v = value()?;
                let s: Strategy = v.parse()?;
                if !tenancy_benches::STRATEGIES.contains(&s) {
                    bail!("the scale runner measures the three strategies, not {s}");
                }
                args.strategies.push(s);
            }
            "--tenants" => args.tenants = value()?.parse()?,
            "--projects" => args.projects = value()?.parse()?,
            "--reads" => args.reads = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--migrate-concurrency" => args.migrate_concurrency = value()?.parse()?,
            "--creates" => args.creates = value()?.parse::<usize>()?.max(1),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--citus" => args.citus = true,
            "--no-charts" => args.charts = false,
            "--charts-only" => args.charts_only = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    if args.citus {
        args.out = out.unwrap_or_else(|| PathBuf::from("docs/src/scale/citus"));
        if args.strategies.contains(&Strategy::SeparateDb) {
            bail!(
                "separate-db does not run on Citus: --citus takes shared-schema and separate-schema"
            );
        }
        if args.strategies.is_empty() {
            args.strategies = vec![Strategy::SharedSchema, Strategy::SeparateSchema];
        }
    } else {
        args.out = out.unwrap_or(args.out);
    }
    if args.strategies.is_empty() {
        args.strategies = tenancy_benches::STRATEGIES.to_vec();
    }
    if args.tenants > 1_000 && args.strategies.contains(&Strategy::SeparateDb) {
        bail!("separate-db is run at up to 1,000 tenants (each is a database of ~7.5 MB)");
    }
    Ok(args)
}

/// One strategy's results.
#[derive(Debug, Serialize, Deserialize)]
struct Results {
    date: String,
    machine: String,
    postgres: String,
    measured: Measured,
    strategy: String,
    /// `citus` when the run was on a Citus cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    tenants: usize,
    projects_per_tenant: usize,
    tenants_created_per_second: f64,
    /// One more tenant created with `tenants` present, one at a time: the mean.
    create_one_ms: f64,
    /// separate-schema only: the same DDL run by `psql`, one transaction per schema, one
    /// session (its start-up subtracted): the physical baseline of a creation.
    psql_create_one_ms: Option<f64>,
    /// Tenants migrated at once (`MigrateOptions::concurrency`).
    #[serde(default)]
    migrate_concurrency: usize,
    migrate_nothing_pending_ms: f64,
    /// The median of `rounds` runs, each adding one more column.
    migrate_one_column_ms: f64,
    #[serde(default)]
    rounds: usize,
    /// separate-schema only: one `ALTER TABLE ... ADD COLUMN` per tenant schema run by
    /// `psql`, one transaction each, one session, over the same schemas; the median of
    /// `rounds`, each run right after the store's.
    psql_add_column_ms: Option<f64>,
    /// separate-schema only: the same by `psql` with the statements the store adds to each
    /// tenant's transaction (catalog lock and update, `search_path` set and reset, the pin
    /// lookup as a prepared statement): what the store's bookkeeping costs at the limit.
    #[serde(default)]
    psql_add_column_bookkept_ms: Option<f64>,
    reads: usize,
    concurrency: usize,
    read_p50_us: f64,
    read_p99_us: f64,
    reads_per_second: f64,
    /// Most connections the store held on the server during the load.
    server_connections: i64,
    /// Proportional set size of the store's backends after the load, in MB (None when
    /// `/proc` is not readable).
    backend_memory_mb: Option<f64>,
    disk_per_tenant_kb: f64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} {wide_bar} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {mem_gib:.0} GiB")
}

async fn scalar<T: tenancy_core::sea_orm::TryGetable>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<tenancy_core::sea_orm::Value>,
) -> Result<T> {
    let row = conn
        .query_one_raw(stmt(sql, values))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<T>(0)?)
}

/// Databases of this run: the control database and any tenant databases named after it.
const OURS: &str = "(datname = $1 OR starts_with(datname, $1 || '_'))";

/// separate-schema's physical baselines, by `psql` on the run's database: each script runs in
/// one `psql` session, timed less the start-up of a `psql` that runs nothing (the least of
/// three, measured once).
struct PsqlBaselines {
    /// What a creation sends, and the tenants' schemas.
    store: tenancy_separate_schema::SeparateSchemaStore,
    url: String,
    start_up: Duration,
    dir: PathBuf,
}

impl PsqlBaselines {
    async fn new(db: &TestDatabase) -> Result<Self> {
        use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
        let dir = std::env::temp_dir().join(format!("tenancy-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut baselines = PsqlBaselines {
            store: SeparateSchemaStore::connect(
                db.url(),
                SeparateSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    ..SeparateSchemaOptions::default()
                },
            )
            .await?,
            url: tenancy_core::plumbing::loopback_without_tls(db.url()),
            start_up: Duration::ZERO,
            dir,
        };
        let start_up = (0..3)
            .map(|_| baselines.session("SELECT 1;\n"))
            .collect::<Result<Vec<_>>>()?;
        baselines.start_up = start_up.into_iter().min().unwrap_or_default();
        Ok(baselines)
    }

    /// Runs `script` in one `psql` session; how long it took, less the start-up.
    fn session(&self, script: &str) -> Result<Duration> {
        let file = self.dir.join("script.sql");
        std::fs::write(&file, script)?;
        let started = Instant::now();
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&file)
            .arg(&self.url)
            .output()
            .context("psql is missing: it comes with PostgreSQL's client programs")?;
        let took = started.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(took.saturating_sub(self.start_up))
    }

    /// A creation: `creates` schemas built with the DDL a creation runs, one transaction each
    /// (then dropped); the mean.
    async fn create(&self, creates: usize) -> Result<Duration> {
        use tenancy_core::{Slug, TenantId};
        let mut build = String::new();
        let mut drop = String::new();
        for i in 0..creates {
            let slug = Slug::parse(&format!("psql{i}"))?;
            let sql = self.store.provisioning_sql(&slug, TenantId::new()).await?;
            build.push_str(&format!("BEGIN;\n{sql};\nCOMMIT;\n"));
            drop.push_str(&format!(
                "DROP SCHEMA {} CASCADE;\n",
                tenancy_core::quote_ident(&self.store.schema_for(&slug))
            ));
        }
        let create = self.session(&build)? / u32::try_from(creates).unwrap_or(u32::MAX);
        self.session(&drop)?;
        Ok(create)
    }

    /// A migration, one transaction per tenant schema: the bare `ALTER TABLE ... ADD COLUMN`,
    /// and the same with the statements the store adds to each tenant's transaction (lock the
    /// catalog row, set and reset `search_path`, core's lookup of tables to pin as a prepared
    /// statement, update the catalog row). Returns (bare, with the bookkeeping).
    async fn add_column(&self, round: usize) -> Result<(Duration, Duration)> {
        use tenancy_core::Slug;
        let rows = self
            .store
            .connection(tenancy_core::plumbing::StrategyDoor)
            .query_all_raw(stmt("SELECT id, slug FROM tenancy.tenants", []))
            .await?;
        let (mut bare, mut kept) = (String::new(), String::new());
        // Every tenant schema has the same lookup (only `public` differs).
        let lookup = tenancy_core::plumbing::pin::unpinned_tables_sql("tenant");
        kept.push_str(&format!("PREPARE pin(text) AS {lookup};\n"));
        for row in rows {
            let slug = Slug::parse(&row.try_get::<String>("", "slug")?)?;
            let id: Uuid = row.try_get("", "id")?;
            let schema = self.store.schema_for(&slug);
            let q = tenancy_core::quote_ident(&schema);
            bare.push_str(&format!(
                "BEGIN;\nALTER TABLE {q}.projects ADD COLUMN psql_column_{round} integer;\nCOMMIT;\n"
            ));
            kept.push_str(&format!(
                "BEGIN;\nSELECT id FROM tenancy.tenants WHERE id = '{id}' FOR UPDATE;\n\
                 SET LOCAL search_path TO {q};\n\
                 ALTER TABLE projects ADD COLUMN psql_kept_{round} integer;\n\
                 SET LOCAL search_path TO DEFAULT;\nEXECUTE pin('{schema}');\n\
                 UPDATE tenancy.tenants SET schema_version = schema_version WHERE id = '{id}';\n\
                 COMMIT;\n"
            ));
        }
        Ok((self.session(&bare)?, self.session(&kept)?))
    }
}

impl Drop for PsqlBaselines {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

impl Results {
    /// The strategy, and `on Citus` when it ran there: a bar's label.
    fn label(&self) -> String {
        match &self.cluster {
            Some(c) => format!(
                "{} on {}",
                self.strategy,
                if c == "citus" { "Citus" } else { c }
            ),
            None => self.strategy.clone(),
        }
    }
}

/// The pids of the run's backends on every worker of a Citus cluster (the coordinator's are
/// found as on one server), read through the coordinator on the run's database.
async fn worker_pids(db: &impl ConnectionTrait) -> Result<Vec<i32>> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT result FROM run_command_on_workers($$SELECT coalesce(string_agg(pid::text, \
             ','), '') FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()$$)",
            [],
        ))
        .await?;
    let mut pids = Vec::new();
    for r in rows {
        let list: String = r.try_get("", "result")?;
        for pid in list.split(',').filter(|p| !p.is_empty()) {
            pids.push(pid.parse()?);
        }
    }
    Ok(pids)
}

async fn run(strategy: Strategy, args: &Args, on: DatabaseOn) -> Result<Results> {
    let citus = on == DatabaseOn::Citus;
    let at = if citus { " on Citus" } else { "" };
    let db = TestDatabase::create_on(on).await?;
    let admin =
        Database::connect(tenancy_core::plumbing::loopback_without_tls(db.admin_url())).await?;
    let store =
        tenancy_benches::open_store(strategy, &db, tenancy_benches::migrations_with_columns(0))
            .await?;

    // Grow.
    let progress = bar(args.tenants as u64, &format!("{strategy}{at}: tenants"));
    let started = Instant::now();
    let tenants: Vec<(Tenant, Vec<Uuid>)> = futures::stream::iter(0..args.tenants)
        .map(|i| {
            let (store, progress) = (store.clone(), progress.clone());
            async move {
                let t = tenancy_benches::tenant(store.as_ref(), &format!("t{i}")).await?;
                let rows =
                    tenancy_benches::seed_projects(store.scope(&t).await?, args.projects).await?;
                progress.inc(1);
                anyhow::Ok((t, rows.into_iter().map(|p| p.id).collect()))
            }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let grown = started.elapsed();
    progress.finish_and_clear();

    // One more tenant at a time, the way an operator creates one, then the same by psql.
    let started = Instant::now();
    for i in 0..args.creates {
        tenancy_benches::tenant(store.as_ref(), &format!("extra{i}")).await?;
    }
    let create_one = started.elapsed() / u32::try_from(args.creates).unwrap_or(u32::MAX);

    // Migrate.
    let started = Instant::now();
    let report = store
        .migrate_all(MigrateOptions {
            concurrency: args.migrate_concurrency,
        })
        .await?;
    let nothing = started.elapsed();
    anyhow::ensure!(report.is_success(), "{report:?}");
    // One new column, `rounds` times, each round the store's run then psql's beside it.
    let psql = match strategy {
        Strategy::SeparateSchema => Some(PsqlBaselines::new(&db).await?),
        _ => None,
    };
    let (mut ours, mut theirs, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let column_store = tenancy_benches::open_store(
            strategy,
            &db,
            tenancy_benches::migrations_with_columns(round + 1),
        )
        .await?;
        let started = Instant::now();
        let report = column_store
            .migrate_all(MigrateOptions {
                concurrency: args.migrate_concurrency,
            })
            .await?;
        ours.push(started.elapsed());
        anyhow::ensure!(report.is_success(), "{report:?}");
        drop(column_store);
        if let Some(psql) = &psql {
            let (bare, bookkept) = psql.add_column(round).await?;
            theirs.push(bare);
            kept.push(bookkept);
        }
    }
    let one_column = median(ours);
    let baselines = match &psql {
        Some(psql) => Some((
            if citus {
                None
            } else {
                Some(psql.create(args.creates).await?)
            },
            median(theirs),
            median(kept),
        )),
        None => None,
    };
    drop(psql);

    // Read under load, spread over every tenant, watching the server's connections.
    let most = Arc::new(AtomicI64::new(0));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (most, watching, admin, name) = (
            most.clone(),
            watching.clone(),
            admin.clone(),
            db.name().to_owned(),
        );
        async move {
            while watching.load(Ordering::Relaxed) {
                let n: i64 = scalar(
                    &admin,
                    &format!("SELECT count(*) FROM pg_stat_activity WHERE {OURS} AND pid <> pg_backend_pid()"),
                    vec![name.clone().into()],
                )
                .await?;
                most.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        }
    });
    let tenants = Arc::new(tenants);
    let progress = bar(args.reads as u64, &format!("{strategy}{at}: reads"));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..args.reads)
        .map(|k| {
            let (store, tenants, progress) = (store.clone(), tenants.clone(), progress.clone());
            async move {
                let (t, ids) = &tenants[(k * 2_654_435_761) % tenants.len()];
                let id = ids[k % ids.len().max(1)];
                let t0 = Instant::now();
                let scope = store.scope_with(t, ScopeMode::Autocommit).await?;
                projects::get(&scope, id).await?;
                drop(scope);
                progress.inc(1);
                anyhow::Ok(t0.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let load = started.elapsed();
    progress.finish_and_clear();
    watching.store(false, Ordering::Relaxed);
    watcher.await??;
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };

    // What the server holds now.
    let mut pids = admin
        .query_all_raw(stmt(
            &format!("SELECT pid FROM pg_stat_activity WHERE {OURS} AND pid <> pg_backend_pid()"),
            [db.name().to_owned().into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get::<i32>("", "pid"))
        .collect::<Result<Vec<_>, _>>()?;
    // On Citus: the workers' backends and disk too, through the coordinator.
    let (mut worker_disk, mut on_db) = (0i64, None);
    if citus {
        let conn =
            Database::connect(tenancy_core::plumbing::loopback_without_tls(db.url())).await?;
        pids.extend(worker_pids(&conn).await?);
        worker_disk = scalar(
            &conn,
            "SELECT coalesce(sum(result::bigint), 0)::bigint FROM run_command_on_workers(\
             $$SELECT pg_database_size(current_database())$$)",
            vec![],
        )
        .await?;
        on_db = Some(conn);
    }
    let memory = pids
        .iter()
        .map(|pid| pss_kb(*pid))
        .collect::<Option<Vec<f64>>>()
        .map(|kbs| kbs.iter().sum::<f64>() / 1024.0);
    let disk: i64 = scalar(
        &admin,
        &format!("SELECT sum(pg_database_size(datname))::bigint FROM pg_database WHERE {OURS}"),
        vec![db.name().to_owned().into()],
    )
    .await?;
    let disk = disk + worker_disk;
    if let Some(conn) = on_db {
        conn.close().await.ok();
    }
    let postgres: String =
        scalar(&admin, "SELECT current_setting('server_version')", vec![]).await?;

    drop(store);
    admin.close().await.ok();
    db.drop_database().await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Results {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        machine: machine(),
        measured: measured(&postgres),
        postgres,
        strategy: strategy.as_str().into(),
        cluster: citus.then(|| "citus".to_owned()),
        tenants: args.tenants,
        projects_per_tenant: args.projects,
        tenants_created_per_second: args.tenants as f64 / grown.as_secs_f64(),
        create_one_ms: ms(create_one),
        psql_create_one_ms: baselines.and_then(|(create, _, _)| create.map(ms)),
        migrate_concurrency: args.migrate_concurrency,
        migrate_nothing_pending_ms: ms(nothing),
        migrate_one_column_ms: ms(one_column),
        rounds: args.rounds,
        psql_add_column_ms: baselines.map(|(_, add, _)| ms(add)),
        psql_add_column_bookkept_ms: baselines.map(|(_, _, kept)| ms(kept)),
        reads: args.reads,
        concurrency: args.concurrency,
        read_p50_us: pct(0.50),
        read_p99_us: pct(0.99),
        reads_per_second: args.reads as f64 / load.as_secs_f64(),
        server_connections: most.load(Ordering::Relaxed),
        backend_memory_mb: memory,
        disk_per_tenant_kb: disk as f64 / 1024.0 / (args.tenants + args.creates) as f64,
    })
}

/// A process's proportional set size in kB, from `/proc/<pid>/smaps_rollup`.
fn pss_kb(pid: i32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Each strategy's colour, the same in every chart (and in the book's diagrams' legend).
fn colour(strategy: &str) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match strategy {
        "shared-schema" => RGBColor(0x3b, 0x5b, 0xa5),
        "separate-schema" => RGBColor(0xd9, 0x7b, 0x1e),
        "separate-db" => RGBColor(0x2e, 0x8b, 0x57),
        _ => RGBColor(0x88, 0x88, 0x88),
    }
}

/// The physical limit's bars (psql running the same statements): grey.
const LIMIT: plotters::style::RGBColor = plotters::style::RGBColor(0x9a, 0x9a, 0x9a);

/// One measure the charts show: a figure per tenant count.
struct Measure {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    /// What the figure is: which statistic of how many runs.
    what: fn(&Results) -> String,
    metric: fn(&Results) -> Option<f64>,
    /// The same work done by psql, where the run measured it (separate-schema).
    limit: Option<fn(&Results) -> Option<f64>>,
}

const MEASURES: &[Measure] = &[
    Measure {
        file: "tenants-per-second",
        title: "Tenants created per second",
        unit: "tenants/s, higher is better",
        what: |r| {
            format!(
                "one run: {} tenants ({} projects each), 4 at a time",
                label(r.tenants as f64),
                r.projects_per_tenant
            )
        },
        metric: |r| Some(r.tenants_created_per_second),
        limit: None,
    },
    Measure {
        file: "create-one",
        title: "One more tenant, created alone",
        unit: "ms, lower is better",
        what: |r| format!("the mean of one run's creations, {} present", r.tenants),
        metric: |r| Some(r.create_one_ms),
        limit: Some(|r| r.psql_create_one_ms),
    },
    Measure {
        file: "migrate-one-column",
        title: "migrate_all, one new column",
        unit: "ms, lower is better",
        what: |r| match r.rounds {
            // Files from before `--rounds` record none: one run.
            0 | 1 => "one run".into(),
            n => format!("the median of {n} runs"),
        },
        metric: |r| Some(r.migrate_one_column_ms),
        limit: Some(|r| r.psql_add_column_ms),
    },
    Measure {
        file: "read-p99",
        title: "Scoped read under load, p99",
        unit: "µs, lower is better",
        what: |r| {
            format!(
                "the p99 of {} reads by {} at once, one run",
                label(r.reads as f64),
                r.concurrency
            )
        },
        metric: |r| Some(r.read_p99_us),
        limit: None,
    },
    Measure {
        file: "backend-memory",
        title: "Server backend memory after the load",
        unit: "MB (PSS), lower is better",
        what: |_| "one run, summed over the store's backends".into(),
        metric: |r| r.backend_memory_mb,
        limit: None,
    },
    Measure {
        file: "disk-per-tenant",
        title: "Disk per tenant",
        unit: "kB, lower is better",
        what: |_| "one run: the databases' size over the tenants".into(),
        metric: |r| Some(r.disk_per_tenant_kb),
        limit: None,
    },
];

/// A value as a bar's label: three significant digits at most, thousands grouped.
fn label(v: f64) -> String {
    let digits = if v >= 100.0 || v == 0.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        grouped
    } else {
        format!("{grouped}.{frac}")
    }
}

/// One figure: `measure` at one tenant count, a bar per strategy in its colour (and psql's
/// bar where the run measured the physical limit), each with its value, on a logarithmic
/// axis when the values span more than a decade.
fn chart(results: &[&Results], out: &Path, measure: &Measure) -> Result<Option<PathBuf>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let mut bars: Vec<(String, f64, RGBColor)> = Vec::new();
    for r in results {
        if let Some(v) = (measure.metric)(r) {
            bars.push((r.label(), v, colour(&r.strategy)));
        }
        if let Some(v) = measure.limit.and_then(|limit| limit(r)) {
            bars.push((format!("psql ({})", r.label()), v, LIMIT));
        }
    }
    let Some(first) = results.first() else {
        return Ok(None);
    };
    if bars.is_empty() {
        return Ok(None);
    }
    let top = bars.iter().map(|b| b.1).fold(f64::MIN, f64::max);
    let low = bars.iter().map(|b| b.1).fold(f64::MAX, f64::min);
    let path = out.join(format!("{}-{}.svg", measure.file, first.tenants));
    let file = path.clone();
    let root = SVGBackend::new(&file, (640, 404)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "{}, {} tenants ({})",
        measure.title,
        label(first.tenants as f64),
        measure.unit
    );
    // What each bar is, said once for the strategies it is the same for.
    let mut whats: Vec<(String, Vec<&str>)> = Vec::new();
    for r in results {
        let what = (measure.what)(r);
        match whats.iter_mut().find(|(w, _)| *w == what) {
            Some((_, strategies)) => strategies.push(&r.strategy),
            None => whats.push((what, vec![&r.strategy])),
        }
    }
    let what = if whats.len() == 1 {
        whats[0].0.clone()
    } else {
        whats
            .iter()
            .map(|(w, s)| format!("{}: {w}", s.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut dates: Vec<&str> = results.iter().map(|r| r.date.as_str()).collect();
    dates.sort();
    dates.dedup();
    let note = format!(
        "{}, {}, PostgreSQL {}; from scale-*-{}.json",
        dates.join(" and "),
        first.machine,
        first.postgres.split(' ').next().unwrap_or(""),
        first.tenants
    );
    let (plot, foot) = root.split_vertically(368);
    foot.draw(&Text::new(what, (12, 2), ("sans-serif", 11).into_font()))?;
    foot.draw(&Text::new(note, (12, 16), ("sans-serif", 11).into_font()))?;
    let mut builder = ChartBuilder::on(&plot);
    builder
        .caption(&caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    let x = (0..bars.len().saturating_sub(1)).into_segmented();
    let labels = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    let value_style = ("sans-serif", 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    if top / low.max(f64::MIN_POSITIVE) > 10.0 && low > 0.0 {
        // Log axis: from the decade below the smallest bar to above the largest.
        let floor = 10f64.powf(low.log10().floor());
        let ceil = 10f64.powf((top * 3.0).log10().ceil());
        let mut c = builder.build_cartesian_2d(x, (floor..ceil).log_scale())?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&labels)
            .y_label_formatter(&|v| label(*v))
            .y_desc("log scale")
            .draw()?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, col))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), floor),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                col.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), *v),
                value_style.clone(),
            )
        }))?;
    } else {
        let mut c = builder.build_cartesian_2d(x, 0.0..(top * 1.15).max(1e-9))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len())
            .x_label_formatter(&labels)
            .y_label_formatter(&|v| label(*v))
            .draw()?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, col))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                col.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v, _))| {
            Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), *v),
                value_style.clone(),
            )
        }))?;
    }
    root.present()?;
    Ok(Some(path))
}

/// A figure per measure and tenant count from every result file in `out`, as
/// `<measure>-<tenants>.svg`.
fn charts(out: &Path) -> Result<Vec<PathBuf>> {
    let mut results: Vec<Results> = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            results.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    let order = |s: &str| {
        tenancy_benches::STRATEGIES
            .iter()
            .position(|x| x.as_str() == s)
            .unwrap_or(usize::MAX)
    };
    results.sort_by_key(|r| (r.tenants, order(&r.strategy), r.cluster.clone()));
    let mut sizes: Vec<usize> = results.iter().map(|r| r.tenants).collect();
    sizes.dedup();
    let mut written = Vec::new();
    for n in sizes {
        let at: Vec<&Results> = results.iter().filter(|r| r.tenants == n).collect();
        for measure in MEASURES {
            written.extend(chart(&at, out, measure)?);
        }
    }
    Ok(written)
}

fn main() -> Result<()> {
    let args = parse()?;
    std::fs::create_dir_all(&args.out)?;
    let rt = tenancy_benches::runtime();
    let strategies = if args.charts_only {
        &[][..]
    } else {
        &args.strategies[..]
    };
    let on: &[DatabaseOn] = if args.citus {
        &[DatabaseOn::Plain, DatabaseOn::Citus]
    } else {
        &[DatabaseOn::Plain]
    };
    for &strategy in strategies {
        for &on in on {
            let results = rt.block_on(run(strategy, &args, on))?;
            let cluster = if on == DatabaseOn::Citus {
                "-citus"
            } else {
                ""
            };
            let file = args
                .out
                .join(format!("scale-{strategy}{cluster}-{}.json", args.tenants));
            std::fs::write(&file, serde_json::to_string_pretty(&results)? + "\n")?;
            println!("{}", serde_json::to_string(&results)?);
            eprintln!("wrote {}", file.display());
        }
    }
    if args.charts {
        let written = charts(&args.out)?;
        eprintln!("{} charts in {}", written.len(), args.out.display());
    }
    Ok(())
}
