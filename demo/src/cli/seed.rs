//! The `seed` command: tenants full of projects and tasks.

use anyhow::Result;
use tenancy_core::{NewTenant, Slug};
use tenancy_example::seed;

use super::progress::progress;
use crate::startup::Backend;

pub(super) async fn seed(
    backend: &Backend,
    n: usize,
    projects_each: usize,
    tasks_each: usize,
) -> Result<()> {
    let bar = progress(n as u64, "seeding");
    let plain = bar.is_hidden();
    for i in 0..n {
        let slug = Slug::parse(&format!("seed-{i}"))?;
        let t = backend
            .store
            .create_tenant(NewTenant::new(slug, format!("Seed {i}")))
            .await?;
        let scope = backend.store.scope(&t).await?;
        seed::projects_with_tasks(&scope, "Project ", projects_each, tasks_each).await?;
        scope.commit().await?;
        bar.inc(1);
        if plain && (n < 10 || (i + 1).is_multiple_of(n / 10)) {
            eprintln!("seeded {}/{n} tenants", i + 1);
        }
    }
    bar.finish_and_clear();
    println!("seeded {n} tenants with {projects_each} projects of {tasks_each} tasks each");
    Ok(())
}
