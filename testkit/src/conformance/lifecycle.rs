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
