//! Tasks: they belong to a project of the same tenant, which the composite foreign key
//! `(tenant_id, project_id) -> projects (tenant_id, id)` enforces in every strategy.

use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::check_text;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;

const TABLE: &str = super::TASKS;
const COLUMNS: [&str; 6] = [
    "tenant_id",
    "id",
    "project_id",
    "title",
    "done",
    "created_at",
];

/// The longest task title accepted.
pub const MAX_TITLE: usize = 500;

/// A task as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromQueryResult)]
pub struct Task {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
}

/// What [`create`] needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
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
    pub title: Option<String>,
    pub done: Option<bool>,
}

fn select_columns(scope: &TenantScope) -> sea_orm::sea_query::SelectStatement {
    let mut q = scope.select(TABLE, "t");
    for c in COLUMNS {
        q.column((Alias::new("t"), Alias::new(c)));
    }
    q
}

/// Creates a task in project `project_id`, which must be a project of the scope's tenant;
/// otherwise [`Error::NotFound`] and nothing is written.
pub async fn create(scope: &TenantScope, project_id: Uuid, new: NewTask) -> Result<Task> {
    check_text("title", &new.title, MAX_TITLE)?;
    // The project must be visible to this tenant. The foreign key would refuse another
    // tenant's project as well, but checking first gives "not found" rather than a conflict.
    super::projects::get(scope, project_id).await?;
    let id = Uuid::now_v7();
    let mut insert = scope.insert(
        TABLE,
        &["id", "project_id", "title"],
        vec![id.into(), project_id.into(), new.title.into()],
    )?;
    insert.returning(Query::returning().columns(COLUMNS.map(Alias::new)));
    match scope.fetch_optional(&insert).await {
        Ok(Some(task)) => Ok(task),
        Ok(None) => Err(Error::NotFound("project")),
        // The project was deleted between the check and the insert.
        Err(Error::ForeignKeyViolation { .. }) => Err(Error::NotFound("project")),
        Err(e) => Err(e),
    }
}

/// The task `id` of the scope's tenant. Another tenant's id is [`Error::NotFound`].
pub async fn get(scope: &TenantScope, id: Uuid) -> Result<Task> {
    let mut q = select_columns(scope);
    q.and_where(Expr::col((Alias::new("t"), Alias::new("id"))).eq(id));
    scope
        .fetch_optional(&q)
        .await?
        .ok_or(Error::NotFound("task"))
}

/// Changes the fields given in `patch` and returns the task as it now is.
pub async fn update(scope: &TenantScope, id: Uuid, patch: TaskPatch) -> Result<Task> {
    let mut changes = Vec::new();
    if let Some(title) = patch.title {
        check_text("title", &title, MAX_TITLE)?;
        changes.push(("title", title.into()));
    }
    if let Some(done) = patch.done {
        changes.push(("done", done.into()));
    }
    if changes.is_empty() {
        return get(scope, id).await;
    }
    let mut q = scope.update(TABLE, changes)?;
    q.and_where(Expr::col(Alias::new("id")).eq(id))
        .returning(Query::returning().columns(COLUMNS.map(Alias::new)));
    scope
        .fetch_optional(&q)
        .await?
        .ok_or(Error::NotFound("task"))
}

/// Deletes the task.
pub async fn delete(scope: &TenantScope, id: Uuid) -> Result<()> {
    let mut q = scope.delete(TABLE);
    q.and_where(Expr::col(Alias::new("id")).eq(id));
    match scope.execute(&q).await? {
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
    let mut q = select_columns(scope);
    q.and_where(Expr::col((Alias::new("t"), Alias::new("project_id"))).eq(project_id));
    if let Some(after) = page.after {
        q.and_where(Expr::col((Alias::new("t"), Alias::new("id"))).gt(after));
    }
    q.order_by((Alias::new("t"), Alias::new("id")), Order::Asc)
        .limit(limit + 1);
    let rows = scope.fetch_all(&q).await?;
    Ok(Page::from_overfetch(rows, limit, |t: &Task| t.id))
}
