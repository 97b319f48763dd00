//! Checks of the tenant lifecycle: create (twice), look up, list, delete, create again.

use anyhow::{Result, ensure};
use tenancy_core::{Error, NewTenant, PageRequest, TenantState};

use super::support::{all_projects, both_pages, expect_err, footprint, new_project, slug, tenant};
use super::{Harness, StoreConfig};

/// Create, create again (same tenant back), look up, list, delete, create again.
pub async fn lifecycle(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let acme = tenant(&*store, "acme").await?;
    ensure!(
        acme.state == TenantState::Ready,
        "a created tenant is ready"
    );
    ensure!(acme.slug.as_str() == "acme");
    ensure!(
        acme.schema_version > 0,
        "a created tenant has the domain tables"
    );

    let again = store
        .create_tenant(NewTenant::new(slug("acme"), "Other name"))
        .await?;
    ensure!(
        again.id == acme.id,
        "creating the same slug twice gives the same tenant back"
    );
    let before = footprint(h).await?;
    store
        .create_tenant(NewTenant::new(slug("acme"), "Again"))
        .await?;
    ensure!(
        footprint(h).await? == before,
        "a repeated create builds nothing"
    );

    ensure!(store.tenant(acme.id).await? == acme);
    ensure!(store.tenant_by_slug(&slug("acme")).await? == acme);

    let globex = tenant(&*store, "globex").await?;
    let initech = tenant(&*store, "initech").await?;
    let first = store.list_tenants(PageRequest::first(2)).await?;
    ensure!(
        first.items.len() == 2 && first.next.is_some(),
        "the first page has 2 tenants and a next cursor: {first:?}"
    );
    let second = store
        .list_tenants(PageRequest {
            limit: 2,
            after: first.next,
        })
        .await?;
    ensure!(
        second.items.len() == 1 && second.next.is_none(),
        "the second page has the third tenant"
    );
    let listed: Vec<_> = both_pages(&first, &second, |t| t.id);
    ensure!(
        listed == vec![acme.id, globex.id, initech.id],
        "tenants are listed in creation order"
    );

    new_project(&*store, &acme, "Rocket").await?;
    store.delete_tenant(acme.id).await?;
    expect_err(
        store.tenant(acme.id).await,
        "a deleted tenant is gone",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    expect_err(
        store.tenant_by_slug(&slug("acme")).await,
        "its slug is gone",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    // A deleted tenant is gone from the catalog, so no fresh lookup can hand it out for a
    // scope. (A `Tenant` value fetched before the delete is not re-checked by the stores.)
    expect_err(
        store.tenant(acme.id).await.map(|_| ()),
        "a deleted tenant is not found by id",
        |e| matches!(e, Error::TenantNotFound),
    )?;
    expect_err(
        store.tenant_by_slug(&acme.slug).await.map(|_| ()),
        "a deleted tenant is not found by slug",
        |e| matches!(e, Error::TenantNotFound),
    )?;

    let reborn = tenant(&*store, "acme").await?;
    ensure!(
        reborn.id != acme.id,
        "a slug can be used again after delete, as a new tenant"
    );
    ensure!(
        all_projects(&*store, &reborn).await?.is_empty(),
        "the new tenant starts empty"
    );
    expect_err(store.delete_tenant(acme.id).await, "deleting twice", |e| {
        matches!(e, Error::TenantNotFound)
    })?;
    Ok(())
}

/// Exclusive creations of one slug at once, from two stores (two processes): exactly one
/// succeeds, the others get `TenantAlreadyExists`, and the catalog holds one tenant.
pub async fn exclusive_creation_has_one_winner(h: &Harness) -> Result<()> {
    let first = h.store(StoreConfig::default()).await?;
    let second = h.store(StoreConfig::default()).await?;
    let attempts = (0..6).map(|i| {
        let store = if i % 2 == 0 { &first } else { &second };
        store.create_tenant(NewTenant::new(slug("once"), "Once").exclusive())
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TenantAlreadyExists(_))))
        .count();
    ensure!(
        won == 1 && refused == 5,
        "six exclusive creations: {won} succeeded, {refused} refused: {results:?}"
    );
    let winner = first.tenant_by_slug(&slug("once")).await?;
    ensure!(winner.state == TenantState::Ready, "the winner is ready");
    new_project(&*first, &winner, "one").await?;
    // Not exclusive, the same slug gives the same tenant back.
    let again = second
        .create_tenant(NewTenant::new(slug("once"), "Once"))
        .await?;
    ensure!(
        again.id == winner.id,
        "an idempotent creation returns the tenant"
    );
    Ok(())
}
