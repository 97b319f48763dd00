//! Checks of what a store refuses: invalid slugs, unknown ids and invalid values give a typed
//! error and write nothing.

use anyhow::{Result, bail, ensure};
use tenancy_core::{Error, PageRequest, Slug, TenantId};
use tenancy_example::projects::{self, NewProject};
use tenancy_example::tasks::{self, NewTask};
use uuid::Uuid;

use super::support::{
    all_projects, expect_err, footprint, is_not_found, mark_done, new_project, rename_project,
    slug, tenant,
};
use super::{Harness, StoreConfig};

/// Invalid slugs give the typed error and create nothing, in the catalog or the database.
pub async fn invalid_slugs_write_nothing(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    tenant(&*store, "acme").await?;
    let before = footprint(h).await?;
    let too_long = "a".repeat(41);
    for bad in [
        "",
        too_long.as_str(),
        "Acme",
        "ACME",
        "acmé",
        "ünicode",
        "a\"; drop schema public; --",
        "pg_x",
        "public",
        "postgres",
        "template0",
    ] {
        match Slug::parse(bad) {
            Err(Error::InvalidSlug { .. }) => {}
            other => bail!("slug {bad:?} should be refused, got {other:?}"),
        }
    }
    // The only way to name a tenant is a Slug, so a store cannot be handed a bad one; a
    // lookup by a valid but unknown slug is simply not found.
    expect_err(
        store.tenant_by_slug(&slug("nobody")).await,
        "unknown slug",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    ensure!(footprint(h).await? == before, "refused slugs wrote nothing");
    Ok(())
}

/// Unknown ids give not found, for tenants and for rows.
pub async fn unknown_ids_are_not_found(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    expect_err(store.tenant(TenantId::new()).await, "unknown tenant", |e| {
        matches!(e, Error::TenantNotFound)
    })?;
    expect_err(
        store.delete_tenant(TenantId::new()).await,
        "deleting an unknown tenant",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    let t = tenant(&*store, "acme").await?;
    let scope = store.scope(&t).await?;
    let id = Uuid::now_v7();
    expect_err(projects::get(&scope, id).await, "project get", is_not_found)?;
    expect_err(
        rename_project(&scope, id, "x").await,
        "project update",
        is_not_found,
    )?;
    expect_err(
        projects::delete(&scope, id).await,
        "project delete",
        is_not_found,
    )?;
    expect_err(tasks::get(&scope, id).await, "task get", is_not_found)?;
    expect_err(mark_done(&scope, id).await, "task update", is_not_found)?;
    expect_err(tasks::delete(&scope, id).await, "task delete", is_not_found)?;
    expect_err(
        tasks::list(&scope, id, PageRequest::default()).await,
        "task list",
        is_not_found,
    )?;
    Ok(())
}

/// Values the domain refuses give a typed error and write nothing.
pub async fn invalid_values_write_nothing(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let t = tenant(&*store, "acme").await?;
    let p = new_project(&*store, &t, "Rocket").await?;
    let scope = store.scope(&t).await?;
    let invalid = |e: &Error| matches!(e, Error::Invalid { .. });
    expect_err(
        projects::create(&scope, NewProject::named("  ")).await,
        "blank name",
        invalid,
    )?;
    expect_err(
        projects::create(&scope, NewProject::named("x".repeat(10_000))).await,
        "10k name",
        invalid,
    )?;
    expect_err(
        rename_project(&scope, p.id, String::new()).await,
        "empty rename",
        invalid,
    )?;
    expect_err(
        tasks::create(&scope, p.id, NewTask::titled(String::new())).await,
        "empty title",
        invalid,
    )?;
    expect_err(
        tasks::create(&scope, p.id, NewTask::titled("t".repeat(10_000))).await,
        "10k title",
        invalid,
    )?;
    // The NUL character is valid UTF-8 but PostgreSQL cannot store it (found by schemathesis).
    expect_err(
        projects::create(&scope, NewProject::named("a\0b")).await,
        "a NUL in a name",
        invalid,
    )?;
    expect_err(
        rename_project(&scope, p.id, "x\0").await,
        "a NUL in a rename",
        invalid,
    )?;
    expect_err(
        tasks::create(&scope, p.id, NewTask::titled("\0")).await,
        "a NUL in a title",
        invalid,
    )?;
    scope.commit().await?;
    let projects = all_projects(&*store, &t).await?;
    ensure!(
        projects.len() == 1 && projects[0].name == "Rocket",
        "nothing was written: {projects:?}"
    );
    let scope = store.scope(&t).await?;
    ensure!(
        tasks::list(&scope, p.id, PageRequest::default())
            .await?
            .items
            .is_empty(),
        "no task was written"
    );
    Ok(())
}
