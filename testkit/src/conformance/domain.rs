//! Checks of the example domain through a scope: projects and tasks (create, get, update,
//! delete, keyset paging) and the summary join.

use anyhow::{Result, ensure};
use tenancy_core::{Error, Page, PageRequest};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::seed;
use tenancy_example::tasks::{self, NewTask, TaskPatch};
use uuid::Uuid;

use super::support::{
    all_projects, both_pages, expect_err, is_not_found, mark_done, rename_project, tenant,
};
use super::{Harness, StoreConfig};

/// Every project operation, with keyset paging.
pub async fn projects_crud_and_paging(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let p = projects::create(
        &scope,
        NewProject {
            description: "to the moon".into(),
            ..NewProject::named("Rocket")
        },
    )
    .await?;
    ensure!(p.tenant_id == t.id.as_uuid() && p.name == "Rocket" && p.description == "to the moon");
    ensure!(projects::get(&scope, p.id).await? == p);
    let renamed = rename_project(&scope, p.id, "Rocket 2").await?;
    ensure!(
        renamed.name == "Rocket 2" && renamed.description == "to the moon" && renamed.id == p.id
    );
    let mut ids = vec![p.id];
    ids.extend(
        seed::projects_with_tasks(&scope, "P", 6, 0)
            .await?
            .iter()
            .map(|p| p.id),
    );
    scope.commit().await?;

    // Paging visits every project once, in creation order.
    let scope = store.scope(&t).await?;
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let Page { items, next } = projects::list(&scope, page).await?;
        ensure!(items.len() <= 3);
        seen.extend(items.iter().map(|p| p.id));
        pages += 1;
        match next {
            Some(after) => {
                page = PageRequest {
                    limit: 3,
                    after: Some(after),
                }
            }
            None => break,
        }
    }
    ensure!(seen == ids, "paging returns each project once, in order");
    ensure!(
        pages == 3,
        "7 projects in pages of 3 make 3 pages, got {pages}"
    );
    expect_err(
        projects::list(&scope, PageRequest::first(0)).await,
        "limit 0",
        |e| matches!(e, Error::Invalid { .. }),
    )?;

    projects::delete(&scope, p.id).await?;
    expect_err(
        projects::get(&scope, p.id).await,
        "a deleted project",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&scope, p.id).await,
        "deleting twice",
        is_not_found,
    )?;
    scope.commit().await?;

    // A scope dropped without commit writes nothing.
    let scope = store.scope(&t).await?;
    projects::create(&scope, NewProject::named("Ghost")).await?;
    drop(scope);
    ensure!(
        all_projects(&*store, &t)
            .await?
            .iter()
            .all(|p| p.name != "Ghost"),
        "an uncommitted scope writes nothing"
    );
    ensure!(all_projects(&*store, &t).await?.len() == 6);
    Ok(())
}

/// Every task operation, with paging, and tasks that go with their project.
pub async fn tasks_crud_and_paging(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let p = projects::create(&scope, NewProject::named("Rocket")).await?;
    let task = tasks::create(&scope, p.id, NewTask::titled("Fuel")).await?;
    ensure!(
        task.project_id == p.id
            && !task.done
            && task.title == "Fuel"
            && task.tenant_id == t.id.as_uuid()
    );
    ensure!(tasks::get(&scope, task.id).await? == task);
    let done = mark_done(&scope, task.id).await?;
    ensure!(done.done && done.title == "Fuel");
    let retitled = tasks::update(
        &scope,
        task.id,
        TaskPatch {
            title: Some("Refuel".into()),
            done: None,
        },
    )
    .await?;
    ensure!(retitled.done && retitled.title == "Refuel");
    let mut ids = vec![task.id];
    for i in 0..4 {
        ids.push(
            tasks::create(&scope, p.id, NewTask::titled(format!("T{i}")))
                .await?
                .id,
        );
    }
    let first = tasks::list(&scope, p.id, PageRequest::first(3)).await?;
    let second = tasks::list(
        &scope,
        p.id,
        PageRequest {
            limit: 3,
            after: first.next,
        },
    )
    .await?;
    ensure!(first.next.is_some() && second.next.is_none());
    let seen: Vec<_> = both_pages(&first, &second, |t| t.id);
    ensure!(seen == ids, "task paging returns each task once, in order");

    expect_err(
        tasks::create(&scope, Uuid::now_v7(), NewTask::titled("Lost")).await,
        "a task in an unknown project",
        is_not_found,
    )?;
    tasks::delete(&scope, task.id).await?;
    expect_err(
        tasks::get(&scope, task.id).await,
        "a deleted task",
        is_not_found,
    )?;
    // Deleting the project takes its tasks with it.
    projects::delete(&scope, p.id).await?;
    expect_err(
        tasks::get(&scope, ids[1]).await,
        "a task of a deleted project",
        is_not_found,
    )?;
    expect_err(
        tasks::list(&scope, p.id, PageRequest::default()).await,
        "tasks of a deleted project",
        is_not_found,
    )?;
    scope.commit().await?;
    Ok(())
}

/// The join: projects with their open and done task counts.
pub async fn summary_join(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let other = tenant(&*store, "globex").await?;
    let scope = store.scope(&t).await?;
    let a = projects::create(&scope, NewProject::named("A")).await?;
    let b = projects::create(&scope, NewProject::named("B")).await?;
    let c = projects::create(&scope, NewProject::named("C")).await?;
    for i in 0..3 {
        let task = tasks::create(&scope, a.id, NewTask::titled(format!("a{i}"))).await?;
        if i == 0 {
            mark_done(&scope, task.id).await?;
        }
    }
    let task = tasks::create(&scope, b.id, NewTask::titled("b")).await?;
    mark_done(&scope, task.id).await?;
    scope.commit().await?;
    // Another tenant's tasks must not count.
    let oscope = store.scope(&other).await?;
    let op = projects::create(&oscope, NewProject::named("A")).await?;
    tasks::create(&oscope, op.id, NewTask::titled("x")).await?;
    oscope.commit().await?;

    let scope = store.scope(&t).await?;
    let page = projects::summary(&scope, PageRequest::first(2)).await?;
    let rest = projects::summary(
        &scope,
        PageRequest {
            limit: 2,
            after: page.next,
        },
    )
    .await?;
    let all: Vec<_> = both_pages(&page, &rest, |s| (s.id, s.open_tasks, s.done_tasks));
    ensure!(
        all == vec![(a.id, 2, 1), (b.id, 0, 1), (c.id, 0, 0)],
        "summary counts: {all:?}"
    );
    ensure!(rest.next.is_none());
    Ok(())
}
