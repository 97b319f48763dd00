//! Checks that no tenant reaches another: not through domain operations, not under
//! concurrency, not through a reused connection, not by moving a row, not by a delete.

use std::collections::HashSet;

use anyhow::{Context, Result, bail, ensure};
use tenancy_core::sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use tenancy_core::{Error, PageRequest, ScopeMode, UnscopedView};
use tenancy_example::TENANT_TABLES;
use tenancy_example::projects::{self, NewProject};
use tenancy_example::seed;
use tenancy_example::tasks::{self, NewTask, TaskPatch};
use uuid::Uuid;

use super::support::{
    all_projects, expect_err, is_not_found, new_project, rename_project, rows_anywhere, task_count,
    tenant,
};
use super::{Harness, StoreConfig};

/// Tenant A can never read, update or delete B's rows through any domain operation, even
/// when given B's ids.
pub async fn isolation_between_tenants(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    let bs = store.scope(&b).await?;
    let bp = projects::create(
        &bs,
        NewProject {
            description: "b only".into(),
            ..NewProject::named("B secret")
        },
    )
    .await?;
    let bt = tasks::create(&bs, bp.id, NewTask::titled("B task")).await?;
    bs.commit().await?;
    let ap = new_project(&*store, &a, "A project").await?;

    let s = store.scope(&a).await?;
    expect_err(
        projects::get(&s, bp.id).await,
        "A reads B's project",
        is_not_found,
    )?;
    expect_err(
        rename_project(&s, bp.id, "pwned").await,
        "A renames B's project",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&s, bp.id).await,
        "A deletes B's project",
        is_not_found,
    )?;
    expect_err(
        tasks::get(&s, bt.id).await,
        "A reads B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::update(
            &s,
            bt.id,
            TaskPatch {
                title: Some("pwned".into()),
                done: Some(true),
            },
        )
        .await,
        "A updates B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::delete(&s, bt.id).await,
        "A deletes B's task",
        is_not_found,
    )?;
    expect_err(
        tasks::list(&s, bp.id, PageRequest::default()).await,
        "A lists B's tasks",
        is_not_found,
    )?;
    expect_err(
        tasks::create(&s, bp.id, NewTask::titled("intruder")).await,
        "A adds a task to B's project",
        is_not_found,
    )?;
    let listed = projects::list(&s, PageRequest::first(100)).await?;
    ensure!(
        listed.items.iter().map(|p| p.id).collect::<Vec<_>>() == vec![ap.id],
        "A lists only its own projects: {listed:?}"
    );
    let summary = projects::summary(&s, PageRequest::first(100)).await?;
    ensure!(
        summary.items.iter().map(|p| p.id).collect::<Vec<_>>() == vec![ap.id],
        "A's summary has only its own projects"
    );
    s.commit().await?;

    // B's rows are exactly as B left them.
    let bs = store.scope(&b).await?;
    ensure!(
        projects::get(&bs, bp.id).await? == bp,
        "B's project is untouched"
    );
    ensure!(tasks::get(&bs, bt.id).await? == bt, "B's task is untouched");
    ensure!(task_count(&bs, bp.id).await? == 1, "no task was added to B");
    Ok(())
}

/// At least 32 tasks over 8 tenants on a pool smaller than the number of tasks, each writing
/// markers and checking it sees only its own.
pub async fn concurrent_tenants_see_only_their_own(h: &Harness) -> Result<()> {
    let store = h
        .store(StoreConfig {
            max_connections: 4,
            ..StoreConfig::default()
        })
        .await?;
    let mut tenants = Vec::new();
    for i in 0..8 {
        tenants.push(tenant(&*store, &format!("tenant-{i}")).await?);
    }
    let mut workers = Vec::new();
    for w in 0..32usize {
        let store = store.clone();
        let t = tenants[w % tenants.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut mine = HashSet::new();
            for round in 0..6 {
                let mode = if round % 2 == 0 {
                    ScopeMode::Transaction
                } else {
                    ScopeMode::Autocommit
                };
                let scope = store.scope_with(&t, mode).await?;
                let marker = format!("{}|w{w}|r{round}", t.slug);
                let p = projects::create(&scope, NewProject::named(marker)).await?;
                mine.insert(p.id);
                tokio::task::yield_now().await;
                let seen =
                    projects::list(&scope, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
                for p in &seen.items {
                    ensure!(
                        p.tenant_id == t.id.as_uuid(),
                        "worker {w} of {} saw a row of tenant {}",
                        t.slug,
                        p.tenant_id
                    );
                    ensure!(
                        p.name.starts_with(&format!("{}|", t.slug)),
                        "worker {w} of {} saw marker {}",
                        t.slug,
                        p.name
                    );
                }
                scope.commit().await?;
            }
            anyhow::Ok((t.id, mine))
        }));
    }
    let mut written: std::collections::HashMap<_, HashSet<Uuid>> = Default::default();
    for w in workers {
        let (tid, mine) = w.await.context("worker panicked")??;
        written.entry(tid).or_default().extend(mine);
    }
    for t in &tenants {
        let seen: HashSet<Uuid> = all_projects(&*store, t)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        ensure!(
            seen == written[&t.id],
            "tenant {} holds exactly the rows its workers wrote",
            t.slug
        );
    }
    Ok(())
}

// ANCHOR: no_state_survives_checkout
/// On a pool of exactly one connection: work as A, then as B, then unscoped. B sees nothing
/// of A, and the unscoped path sees no tenant rows.
pub async fn no_state_survives_checkout(h: &Harness) -> Result<()> {
    let store = h
        .store(StoreConfig {
            max_connections: 1,
            ..StoreConfig::default()
        })
        .await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    for mode in [ScopeMode::Transaction, ScopeMode::Autocommit] {
        let sa = store.scope_with(&a, mode).await?;
        let ap = projects::create(&sa, NewProject::named("A")).await?;
        sa.commit().await?;
        // A scope abandoned mid-work must not leave its binding on the connection either.
        let abandoned = store.scope_with(&a, mode).await?;
        projects::get(&abandoned, ap.id).await?;
        drop(abandoned);

        let sb = store.scope_with(&b, mode).await?;
        expect_err(
            projects::get(&sb, ap.id).await,
            "B reads A's project on the same connection",
            is_not_found,
        )?;
        let seen = projects::list(&sb, PageRequest::first(PageRequest::MAX_LIMIT)).await?;
        ensure!(
            seen.items.iter().all(|p| p.tenant_id == b.id.as_uuid()),
            "B sees only B's rows on A's old connection"
        );
        // B writes too, so a binding to B left on the connection would show on the unscoped path.
        projects::create(&sb, NewProject::named("B")).await?;
        sb.commit().await?;
    }
    for table in TENANT_TABLES {
        match store.unscoped_view(table).await? {
            UnscopedView::NoSuchTable | UnscopedView::Rows(0) => {}
            other => bail!("the unscoped path sees {other:?} in {table}"),
        }
    }
    Ok(())
}
// ANCHOR_END: no_state_survives_checkout

/// A row's `tenant_id` cannot be changed by an update, and the scope refuses to write another
/// tenant's id.
pub async fn tenant_id_never_changes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    let p = new_project(&*store, &a, "A").await?;

    let s = store.scope(&a).await?;
    let invalid = |e: &Error| matches!(e, Error::Invalid { .. });
    expect_err(
        s.update("projects", vec![("tenant_id", b.id.as_uuid().into())])
            .map(|_| ()),
        "update builder with tenant_id",
        invalid,
    )?;
    expect_err(
        s.insert(
            "projects",
            &["tenant_id", "id", "name"],
            vec![b.id.as_uuid().into(), Uuid::now_v7().into(), "x".into()],
        )
        .map(|_| ()),
        "insert builder with tenant_id",
        invalid,
    )?;
    drop(s);

    // A hand-written UPDATE through the scope that tries to move the row to B is refused by
    // the database.
    let s = store.scope(&a).await?;
    let mut raw = Query::update();
    raw.table(s.table("projects"))
        .value(Alias::new("tenant_id"), b.id.as_uuid())
        .and_where(Expr::col(Alias::new("id")).eq(p.id));
    let moved = s.execute(&raw).await;
    ensure!(
        moved.is_err(),
        "moving a row to another tenant must fail, got {moved:?}"
    );
    drop(s);

    let rows = all_projects(&*store, &a).await?;
    ensure!(
        rows.len() == 1 && rows[0].tenant_id == a.id.as_uuid(),
        "the row still belongs to A"
    );
    ensure!(
        all_projects(&*store, &b).await?.is_empty(),
        "B gained nothing"
    );
    Ok(())
}

/// Deleting A purges A and leaves B's rows intact.
pub async fn delete_leaves_other_tenants(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let a = tenant(&*store, "alpha").await?;
    let b = tenant(&*store, "bravo").await?;
    for t in [&a, &b] {
        let s = store.scope(t).await?;
        seed::projects_with_tasks(&s, "p", 5, 1).await?;
        s.commit().await?;
    }
    let b_before = all_projects(&*store, &b).await?;
    store.delete_tenant(a.id).await?;
    ensure!(
        all_projects(&*store, &b).await? == b_before,
        "B's projects are intact"
    );
    let s = store.scope(&b).await?;
    for p in &b_before {
        ensure!(task_count(&s, p.id).await? == 1, "B's tasks are intact");
    }
    ensure!(
        rows_anywhere(h, a.id).await? == 0,
        "A's rows are purged from every database and schema"
    );
    ensure!(
        rows_anywhere(h, b.id).await? == 10,
        "B's 5 projects and 5 tasks remain"
    );
    // A new tenant with A's slug starts empty.
    let a2 = tenant(&*store, "alpha").await?;
    ensure!(
        all_projects(&*store, &a2).await?.is_empty(),
        "nothing of A's survives"
    );
    Ok(())
}

/// A tenant deleted by one process while another still holds it (as the demo's identity
/// cache keeps a tenant for a while): the other process's writes for it fail, none lands
/// anywhere, and the other tenants are untouched.
pub async fn deleted_tenant_takes_no_writes(h: &Harness) -> Result<()> {
    let deleter = h.store(StoreConfig::default()).await?;
    let stale = h.store(StoreConfig::default()).await?;
    let a = tenant(&*deleter, "alpha").await?;
    let b = tenant(&*deleter, "bravo").await?;
    // The second process has served A (its connections may stay bound to A's placement).
    let cached = stale.tenant(a.id).await?;
    new_project(&*stale, &cached, "before").await?;
    new_project(&*stale, &b, "b").await?;

    deleter.delete_tenant(a.id).await?;

    // The second process still believes A is ready.
    let late = async {
        let s = stale.scope(&cached).await?;
        projects::create(&s, NewProject::named("after")).await?;
        s.commit().await?;
        anyhow::Ok(())
    }
    .await;
    let rows_left = rows_anywhere(h, a.id).await?;
    crate::fault_report(
        &format!("{}-{}", h.test.replace("::", "-"), stale.strategy()),
        &serde_json::json!({
            "late_writes": 1,
            "late_writes_accepted": usize::from(late.is_ok()),
            "rows_of_the_deleted_tenant": rows_left,
        }),
    )?;
    ensure!(
        late.is_err(),
        "a write for a deleted tenant was accepted from a process that had it cached"
    );
    ensure!(
        rows_left == 0,
        "no row of the deleted tenant exists anywhere"
    );
    ensure!(
        all_projects(&*stale, &b).await?.len() == 1,
        "B keeps its project"
    );
    new_project(&*stale, &b, "b2").await?;
    Ok(())
}
