//! Run with `cargo bench -p tenancy-benches --bench citus`.
//!
//! What a tenant costs on a Citus cluster against one server, measured in one run: the same
//! stores (shared-schema and separate-schema, each in its default configuration) on a plain
//! database of the test server and on a database of a Citus cluster (the tests' own coordinator
//! and two workers, started for the run, or `CITUS_URL`), with the limit beside each where one
//! exists. The groups:
//! - `citus/read`: a point read by primary key through a scope, beside pgbench sending the same
//!   read (prepared, one client) to the same database: through the coordinator on Citus,
//!   straight to the server otherwise. Ids are `{where}-{strategy}/{store|pgbench}`, and each
//!   store row is compared with the pgbench row of its route. On Citus shared-schema also has
//!   `pgbench-bound`: the statements the store sends for one read (its transaction, role and
//!   tenant setting, the read, the commit), as pgbench script, so the binding's share of the
//!   cost shows apart from the library's;
//! - `citus/spread`: 64 point reads spread uniformly over the 1,000 tenants, eight in flight;
//! - `citus/create`: creating one tenant in a database that holds the 1,000;
//! - `citus/add_column`: one `ALTER TABLE projects ADD COLUMN` over the 1,000 tenant schemas
//!   of separate-schema: `migrate_all` (four tenants at once) beside psql sending the same DDL
//!   one statement after another, on one server and through the coordinator.
//!
//! Data: a tenant `bench` with 1,000 projects, and 1,000 tenants `t0`.. with 10 projects each.
//! The projects' ids are numbered (`00000000-0000-4000-8000-000000000042`) so pgbench can pick
//! one at random as the scope's reads do.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use futures::StreamExt;
use tenancy_core::sea_orm::sqlx::{self, Connection, PgConnection};
use tenancy_core::{MigrateOptions, Placement, Strategy, Tenant, TenantStore};
use tenancy_testkit::{DatabaseOn, TestDatabase};
use uuid::Uuid;

/// Projects of the tenant the point reads read.
const PROJECTS: usize = 1_000;
/// Projects of each of the many tenants.
const SMALL: usize = 10;
/// Reads per timed iteration of the spread, and how many are in flight.
const BATCH: usize = 64;
const IN_FLIGHT: usize = 8;

/// The numbered id of project `i` (1-based), as the seed writes it.
fn project_id(i: usize) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{i:012}")).expect("a numbered uuid")
}

/// The same id as SQL over pgbench's variable `:i`.
const PGBENCH_ID: &str = "('00000000-0000-4000-8000-' || lpad(:i::text, 12, '0'))::uuid";

/// The table prefix of `t`'s rows: `public.` or its schema.
fn tables_of(t: &Tenant) -> String {
    match &t.placement {
        Placement::Schema { schema } => format!("\"{schema}\"."),
        _ => "public.".into(),
    }
}

/// Writes `n` numbered projects into `t`'s tables, in SQL as the connecting role.
async fn seed(conn: &mut PgConnection, t: &Tenant, n: usize) -> Result<()> {
    let at = tables_of(t);
    // The schema comes from the tenant's validated slug.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {at}projects (tenant_id, id, name, description) \
         SELECT $1, ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'p' || g, '' \
         FROM generate_series(1, $2) g"
    )))
    .bind(t.id.as_uuid())
    .bind(i64::try_from(n)?)
    .execute(conn)
    .await?;
    Ok(())
}

/// One store on one kind of database, with its tenants.
struct Side {
    /// `one-server` or `citus`.
    on: &'static str,
    strategy: Strategy,
    db: TestDatabase,
    store: Arc<dyn TenantStore>,
    bench: Tenant,
    tenants: Arc<Vec<Tenant>>,
}

impl Side {
    /// `{where}-{shared|schema}`: the route of the read group's ids.
    fn route(&self) -> String {
        let short = match self.strategy {
            Strategy::SharedSchema => "shared",
            _ => "schema",
        };
        format!("{}-{short}", self.on)
    }

    /// The database's URL without TLS on loopback, as the stores connect.
    fn url(&self) -> String {
        tenancy_core::plumbing::loopback_without_tls(self.db.url())
    }
}

async fn side(strategy: Strategy, on: DatabaseOn, tenants: usize) -> Result<Side> {
    let db = TestDatabase::create_on(on).await?;
    let store = tenancy_benches::open_store(strategy, &db, tenancy_example::migrations()).await?;
    let bench = tenancy_benches::tenant(store.as_ref(), "bench").await?;
    let many = tenancy_benches::tenants(store.as_ref(), "t", tenants, 4).await?;
    let mut conn = PgConnection::connect(db.url()).await?;
    seed(&mut conn, &bench, PROJECTS).await?;
    for t in &many {
        seed(&mut conn, t, SMALL).await?;
    }
    conn.close().await?;
    Ok(Side {
        on: if on == DatabaseOn::Citus {
            "citus"
        } else {
            "one-server"
        },
        strategy,
        db,
        store,
        bench,
        tenants: Arc::new(many),
    })
}

/// Runs `script` through pgbench (`protocol`, one client) for `iters` transactions against
/// `url` and returns `iters` times the latency pgbench reports (its own start and connection
/// are not counted).
fn pgbench(url: &str, protocol: &str, script: &str, iters: u64) -> Result<Duration> {
    let file = tempfile(script)?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", protocol, "-c", "1", "-t"])
        .arg(iters.to_string())
        .arg("-f")
        .arg(file.path())
        .arg(url)
        .output()
        .context("running pgbench (it comes with PostgreSQL's client programs)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("latency average = "))
        .and_then(|l| l.trim_end_matches(" ms").parse().ok())
        .with_context(|| format!("no latency in pgbench's output: {text}"))?;
    Ok(Duration::from_secs_f64(ms / 1000.0 * iters as f64))
}

/// A script file that is removed when dropped.
struct Script {
    path: std::path::PathBuf,
}

impl Script {
    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}

fn tempfile(text: &str) -> Result<Script> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "tenancy-citus-bench-{}-{}.sql",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::File::create(&path)?.write_all(text.as_bytes())?;
    Ok(Script { path })
}

/// The point read the store's `projects::get` sends, for pgbench.
fn read_script(t: &Tenant) -> String {
    format!(
        "\\set i random(1, {PROJECTS})\n\
         SELECT tenant_id, id, name, description, created_at FROM {}projects \
         WHERE tenant_id = '{}' AND id = {PGBENCH_ID};\n",
        tables_of(t),
        t.id.as_uuid()
    )
}

/// What shared-schema's transaction binding sends on a Citus coordinator for one read.
fn bound_script(t: &Tenant) -> String {
    format!(
        "\\set i random(1, {PROJECTS})\n\
         BEGIN \\; SET LOCAL ROLE tenancy_app \\; \
         SET LOCAL citus.propagate_set_commands TO 'local';\n\
         SET LOCAL tenancy.tenant_id TO '{}';\n\
         SELECT tenant_id, id, name, description, created_at FROM public.projects \
         WHERE tenant_id = '{}' AND id = {PGBENCH_ID};\n\
         COMMIT;\n",
        t.id.as_uuid(),
        t.id.as_uuid()
    )
}

fn citus(c: &mut Criterion) {
    let rt = tenancy_benches::runtime();
    let n = if tenancy_benches::test_mode() {
        3
    } else {
        1_000
    };
    let mut sides = Vec::new();
    for strategy in [Strategy::SharedSchema, Strategy::SeparateSchema] {
        for on in [DatabaseOn::Plain, DatabaseOn::Citus] {
            let made = rt.block_on(side(strategy, on, n));
            sides.push(made.unwrap_or_else(|e| {
                panic!(
                    "bench set-up of {strategy} on {on:?} failed (is DATABASE_URL set, and \
                     Citus installed by `cargo xtask setup` or CITUS_URL set?): {e:#}"
                )
            }));
        }
    }

    let mut read = c.benchmark_group("citus/read");
    for s in &sides {
        read.bench_function(BenchmarkId::new(format!("{}/store", s.route()), 1), |b| {
            let mut i = 0;
            b.to_async(&rt).iter(|| {
                i += 1;
                let (store, t) = (s.store.clone(), s.bench.clone());
                let id = project_id(1 + (i * 7919) % PROJECTS);
                async move { tenancy_benches::read_project(store.as_ref(), &t, id).await }
            })
        });
        let mut limits = vec![("pgbench", "prepared", read_script(&s.bench))];
        if s.on == "citus" && s.strategy == Strategy::SharedSchema {
            limits.push(("pgbench-bound", "simple", bound_script(&s.bench)));
        }
        for (name, protocol, script) in limits {
            read.bench_function(BenchmarkId::new(format!("{}/{name}", s.route()), 1), |b| {
                b.iter_custom(|iters| pgbench(&s.url(), protocol, &script, iters).expect("pgbench"))
            });
        }
    }
    read.finish();

    let mut spread = c.benchmark_group("citus/spread");
    spread
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for s in &sides {
        let next = AtomicUsize::new(0);
        spread.bench_function(BenchmarkId::new(s.route(), n), |b| {
            b.to_async(&rt).iter(|| {
                let start = next.fetch_add(BATCH, Ordering::Relaxed);
                let (store, tenants) = (s.store.clone(), s.tenants.clone());
                async move {
                    futures::stream::iter(start..start + BATCH)
                        .map(|k| {
                            // A multiplicative hash spreads consecutive k over all tenants.
                            let t = tenants[k.wrapping_mul(2_654_435_761) % tenants.len()].clone();
                            let (store, id) = (store.clone(), project_id(1 + k % SMALL));
                            async move {
                                tenancy_benches::read_project(store.as_ref(), &t, id).await;
                            }
                        })
                        .buffer_unordered(IN_FLIGHT)
                        .collect::<Vec<()>>()
                        .await
                }
            })
        });
    }
    spread.finish();

    let mut create = c.benchmark_group("citus/create");
    // Flat sampling: ten samples of the same few iterations, not 1 + 2 + ... + 10 of them.
    create
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    for s in &sides {
        let next = AtomicUsize::new(0);
        let made = std::sync::Mutex::new(Vec::new());
        create.bench_function(
            BenchmarkId::new(format!("{}/{}", s.on, s.strategy), n),
            |b| {
                b.to_async(&rt).iter(|| {
                    let slug = format!("new{}", next.fetch_add(1, Ordering::Relaxed));
                    let (store, made) = (s.store.clone(), &made);
                    async move {
                        let t = tenancy_benches::tenant(store.as_ref(), &slug)
                            .await
                            .expect("create");
                        made.lock().expect("made").push(t.id);
                    }
                })
            },
        );
        // The next groups count the 1,000 and `bench` only.
        let made = made.into_inner().expect("made");
        rt.block_on(async {
            for id in made {
                s.store.delete_tenant(id).await.expect("delete");
            }
        });
    }
    create.finish();

    let mut add = c.benchmark_group("citus/add_column");
    add.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10));
    for s in sides
        .iter()
        .filter(|s| s.strategy == Strategy::SeparateSchema)
    {
        let mut columns = 0;
        add.bench_function(BenchmarkId::new(format!("{}/store", s.on), n), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let first = columns;
                columns += usize::try_from(iters).unwrap_or(usize::MAX);
                async move {
                    let mut total = Duration::ZERO;
                    for k in 0..iters {
                        let extra = first + usize::try_from(k).unwrap_or(0) + 1;
                        let store = tenancy_benches::open_store(
                            s.strategy,
                            &s.db,
                            tenancy_benches::migrations_with_columns(extra),
                        )
                        .await
                        .expect("store");
                        let start = Instant::now();
                        let report = store
                            .migrate_all(MigrateOptions { concurrency: 4 })
                            .await
                            .expect("migrate");
                        total += start.elapsed();
                        assert!(report.is_success(), "{report:?}");
                    }
                    total
                }
            })
        });
        // The schemas migrate_all changed: the 1,000 and `bench`'s.
        let schemas: Vec<String> = std::iter::once(&s.bench)
            .chain(s.tenants.iter())
            .map(tables_of)
            .collect();
        let mut added = 0;
        add.bench_function(BenchmarkId::new(format!("{}/psql", s.on), n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    added += 1;
                    let ddl: String = schemas
                        .iter()
                        .map(|at| {
                            format!(
                                "ALTER TABLE {at}projects ADD COLUMN psql_column_{added} integer;\n"
                            )
                        })
                        .collect();
                    let file = tempfile(&ddl).expect("script");
                    let start = Instant::now();
                    let out = Command::new("psql")
                        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                        .arg(file.path())
                        .arg(s.url())
                        .output()
                        .expect("psql");
                    total += start.elapsed();
                    assert!(
                        out.status.success(),
                        "psql: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                total
            })
        });
    }
    add.finish();

    rt.block_on(async {
        for s in sides {
            drop(s.store);
            s.db.drop_database().await.ok();
        }
    });
}

criterion_group!(benches, citus);
criterion_main!(benches);
