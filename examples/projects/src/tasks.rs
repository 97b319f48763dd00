//! Tasks: they belong to a project of the same tenant, which the composite foreign key
//! `(tenant_id, project_id) -> projects (tenant_id, id)` enforces in every strategy.

//!
//! Written with the [`task`] entity through the scope ([`tenancy_core::entity`]).

use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TASK_TITLE;
use super::task;
use tenancy_core::TenantScope;
use tenancy_core::entity::{ActiveModelInTenant, ManyInTenant, SelectInTenant};
use tenancy_core::{Error, Result};
use tenancy_core::{Page, PageRequest};

/// The longest task title accepted.
pub const MAX_TITLE: usize = TASK_TITLE.max;

/// A task as stored: the [`task`] entity's model.
pub type Task = task::Model;

/// What [`create`] needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The title: not blank, at most [`MAX_TITLE`] characters ([`TASK_TITLE`]).
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::title))]
    pub title: String,
}

impl NewTask {
    /// A task titled `title`.
    pub fn titled(title: impl Into<String>) -> Self {
        NewTask {
            title: title.into(),
        }
    }
}

/// What [`update`] may change; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// A new title, when given.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::new_title, required = false))]
    pub title: Option<String>,
    /// Done or not, when given.
    pub done: Option<bool>,
}

/// The fields' schemas in the OpenAPI document, from the same rule the checks use.
#[cfg(feature = "openapi")]
mod schema {
    use super::TASK_TITLE;
    use utoipa::openapi::schema::Object;

    pub(super) fn title() -> Object {
        TASK_TITLE.schema("The title.")
    }
    pub(super) fn new_title() -> Object {
        TASK_TITLE.nullable_schema("A new title, when given.")
    }
}

/// Creates a task in project `project_id`, which must be a project of the scope's tenant;
/// otherwise [`Error::NotFound`] and nothing is written.
pub async fn create(scope: &TenantScope, project_id: Uuid, new: NewTask) -> Result<Task> {
    TASK_TITLE.check("title", &new.title)?;
    // The project must be visible to this tenant. The foreign key would refuse another
    // tenant's project as well, but checking first gives "not found" rather than a conflict.
    super::projects::get(scope, project_id).await?;
    let created = task::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project_id),
        title: Set(new.title),
        ..Default::default()
    }
    .insert_in(scope)
    .await;
    match created {
        // The project was deleted between the check and the insert.
        Err(Error::ForeignKeyViolation { .. }) => Err(Error::NotFound("project")),
        other => other,
    }
}

/// The task `id` of the scope's tenant. Another tenant's id is [`Error::NotFound`].
pub async fn get(scope: &TenantScope, id: Uuid) -> Result<Task> {
    task::Entity::find()
        .filter(task::Column::Id.eq(id))
        .one_in(scope)
        .await?
        .ok_or(Error::NotFound("task"))
}

/// Changes the fields given in `patch` and returns the task as it now is.
pub async fn update(scope: &TenantScope, id: Uuid, patch: TaskPatch) -> Result<Task> {
    let mut changes = task::ActiveModel {
        id: Set(id),
        ..Default::default()
    };
    if let Some(title) = patch.title {
        TASK_TITLE.check("title", &title)?;
        changes.title = Set(title);
    }
    if let Some(done) = patch.done {
        changes.done = Set(done);
    }
    changes.update_in(scope).await.map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound("task"),
        e => e,
    })
}

/// Deletes the task.
pub async fn delete(scope: &TenantScope, id: Uuid) -> Result<()> {
    let deleted = task::Entity::delete_many()
        .filter(task::Column::Id.eq(id))
        .exec_in(scope)
        .await?;
    match deleted {
        0 => Err(Error::NotFound("task")),
        _ => Ok(()),
    }
}

/// A page of the tasks of project `project_id`, oldest first. An unknown project (or another
/// tenant's) is [`Error::NotFound`].
pub async fn list(scope: &TenantScope, project_id: Uuid, page: PageRequest) -> Result<Page<Task>> {
    // The project first: an unknown project is "not found" whatever else is wrong.
    super::projects::get(scope, project_id).await?;
    let limit = page.checked_limit()?;
    let mut q = task::Entity::find().filter(task::Column::ProjectId.eq(project_id));
    if let Some(after) = page.after {
        q = q.filter(task::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(task::Column::Id)
        .limit(limit + 1)
        .all_in(scope)
        .await?;
    Ok(Page::from_overfetch(rows, limit, |t: &Task| t.id))
}

/// Deletes the tenant's done tasks created before `before`; returns how many went. The demo's
/// task for every tenant (`tenancy-demo tenants run purge-done-tasks`): idempotent, as a task
/// of a run must be.
pub async fn purge_done(scope: &TenantScope, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
    task::Entity::delete_many()
        .filter(task::Column::Done.eq(true))
        .filter(task::Column::CreatedAt.lt(before))
        .exec_in(scope)
        .await
}
