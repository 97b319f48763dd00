//! The measuring: one strategy grown to N tenants on one server or on a Citus cluster, then
//! created into, migrated, read under load, and what the server holds after.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tenancy_benches::measured;
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, Database};
use tenancy_core::{MigrateOptions, ScopeMode, Strategy, Tenant};
use tenancy_example::projects;
use tenancy_testkit::{DatabaseOn, TestDatabase};
use uuid::Uuid;

use crate::args::Args;
use crate::psql::PsqlBaselines;
use crate::results::Results;
use crate::server::{OURS, machine, pss_kb, scalar, worker_pids};

pub(crate) async fn run(strategy: Strategy, args: &Args, on: DatabaseOn) -> Result<Results> {
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

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} {wide_bar} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
