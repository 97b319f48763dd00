//! The example SaaS domain, written once against [`TenantScope`](crate::TenantScope): projects,
//! and tasks that belong to a project.
//!
//! Nothing here knows which strategy runs underneath. The tables are sea-orm entities
//! ([`project`], [`task`]), and every statement goes through the scope ([`crate::entity`], or
//! the scope's builders for the summary join), so the tenant predicate and the table placement
//! come with it.

pub mod project;
pub mod projects;
pub mod seed;
pub mod task;
pub mod tasks;

use crate::error::{Error, Result};

/// The table of [`projects`].
pub(crate) const PROJECTS: &str = "projects";
/// The table of [`tasks`].
pub(crate) const TASKS: &str = "tasks";

/// The domain's tenant tables, in creation order (parents first). Every one has a
/// `tenant_id` column.
pub const TENANT_TABLES: [&str; 2] = [PROJECTS, TASKS];

/// Refuses text PostgreSQL cannot store: the NUL character (`\u0000` in JSON) is valid
/// UTF-8 but not allowed in a `text` value, and the server would refuse the whole statement.
pub fn storable(field: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::Invalid {
            field,
            reason: "must not contain the NUL character (\\u0000)".into(),
        });
    }
    Ok(())
}

/// Checks a required text field: not blank, at most `max` characters, storable.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<()> {
    storable(field, value)?;
    if value.trim().is_empty() {
        return Err(Error::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.chars().count() > max {
        return Err(Error::Invalid {
            field,
            reason: format!("must be at most {max} characters"),
        });
    }
    Ok(())
}
