//! The moves runner: one tenant of 1,000, 10,000 and 100,000 tasks walks all six directions
//! between placements (shared → schema → database → shared → database → schema → shared)
//! under a writer, and each move's time and write-blocked window go beside a plain binary
//! `COPY` of the same rows on the same machine, measured in the same run.
//!
//! ```text
//! cargo run --release -p tenancy-benches --bin moves -- [--sizes 1000,10000,100000] [--out DIR] [--citus]
//! ```
//!
//! Writes `DIR/moves.json` (default `docs/src/results/`), rendered in the book's chapter on
//! hybrid placement. Needs `DATABASE_URL` (a role that may create databases).
//!
//! With `--citus` it moves tenants between the workers of a Citus cluster instead
//! (`citus.rs`) and writes `DIR/moves-citus.json`, rendered in the chapter on scaling
//! out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tenancy_core::sea_orm::sqlx::{self, Connection, PgConnection};
use tenancy_core::{Error, NewTenant, PlacementKind, Slug, Tenant, TenantStore};
use tenancy_example::projects::{self, NewProject};
use tenancy_hybrid::{DefaultPlacement, HybridOptions, HybridStore};
use tenancy_testkit::TestDatabase;

mod citus;

/// Tasks per project in the seeded tenant.
const TASKS_PER_PROJECT: usize = 100;
/// How often the plain COPY is repeated (its median is kept).
const PLAIN_ROUNDS: usize = 3;

struct Args {
    sizes: Vec<usize>,
    out: PathBuf,
    citus: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        sizes: vec![1_000, 10_000, 100_000],
        out: PathBuf::from("docs/src/results"),
        citus: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sizes" => {
                a.sizes = it
                    .next()
                    .context("--sizes needs a list")?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--out" => a.out = PathBuf::from(it.next().context("--out needs a folder")?),
            "--citus" => a.citus = true,
            other => bail!("unknown argument {other:?}; see the file's documentation"),
        }
    }
    Ok(a)
}

/// Seeds `tasks` tasks (in projects of [`TASKS_PER_PROJECT`]) into the shared tables for
/// `tenant`, in SQL as the connecting role: the bench measures moves, not inserts.
async fn seed(url: &str, tenant: &Tenant, tasks: usize) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let projects = i64::try_from(tasks.div_ceil(TASKS_PER_PROJECT))?;
    sqlx::query(
        "INSERT INTO public.projects (tenant_id, id, name, description) \
         SELECT $1, gen_random_uuid(), 'project ' || g, 'seeded' FROM generate_series(1, $2) g",
    )
    .bind(tenant.id.as_uuid())
    .bind(projects)
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "INSERT INTO public.tasks (tenant_id, id, project_id, title, done) \
         SELECT $1, gen_random_uuid(), p.id, 'task ' || g, g % 3 = 0 \
         FROM public.projects p, generate_series(1, $2) g WHERE p.tenant_id = $1 \
         LIMIT $3",
    )
    .bind(tenant.id.as_uuid())
    .bind(i64::try_from(TASKS_PER_PROJECT)?)
    .bind(i64::try_from(tasks)?)
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE public.projects, public.tasks")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// The physical baseline: the tenant's rows of both tables as binary `COPY` out of the shared
/// tables and into empty tables of the same shape and indexes (no checks, no catalog), on two
/// connections as a hand-written copy would; the median of [`PLAIN_ROUNDS`] runs, in ms.
async fn plain_copy(url: &str, tenant: &Tenant) -> Result<f64> {
    let mut source = PgConnection::connect(url).await?;
    let mut target = PgConnection::connect(url).await?;
    let mut runs = Vec::with_capacity(PLAIN_ROUNDS);
    for _ in 0..PLAIN_ROUNDS {
        sqlx::raw_sql(
            "DROP SCHEMA IF EXISTS bench_plain CASCADE; CREATE SCHEMA bench_plain; \
             CREATE TABLE bench_plain.projects (LIKE public.projects INCLUDING ALL); \
             CREATE TABLE bench_plain.tasks (LIKE public.tasks INCLUDING ALL)",
        )
        .execute(&mut target)
        .await?;
        let started = Instant::now();
        for table in ["projects", "tasks"] {
            let mut copy_in = target
                .copy_in_raw(&format!(
                    "COPY bench_plain.{table} FROM STDIN (FORMAT binary)"
                ))
                .await?;
            {
                use futures::TryStreamExt;
                let mut out = source
                    .copy_out_raw(&format!(
                        "COPY (SELECT * FROM public.{table} WHERE tenant_id = '{}'::uuid) \
                         TO STDOUT (FORMAT binary)",
                        tenant.id.as_uuid()
                    ))
                    .await?;
                while let Some(chunk) = out.try_next().await? {
                    copy_in.send(chunk).await?;
                }
            }
            copy_in.finish().await?;
        }
        runs.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    sqlx::raw_sql("DROP SCHEMA bench_plain CASCADE")
        .execute(&mut target)
        .await?;
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

/// A writer that creates a project every few milliseconds until `stop`; returns the time
/// from its first refused write to its last (the window a client sees) and the refusals.
async fn writer(store: HybridStore, cached: Tenant, stop: Arc<AtomicBool>) -> Result<(f64, u64)> {
    let (mut first, mut last, mut refused, mut i) = (None, None, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let result = async {
            let scope = store.scope(&cached).await?;
            projects::create(&scope, NewProject::named(format!("w{i}"))).await?;
            scope.commit().await
        }
        .await;
        match result {
            Ok(()) => i += 1,
            Err(Error::TenantMoving) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                refused += 1;
            }
            Err(e) => bail!("a write failed during the move: {}", e.chain()),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let window = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64() * 1000.0,
        _ => 0.0,
    };
    Ok((window, refused))
}

async fn size_run(tasks: usize) -> Result<Vec<Value>> {
    let db = TestDatabase::create().await?;
    let options = HybridOptions {
        default_placement: DefaultPlacement::Fixed(PlacementKind::Shared),
        ..HybridOptions::with_migrations(tenancy_example::migrations())
    };
    let store = HybridStore::connect(db.url(), options).await?;
    let t = store
        .create_tenant(NewTenant::new(Slug::parse("mover")?, "Mover"))
        .await?;
    seed(db.url(), &t, tasks).await?;
    let plain_ms = plain_copy(db.url(), &t).await?;
    eprintln!("{tasks} tasks: plain COPY {plain_ms:.1} ms");
    let mut rows = Vec::new();
    let path = [
        PlacementKind::Schema,
        PlacementKind::Database,
        PlacementKind::Shared,
        PlacementKind::Database,
        PlacementKind::Schema,
        PlacementKind::Shared,
    ];
    for kind in path {
        // Result ids keep the strategies' names (shared-schema/separate-db), as the book has them.
        let to = kind.strategy();
        let from = store.tenant(t.id).await?.placement.strategy();
        let stop = Arc::new(AtomicBool::new(false));
        let cached = store.tenant(t.id).await?;
        let w = tokio::spawn(writer(store.clone(), cached, stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        store.start_move(t.id, kind, None).await?;
        let (moved, times) = store.run_move_timed(t.id, &|_| {}).await?;
        let move_ms = started.elapsed().as_secs_f64() * 1000.0;
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::Relaxed);
        let (client_window_ms, refused) = w.await??;
        if moved.placement.strategy() != to {
            bail!("the tenant is in {} after a move to {to}", moved.placement);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let copy_ms = ms(times.copy);
        eprintln!(
            "{tasks} tasks {from} → {to}: move {move_ms:.0} ms, writes refused {:.0} ms (client saw {client_window_ms:.0} ms), copy {copy_ms:.0} ms",
            ms(times.fenced)
        );
        rows.push(json!({
            "id": format!("{from}/{to}"),
            "parameter": tasks.to_string(),
            "from": from.as_str(),
            "to": to.as_str(),
            "tasks": tasks,
            "move_ms": move_ms,
            "build_ms": ms(times.build),
            "window_ms": ms(times.fenced),
            "client_window_ms": client_window_ms,
            "writes_refused": refused,
            "copy_ms": copy_ms,
            "plain_copy_ms": plain_ms,
            "copy_speed_vs_plain": plain_ms / copy_ms.max(0.001),
            "drain_and_purge_ms": ms(times.finish),
        }));
    }
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_database().await?;
    Ok(rows)
}

fn main() -> Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if args.citus {
            return citus_moves(&args).await;
        }
        let mut rows = Vec::new();
        for &size in &args.sizes {
            rows.extend(size_run(size).await?);
        }
        let postgres = tenancy_benches::psql_version();
        let doc = json!({
            "what": format!(
                "One tenant ({} tasks per project) moved through all six directions under a writer \
                 (a project every 5 ms); the plain COPY is the median of {PLAIN_ROUNDS} runs of the \
                 same rows into empty tables of the same shape; single runs of each move",
                TASKS_PER_PROJECT
            ),
            "unit": "mixed",
            "columns": [["id", "direction"], ["tasks", "tasks"], ["move_ms", "move"],
                        ["window_ms", "writes refused"], ["client_window_ms", "as a client saw it"],
                        ["copy_ms", "copy and check"], ["plain_copy_ms", "plain COPY"],
                        ["copy_speed_vs_plain", "copy speed vs plain"],
                        ["drain_and_purge_ms", "drain and purge"]],
            "measured": tenancy_benches::measured(&postgres),
            "rows": rows,
        });
        std::fs::create_dir_all(&args.out)?;
        let path = args.out.join("moves.json");
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
        eprintln!("wrote {}", path.display());
        Ok(())
    })
}

async fn citus_moves(args: &Args) -> Result<()> {
    let rows = citus::rows(&args.sizes).await?;
    let postgres = tenancy_benches::psql_version();
    let doc = json!({
        "what": "One tenant (100 tasks per project) moved to the other worker of a Citus cluster \
                 (a coordinator and two workers on this machine) through the store, under a \
                 writer (a project every 5 ms; in shared-schema a neighbour of the same shard \
                 writes too); beside it, Citus' own calls moving a second tenant of the same \
                 size with no writer and no job, after a small tenant moved unmeasured (a cluster's \
                 first move costs more); single runs",
        "unit": "mixed",
        "columns": [["id", "move"], ["tasks", "tasks"], ["move_ms", "move"],
                    ["citus_alone_ms", "Citus alone"], ["move_vs_citus_alone", "move vs Citus alone"],
                    ["window_ms", "longest write"], ["neighbour_window_ms", "neighbour's longest write"],
                    ["writes_failed", "writes failed"]],
        "measured": tenancy_benches::measured(&postgres),
        "rows": rows,
    });
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("moves-citus.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
