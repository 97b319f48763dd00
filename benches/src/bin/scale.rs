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
//! file there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tenancy_benches::{Measured, measured};
use tenancy_core::domain::projects;
use tenancy_core::sea_orm::{ConnectionTrait, Database};
use tenancy_core::sql::stmt;
use tenancy_core::{MigrateOptions, ScopeMode, Strategy, Tenant};
use tenancy_testkit::TestDatabase;
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
}

const USAGE: &str = "scale [--strategy NAME]... [--tenants N=1000] [--projects N=5] \
[--reads N=20000] [--concurrency N=16] [--creates N=50] [--migrate-concurrency N=4] [--rounds N=3] [--out DIR=docs/src/scale] [--no-charts]";

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
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--strategy" => {
                let v = value()?;
                let s = tenancy_benches::STRATEGIES
                    .iter()
                    .find(|s| s.as_str() == v)
                    .with_context(|| format!("unknown strategy {v}"))?;
                args.strategies.push(*s);
            }
            "--tenants" => args.tenants = value()?.parse()?,
            "--projects" => args.projects = value()?.parse()?,
            "--reads" => args.reads = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--migrate-concurrency" => args.migrate_concurrency = value()?.parse()?,
            "--creates" => args.creates = value()?.parse::<usize>()?.max(1),
            "--out" => args.out = PathBuf::from(value()?),
            "--no-charts" => args.charts = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
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
            store: SeparateSchemaStore::connect(db.url(), SeparateSchemaOptions::default()).await?,
            url: tenancy_core::loopback_without_tls(db.url()),
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
            .connection()
            .query_all_raw(stmt("SELECT id, slug FROM tenancy.tenants", []))
            .await?;
        let (mut bare, mut kept) = (String::new(), String::new());
        // Every tenant schema has the same lookup (only `public` differs).
        let lookup = tenancy_core::migration::unpinned_tables_sql("tenant");
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

async fn run(strategy: Strategy, args: &Args) -> Result<Results> {
    let db = TestDatabase::create().await?;
    let admin = Database::connect(tenancy_core::loopback_without_tls(db.admin_url())).await?;
    let store =
        tenancy_benches::open_store(strategy, &db, tenancy_benches::migrations_with_columns(0))
            .await?;

    // Grow.
    let progress = bar(args.tenants as u64, &format!("{strategy}: tenants"));
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
            psql.create(args.creates).await?,
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
    let progress = bar(args.reads as u64, &format!("{strategy}: reads"));
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
    let pids = admin
        .query_all_raw(stmt(
            &format!("SELECT pid FROM pg_stat_activity WHERE {OURS} AND pid <> pg_backend_pid()"),
            [db.name().to_owned().into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get::<i32>("", "pid"))
        .collect::<Result<Vec<_>, _>>()?;
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
        tenants: args.tenants,
        projects_per_tenant: args.projects,
        tenants_created_per_second: args.tenants as f64 / grown.as_secs_f64(),
        create_one_ms: ms(create_one),
        psql_create_one_ms: baselines.map(|(create, _, _)| ms(create)),
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

/// One SVG bar chart of `metric` over every result file, grouped by tenant count.
fn chart(
    results: &[Results],
    out: &Path,
    file: &str,
    title: &str,
    metric: impl Fn(&Results) -> Option<f64>,
) -> Result<()> {
    use plotters::prelude::*;
    let bars: Vec<(String, f64)> = results
        .iter()
        .filter_map(|r| metric(r).map(|v| (format!("{} ({})", r.strategy, r.tenants), v)))
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let top = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.15;
    let title = match results.first() {
        Some(r) => format!(
            "{title} ({}, {}, PostgreSQL {})",
            r.date,
            r.machine,
            r.postgres.split(' ').next().unwrap_or("")
        ),
        None => title.to_owned(),
    };
    let path = out.join(file);
    let root = SVGBackend::new(&path, (760, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0..bars.len().saturating_sub(1)).into_segmented(),
            0.0..top.max(1e-9),
        )?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    c.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            Palette99::pick(i).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

fn charts(out: &Path) -> Result<()> {
    let mut results: Vec<Results> = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            results.push(serde_json::from_str(&std::fs::read_to_string(&path)?)?);
        }
    }
    results.sort_by(|a, b| (a.tenants, &a.strategy).cmp(&(b.tenants, &b.strategy)));
    chart(
        &results,
        out,
        "tenants-per-second.svg",
        "Tenants created per second",
        |r| Some(r.tenants_created_per_second),
    )?;
    chart(
        &results,
        out,
        "migrate-one-column.svg",
        "migrate_all, one new column (ms)",
        |r| Some(r.migrate_one_column_ms),
    )?;
    chart(
        &results,
        out,
        "read-p99.svg",
        "Scoped read under load, p99 (µs)",
        |r| Some(r.read_p99_us),
    )?;
    chart(
        &results,
        out,
        "backend-memory.svg",
        "Server backend memory after the load (MB)",
        |r| r.backend_memory_mb,
    )?;
    chart(
        &results,
        out,
        "disk-per-tenant.svg",
        "Disk per tenant (kB)",
        |r| Some(r.disk_per_tenant_kb),
    )?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse()?;
    std::fs::create_dir_all(&args.out)?;
    let rt = tenancy_benches::runtime();
    for &strategy in &args.strategies {
        let results = rt.block_on(run(strategy, &args))?;
        let file = args
            .out
            .join(format!("scale-{strategy}-{}.json", args.tenants));
        std::fs::write(&file, serde_json::to_string_pretty(&results)? + "\n")?;
        println!("{}", serde_json::to_string(&results)?);
        eprintln!("wrote {}", file.display());
    }
    if args.charts {
        charts(&args.out)?;
        eprintln!("charts in {}", args.out.display());
    }
    Ok(())
}
