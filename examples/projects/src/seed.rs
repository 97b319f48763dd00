//! Sample data: a tenant filled with projects and tasks, for the demo's `seed` command, the
//! first run, the benches and the tests.

use super::projects::{self, NewProject, Project};
use super::tasks::{self, NewTask};
use tenancy_core::Result;
use tenancy_core::TenantScope;

/// Creates `projects` projects named `{prefix}0`, `{prefix}1`, ..., each with `tasks` tasks,
/// through `scope` (which the caller commits). Returns the projects in creation order.
pub async fn projects_with_tasks(
    scope: &TenantScope,
    prefix: &str,
    projects: usize,
    tasks: usize,
) -> Result<Vec<Project>> {
    let mut out = Vec::with_capacity(projects);
    for i in 0..projects {
        let p = projects::create(scope, NewProject::named(format!("{prefix}{i}"))).await?;
        for j in 0..tasks {
            tasks::create(scope, p.id, NewTask::titled(format!("task {j}"))).await?;
        }
        out.push(p);
    }
    Ok(out)
}
