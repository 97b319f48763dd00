//! Shared set-up for the criterion benches: databases on a real PostgreSQL (`DATABASE_URL`,
//! or the embedded server of the testkit), seeded outside the timed part.

use anyhow::Result;
use tenancy_core::domain::projects::{self, NewProject, Project};
use tenancy_core::{TenantScope, TenantStore};

/// Creates `n` projects through `scope` and commits; returns them.
pub async fn seed_projects(scope: TenantScope, n: usize) -> Result<Vec<Project>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            projects::create(
                &scope,
                NewProject {
                    name: format!("p{i}"),
                    description: String::new(),
                },
            )
            .await?,
        );
    }
    scope.commit().await?;
    Ok(out)
}

/// The store's tenant with `slug`, created if missing.
pub async fn tenant(store: &dyn TenantStore, slug: &str) -> Result<tenancy_core::Tenant> {
    Ok(store
        .create_tenant(tenancy_core::NewTenant::new(
            tenancy_core::Slug::parse(slug)?,
            slug,
        ))
        .await?)
}
