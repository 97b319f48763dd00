//! On a Citus cluster: a tenant moved to the other worker through the store
//! ([`TenantStore::move_to_node`]) while two store instances write and read it and its
//! neighbours, and a process stopped at each step of a node move.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use tenancy_core::plumbing::citus::{Node, workers};
use tenancy_core::plumbing::sql::stmt;
use tenancy_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use tenancy_core::{MoveStep, PageRequest, Placement, ScopeMode, Tenant, TenantState, TenantStore};
use tenancy_example::tasks::{self, NewTask};
use uuid::Uuid;

use super::interrupted::{child_point, report, slug_at, stop_at};
use super::support::{new_project, slug, tenant};
use super::{Harness, StoreConfig};

/// The worker that holds `t`'s rows, read from Citus' own tables.
pub(crate) async fn node_of(admin: &DatabaseConnection, t: &Tenant) -> Result<Node> {
    let row = match &t.placement {
        Placement::Shared => {
            admin
                .query_one_raw(stmt(
                    "SELECT nodename, nodeport FROM citus_shards \
                     WHERE shardid = get_shard_id_for_distribution_column('projects', $1::uuid)",
                    [t.id.as_uuid().into()],
                ))
                .await?
        }
        Placement::Schema { schema } => {
            admin
                .query_one_raw(stmt(
                    "SELECT nodename, nodeport FROM citus_shards \
                     WHERE table_name = to_regclass(quote_ident($1) || '.projects')",
                    [schema.as_str().into()],
                ))
                .await?
        }
        other => bail!("{other} is not on Citus"),
    };
    let Some(r) = row else {
        bail!("no shard holds tenant {}", t.slug)
    };
    Ok(Node {
        host: r.try_get("", "nodename")?,
        port: u16::try_from(r.try_get::<i32>("", "nodeport")?)?,
    })
}

/// The worker `t` is not on.
async fn other_worker(admin: &DatabaseConnection, t: &Tenant) -> Result<Node> {
    let here = node_of(admin, t).await?;
    workers(admin)
        .await?
        .into_iter()
        .find(|w| *w != here)
        .ok_or_else(|| anyhow::anyhow!("the cluster has one worker"))
}

/// The shard of `projects` that holds `t` (shared tables), to find tenants that share it.
async fn shard_of(admin: &DatabaseConnection, t: &Tenant) -> Result<Option<i64>> {
    if t.placement != Placement::Shared {
        return Ok(None);
    }
    Ok(admin
        .query_one_raw(stmt(
            "SELECT get_shard_id_for_distribution_column('projects', $1::uuid) AS s",
            [t.id.as_uuid().into()],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "s"))
        .transpose()?)
}

/// What one writer saw.
#[derive(Debug, Default)]
struct Written {
    acknowledged: Vec<Uuid>,
    refused: usize,
    /// The longest a write waited (acknowledged or refused).
    longest: Duration,
}

async fn write_until(
    store: Arc<dyn TenantStore>,
    t: Tenant,
    project: Uuid,
    stop: Arc<AtomicBool>,
) -> Written {
    let mut w = Written::default();
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        let began = Instant::now();
        let result = async {
            let scope = store.scope(&t).await?;
            let task = tasks::create(&scope, project, NewTask::titled(format!("w{i}"))).await?;
            scope.commit().await?;
            Ok::<_, tenancy_core::Error>(task.id)
        }
        .await;
        w.longest = w.longest.max(began.elapsed());
        match result {
            Ok(id) => w.acknowledged.push(id),
            Err(_) => w.refused += 1,
        }
    }
    w
}

/// Reads the tenant's tasks until told to stop: (reads, failed, rows of another tenant, the
/// errors of the failed ones).
async fn read_until(
    store: Arc<dyn TenantStore>,
    t: Tenant,
    project: Uuid,
    stop: Arc<AtomicBool>,
) -> (usize, usize, usize, Vec<String>) {
    let (mut reads, mut failed, mut foreign) = (0, 0, 0);
    let mut errors = Vec::new();
    while !stop.load(Ordering::Acquire) {
        reads += 1;
        let result = async {
            let scope = store.scope_with(&t, ScopeMode::Autocommit).await?;
            let page = tasks::list(&scope, project, PageRequest::first(50)).await?;
            scope.commit().await?;
            Ok::<_, tenancy_core::Error>(page.items)
        }
        .await;
        match result {
            Ok(items) => {
                foreign += items
                    .iter()
                    .filter(|x| x.tenant_id != t.id.as_uuid())
                    .count();
            }
            Err(e) => {
                failed += 1;
                errors.push(format!(
                    "{e}: {:?}",
                    std::error::Error::source(&e).map(|s| s.to_string())
                ));
            }
        }
    }
    (reads, failed, foreign, errors)
}

async fn task_ids(store: &dyn TenantStore, t: &Tenant, project: Uuid) -> Result<Vec<Uuid>> {
    let scope = store.scope_with(t, ScopeMode::Autocommit).await?;
    let mut ids = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let got = tasks::list(&scope, project, page).await?;
        ids.extend(got.items.iter().map(|x| x.id));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    scope.commit().await?;
    Ok(ids)
}

/// A tenant moved to the other worker while two store instances write to it and to two
/// neighbours (on shared tables, tenants of the same shard, whose shard the move splits) and
/// read it: every acknowledged write is there afterwards, no read failed or showed another
/// tenant's row, the neighbours' rows are unchanged, and the tenant is on the other worker.
pub async fn node_move_under_load(h: &Harness) -> Result<()> {
    let a = h.store(StoreConfig::default()).await?;
    let b = h.store(StoreConfig::default()).await?;
    let admin = h.db.admin().await?;
    let mover = tenant(a.as_ref(), "mover").await?;
    let mover_project = new_project(a.as_ref(), &mover, "moving").await?.id;
    // Neighbours: on shared tables, tenants in the mover's shard (the split touches them).
    let wanted = shard_of(&admin, &mover).await?;
    let mut neighbours = Vec::new();
    for i in 0..64 {
        if neighbours.len() == 2 {
            break;
        }
        let n = tenant(a.as_ref(), &format!("neighbour-{i}")).await?;
        if shard_of(&admin, &n).await? == wanted {
            let p = new_project(a.as_ref(), &n, "staying").await?.id;
            neighbours.push((n, p));
        }
    }
    ensure!(
        neighbours.len() == 2,
        "no two tenants share the mover's shard"
    );
    // Rows before the load, to compare after.
    let seeded = {
        let scope = a.scope(&mover).await?;
        for j in 0..200 {
            tasks::create(&scope, mover_project, NewTask::titled(format!("s{j}"))).await?;
        }
        scope.commit().await?;
        200
    };
    let mut before = Vec::new();
    for (n, p) in &neighbours {
        before.push(task_ids(a.as_ref(), n, *p).await?);
    }
    let to = other_worker(&admin, &mover).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for store in [&a, &b] {
        writers.push((
            mover.clone(),
            mover_project,
            tokio::spawn(write_until(
                store.clone(),
                mover.clone(),
                mover_project,
                stop.clone(),
            )),
        ));
        for (n, p) in &neighbours {
            writers.push((
                n.clone(),
                *p,
                tokio::spawn(write_until(store.clone(), n.clone(), *p, stop.clone())),
            ));
        }
    }
    let readers: Vec<_> = [&a, &b]
        .into_iter()
        .map(|s| {
            tokio::spawn(read_until(
                s.clone(),
                mover.clone(),
                mover_project,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    let job = a.move_to_node(&mover, &to.to_string()).await?;
    let took = began.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    let mut lost = 0;
    let mut acknowledged = 0;
    let mut refused = 0;
    let (mut mover_longest, mut neighbour_longest) = (Duration::ZERO, Duration::ZERO);
    let mut by_tenant: Vec<(Tenant, Uuid, Vec<Uuid>)> = Vec::new();
    for (t, p, handle) in writers {
        let w = handle.await?;
        acknowledged += w.acknowledged.len();
        refused += w.refused;
        if t.id == mover.id {
            mover_longest = mover_longest.max(w.longest);
        } else {
            neighbour_longest = neighbour_longest.max(w.longest);
        }
        match by_tenant.iter_mut().find(|(x, _, _)| x.id == t.id) {
            Some((_, _, ids)) => ids.extend(w.acknowledged),
            None => by_tenant.push((t, p, w.acknowledged)),
        }
    }
    let (mut reads, mut failed_reads, mut foreign) = (0, 0, 0);
    let mut read_errors = Vec::new();
    for r in readers {
        let (n, f, x, e) = r.await?;
        reads += n;
        failed_reads += f;
        foreign += x;
        read_errors.extend(e);
    }
    for (t, p, written) in &by_tenant {
        let found = task_ids(b.as_ref(), t, *p).await?;
        lost += written.iter().filter(|id| !found.contains(id)).count();
    }
    let mut neighbours_kept = true;
    for ((n, p), old) in neighbours.iter().zip(&before) {
        let now = task_ids(b.as_ref(), n, *p).await?;
        neighbours_kept &= old.iter().all(|id| now.contains(id));
    }
    let moved = a.tenant(mover.id).await?;
    let there = node_of(&admin, &moved).await?;
    crate::fault_report(
        &format!("node-move-{}", a.strategy()),
        &serde_json::json!({
            "to": to.to_string(), "move_ms": took.as_millis(), "job_step": job.step,
            "seeded_rows": seeded, "acknowledged": acknowledged, "lost": lost,
            "refused": refused, "reads": reads, "failed_reads": failed_reads,
            "read_errors": read_errors,
            "rows_of_another_tenant": foreign, "neighbours_rows_kept": neighbours_kept,
            "longest_write_ms_moved_tenant": mover_longest.as_millis(),
            "longest_write_ms_neighbours": neighbour_longest.as_millis(),
        }),
    )?;
    admin.close().await.ok();
    ensure!(
        job.step == MoveStep::Done,
        "the job ended {}: {:?}",
        job.step,
        job.error
    );
    ensure!(there == to, "the tenant is on {there}, not {to}");
    ensure!(
        moved.state == TenantState::Ready,
        "the tenant is {}",
        moved.state
    );
    ensure!(lost == 0, "{lost} acknowledged writes were lost");
    ensure!(failed_reads == 0, "{failed_reads} of {reads} reads failed");
    ensure!(
        foreign == 0,
        "reads showed {foreign} rows of another tenant"
    );
    ensure!(neighbours_kept, "a neighbour's rows changed");
    ensure!(acknowledged > 0, "no write was acknowledged");
    Ok(())
}

/// A second move of a tenant that is moving is refused, and so is a move to where it is.
pub async fn node_move_refusals(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let admin = h.db.admin().await?;
    let t = tenant(store.as_ref(), "stays").await?;
    let here = node_of(&admin, &t).await?;
    match store.move_to_node(&t, &here.to_string()).await {
        Err(tenancy_core::Error::Invalid { field: "node", .. }) => {}
        other => bail!("a move to where the tenant is: {other:?}"),
    }
    match store.move_to_node(&t, "127.0.0.1:1").await {
        Err(tenancy_core::Error::Invalid { field: "node", .. }) => {}
        other => bail!("a move to a node that is not a worker: {other:?}"),
    }
    admin.close().await.ok();
    Ok(())
}

/// A process stopped after recording the move, after isolating the tenant, and after Citus
/// moved it: the tenant stays `moving` and is served meanwhile; resuming finishes the move.
pub async fn interrupted_node_move_resumes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let admin = h.db.admin().await?;
    if let Some(point) = child_point() {
        let t = store.tenant_by_slug(&slug(&slug_at(&point))).await?;
        let to = other_worker(&admin, &t).await?;
        store.move_to_node(&t, &to.to_string()).await?;
        bail!("the move finished: fault point {point} was never reached");
    }
    let mut seen = Vec::new();
    for point in [
        "node-move:recorded",
        "node-move:isolated",
        "node-move:moved",
    ] {
        let t = tenant(store.as_ref(), &slug_at(point)).await?;
        new_project(store.as_ref(), &t, "kept").await?;
        let to = other_worker(&admin, &t).await?;
        stop_at(h, point).await?;
        let left = store.tenant(t.id).await?;
        ensure!(
            left.state == TenantState::Moving,
            "after {point}: the tenant is {}",
            left.state
        );
        let served = super::support::all_projects(store.as_ref(), &left)
            .await?
            .len();
        ensure!(
            served == 1,
            "after {point}: the tenant serves {served} projects"
        );
        let again = store.move_to_node(&left, &to.to_string()).await;
        ensure!(
            again.is_err(),
            "after {point}: a second move of a moving tenant was accepted"
        );
        // The stopped child's session lock goes when the server has ended its backend, which
        // can take a moment on a loaded machine: until then the move is another driver's.
        let mut jobs = store.resume_node_moves().await?;
        for _ in 0..50 {
            if !jobs.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            jobs = store.resume_node_moves().await?;
        }
        ensure!(
            jobs.iter()
                .any(|j| j.tenant_id == t.id.as_uuid() && j.step == MoveStep::Done),
            "after {point}: resuming did not finish the move: {jobs:?}"
        );
        let done = store.tenant(t.id).await?;
        let there = node_of(&admin, &done).await?;
        ensure!(done.state == TenantState::Ready && there == to);
        let projects = super::support::all_projects(store.as_ref(), &done)
            .await?
            .len();
        ensure!(
            projects == 1,
            "after {point}: {projects} projects after the move"
        );
        seen.push(serde_json::json!({
            "point": point, "left": left.state.as_str(), "served_meanwhile": true,
            "after_resume": done.state.as_str(), "on": there.to_string(),
        }));
    }
    admin.close().await.ok();
    report(h, store.strategy(), seen)
}
