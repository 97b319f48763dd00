//! The node moves of the moves runner (`--citus`): on a Citus cluster (the tests' own, started
//! for the run, or `CITUS_URL`), one tenant of each size moved to the other worker under a
//! writer, in shared-schema (isolated into shards of its own, then moved, with a neighbour of
//! the same shard writing too) and in separate-schema (its schema moved whole). Beside each:
//! Citus' own call on a second tenant of the same size with no writer and no job (the limit),
//! after one small tenant moved unmeasured (a cluster's first move costs more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use tenancy_core::plumbing::StrategyDoor;
use tenancy_core::plumbing::citus::workers;
use tenancy_core::sea_orm::sqlx::{self, Connection, PgConnection};
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tenancy_core::{MoveStep, NewTenant, Placement, Slug, Tenant, TenantStore};
use tenancy_example::projects::{self, NewProject};
use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
use tenancy_testkit::{DatabaseOn, TestDatabase};

use super::TASKS_PER_PROJECT;

/// The table prefix of `t`'s rows: `public.` or its schema.
fn tables_of(t: &Tenant) -> String {
    match &t.placement {
        Placement::Schema { schema } => format!("\"{schema}\"."),
        _ => "public.".into(),
    }
}

/// Seeds `tasks` tasks into `t`'s tables in SQL (as the connecting role).
async fn seed(url: &str, t: &Tenant, tasks: usize) -> Result<()> {
    let at = tables_of(t);
    let mut conn = PgConnection::connect(url).await?;
    let projects = i64::try_from(tasks.div_ceil(TASKS_PER_PROJECT))?;
    // The schema comes from the tenant's validated slug.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {at}projects (tenant_id, id, name, description) \
         SELECT $1, gen_random_uuid(), 'project ' || g, 'seeded' FROM generate_series(1, $2) g"
    )))
    .bind(t.id.as_uuid())
    .bind(projects)
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {at}tasks (tenant_id, id, project_id, title, done) \
         SELECT $1, gen_random_uuid(), p.id, 'task ' || g, g % 3 = 0 \
         FROM {at}projects p, generate_series(1, $2) g WHERE p.tenant_id = $1 LIMIT $3"
    )))
    .bind(t.id.as_uuid())
    .bind(i64::try_from(TASKS_PER_PROJECT)?)
    .bind(i64::try_from(tasks)?)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// A writer creating a project every 5 ms until `stop`: the longest a write waited, in ms,
/// and the writes that failed.
async fn writer(store: Arc<dyn TenantStore>, t: Tenant, stop: Arc<AtomicBool>) -> (f64, u64) {
    let (mut longest, mut failed, mut i) = (Duration::ZERO, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let result = async {
            let scope = store.scope(&t).await?;
            projects::create(&scope, NewProject::named(format!("w{i}"))).await?;
            scope.commit().await
        }
        .await;
        longest = longest.max(began.elapsed());
        match result {
            Ok(()) => i += 1,
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (longest.as_secs_f64() * 1000.0, failed)
}

async fn node_of(admin: &DatabaseConnection, t: &Tenant) -> Result<(String, i32)> {
    let sql = match &t.placement {
        Placement::Shared => format!(
            "SELECT nodename, nodeport FROM citus_shards \
             WHERE shardid = get_shard_id_for_distribution_column('projects', '{}'::uuid)",
            t.id.as_uuid()
        ),
        Placement::Schema { schema } => format!(
            "SELECT nodename, nodeport FROM citus_shards \
             WHERE table_name = to_regclass(quote_ident('{schema}') || '.projects')"
        ),
        other => bail!("{other} is not on Citus"),
    };
    let row = admin
        .query_one_raw(Statement::from_string(admin.get_database_backend(), sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no shard holds {}", t.slug))?;
    Ok((row.try_get("", "nodename")?, row.try_get("", "nodeport")?))
}

async fn other_worker(admin: &DatabaseConnection, t: &Tenant) -> Result<String> {
    let (host, port) = node_of(admin, t).await?;
    let here = format!("{host}:{port}");
    workers(admin)
        .await?
        .into_iter()
        .map(|w| w.to_string())
        .find(|w| *w != here)
        .ok_or_else(|| anyhow::anyhow!("one worker only"))
}

/// Citus' own move of `t` to `to`, as psql would send it: isolate (shared tables) and move,
/// with no job and no writer. In ms.
async fn citus_alone(admin: &DatabaseConnection, t: &Tenant, to: &str) -> Result<f64> {
    let (from_host, from_port) = node_of(admin, t).await?;
    let (to_host, to_port) = to.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("{to}"))?;
    let run =
        |sql: String| admin.execute_raw(Statement::from_string(admin.get_database_backend(), sql));
    let started = Instant::now();
    match &t.placement {
        Placement::Shared => {
            run(format!(
                "SELECT isolate_tenant_to_new_shard('projects', '{}'::uuid, 'CASCADE')",
                t.id.as_uuid()
            ))
            .await?;
            run(format!(
                "SELECT citus_move_shard_placement(\
                 get_shard_id_for_distribution_column('projects', '{}'::uuid), \
                 '{from_host}', {from_port}, '{to_host}', {to_port})",
                t.id.as_uuid()
            ))
            .await?;
        }
        Placement::Schema { schema } => {
            run(format!(
                "SELECT citus_schema_move('\"{schema}\"'::regnamespace, '{to_host}', {to_port})"
            ))
            .await?;
        }
        other => bail!("{other} is not on Citus"),
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// A tenant of the same shard as `t` (shared tables), for the neighbour's writer.
async fn neighbour(
    store: &dyn TenantStore,
    admin: &DatabaseConnection,
    t: &Tenant,
) -> Result<Option<Tenant>> {
    if t.placement != Placement::Shared {
        return Ok(None);
    }
    let shard = |x: &Tenant| {
        format!(
            "SELECT get_shard_id_for_distribution_column('projects', '{}'::uuid) AS s",
            x.id.as_uuid()
        )
    };
    let get = |sql: String| async move {
        let row = admin
            .query_one_raw(Statement::from_string(admin.get_database_backend(), sql))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no shard"))?;
        anyhow::Ok(row.try_get::<i64>("", "s")?)
    };
    let wanted = get(shard(t)).await?;
    for i in 0..64 {
        let n = store
            .create_tenant(NewTenant::new(Slug::parse(&format!("neighbour-{i}"))?, "N"))
            .await?;
        if get(shard(&n)).await? == wanted {
            return Ok(Some(n));
        }
    }
    bail!("no tenant shares the mover's shard")
}

async fn one(strategy: &str, tasks: usize) -> Result<Value> {
    let db = TestDatabase::create_on(DatabaseOn::Citus).await?;
    let store: Arc<dyn TenantStore> = match strategy {
        "shared-schema" => Arc::new(
            SharedSchemaStore::connect(
                db.url(),
                SharedSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    ..Default::default()
                },
            )
            .await?,
        ),
        _ => Arc::new(
            SeparateSchemaStore::connect(
                db.url(),
                SeparateSchemaOptions {
                    migrations: tenancy_example::migrations(),
                    ..Default::default()
                },
            )
            .await?,
        ),
    };
    let admin = store.placements(StrategyDoor).catalog().clone();
    let mover = store
        .create_tenant(NewTenant::new(Slug::parse("mover")?, "Mover"))
        .await?;
    let alone = store
        .create_tenant(NewTenant::new(Slug::parse("alone")?, "Alone"))
        .await?;
    seed(db.url(), &mover, tasks).await?;
    seed(db.url(), &alone, tasks).await?;
    // A first move on a cluster costs more than the next ones (replication set-up on the
    // nodes): one small tenant is moved first, unmeasured.
    let warm = store
        .create_tenant(NewTenant::new(Slug::parse("warm-up")?, "Warm-up"))
        .await?;
    seed(db.url(), &warm, TASKS_PER_PROJECT).await?;
    let to_warm = other_worker(&admin, &warm).await?;
    citus_alone(&admin, &warm, &to_warm).await?;
    let to_alone = other_worker(&admin, &alone).await?;
    let limit_ms = citus_alone(&admin, &alone, &to_alone).await?;
    let next = neighbour(store.as_ref(), &admin, &mover).await?;
    let to = other_worker(&admin, &mover).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(store.clone(), mover.clone(), stop.clone()));
    let nw = next
        .clone()
        .map(|n| tokio::spawn(writer(store.clone(), n, stop.clone())));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let job = store.move_to_node(&mover, &to).await?;
    let move_ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (window_ms, failed) = w.await?;
    let neighbour_ms = match nw {
        Some(h) => Some(h.await?),
        None => None,
    };
    if job.step != MoveStep::Done {
        bail!("the move ended {}: {:?}", job.step, job.error);
    }
    let (host, port) = node_of(&admin, &store.tenant(mover.id).await?).await?;
    if format!("{host}:{port}") != to {
        bail!("the tenant is on {host}:{port}, not {to}");
    }
    eprintln!(
        "citus {strategy} {tasks} tasks: move {move_ms:.0} ms (Citus alone {limit_ms:.0} ms), \
         longest write {window_ms:.0} ms, neighbour's {:?}, failed writes {failed}",
        neighbour_ms.map(|n| n.0)
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_database().await?;
    Ok(json!({
        "id": format!("{strategy}/node"),
        "parameter": tasks.to_string(),
        "strategy": strategy,
        "tasks": tasks,
        "move_ms": move_ms,
        "citus_alone_ms": limit_ms,
        "move_vs_citus_alone": move_ms / limit_ms.max(0.001),
        "window_ms": window_ms,
        "neighbour_window_ms": neighbour_ms.map(|n| n.0),
        "writes_failed": failed + neighbour_ms.map_or(0, |n| n.1),
    }))
}

/// The rows of `moves-citus.json`: every size, both strategies.
pub(crate) async fn rows(sizes: &[usize]) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for &tasks in sizes {
        for strategy in ["shared-schema", "separate-schema"] {
            rows.push(one(strategy, tasks).await?);
        }
    }
    Ok(rows)
}
