//! Projects: create, read, update, delete, list, and the summary join with task counts.

use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, JoinType, Order};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::check_text;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;

const TABLE: &str = super::PROJECTS;
const COLUMNS: [&str; 5] = ["tenant_id", "id", "name", "description", "created_at"];

/// The longest project name accepted.
pub const MAX_NAME: usize = 200;
/// The longest description accepted.
pub const MAX_DESCRIPTION: usize = 4000;

/// A project as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromQueryResult)]
pub struct Project {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// What [`create`] needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl NewProject {
    /// A project called `name`, with no description.
    pub fn named(name: impl Into<String>) -> Self {
        NewProject {
            name: name.into(),
            description: String::new(),
        }
    }
}

/// What [`update`] may change; absent fields stay as they are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A project with the number of its open and done tasks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromQueryResult)]
pub struct ProjectSummary {
    pub id: Uuid,
    pub name: String,
    pub open_tasks: i64,
    pub done_tasks: i64,
}

fn select_columns(scope: &TenantScope) -> sea_orm::sea_query::SelectStatement {
    let mut q = scope.select(TABLE, "p");
    for c in COLUMNS {
        q.column((Alias::new("p"), Alias::new(c)));
    }
    q
}

fn check_new(new: &NewProject) -> Result<()> {
    check_text("name", &new.name, MAX_NAME)?;
    super::storable("description", &new.description)?;
    if new.description.chars().count() > MAX_DESCRIPTION {
        return Err(Error::Invalid {
            field: "description",
            reason: format!("must be at most {MAX_DESCRIPTION} characters"),
        });
    }
    Ok(())
}

// ANCHOR: create
/// Creates a project in the scope's tenant.
pub async fn create(scope: &TenantScope, new: NewProject) -> Result<Project> {
    check_new(&new)?;
    let id = Uuid::now_v7();
    let mut insert = scope.insert(
        TABLE,
        &["id", "name", "description"],
        vec![id.into(), new.name.into(), new.description.into()],
    )?;
    insert.returning(sea_orm::sea_query::Query::returning().columns(COLUMNS.map(Alias::new)));
    scope
        .fetch_optional(&insert)
        .await?
        .ok_or(Error::NotFound("project"))
}
// ANCHOR_END: create

// ANCHOR: get
/// The project `id` of the scope's tenant. Another tenant's id is [`Error::NotFound`].
pub async fn get(scope: &TenantScope, id: Uuid) -> Result<Project> {
    let mut q = select_columns(scope);
    q.and_where(Expr::col((Alias::new("p"), Alias::new("id"))).eq(id));
    scope
        .fetch_optional(&q)
        .await?
        .ok_or(Error::NotFound("project"))
}
// ANCHOR_END: get

/// Changes the fields given in `patch` and returns the project as it now is.
pub async fn update(scope: &TenantScope, id: Uuid, patch: ProjectPatch) -> Result<Project> {
    let mut changes = Vec::new();
    if let Some(name) = patch.name {
        check_text("name", &name, MAX_NAME)?;
        changes.push(("name", name.into()));
    }
    if let Some(description) = patch.description {
        check_new(&NewProject {
            name: "x".into(),
            description: description.clone(),
        })?;
        changes.push(("description", description.into()));
    }
    if changes.is_empty() {
        return get(scope, id).await;
    }
    let mut q = scope.update(TABLE, changes)?;
    q.and_where(Expr::col(Alias::new("id")).eq(id))
        .returning(sea_orm::sea_query::Query::returning().columns(COLUMNS.map(Alias::new)));
    scope
        .fetch_optional(&q)
        .await?
        .ok_or(Error::NotFound("project"))
}

/// Deletes the project and, through the foreign key, its tasks.
pub async fn delete(scope: &TenantScope, id: Uuid) -> Result<()> {
    let mut q = scope.delete(TABLE);
    q.and_where(Expr::col(Alias::new("id")).eq(id));
    match scope.execute(&q).await? {
        0 => Err(Error::NotFound("project")),
        _ => Ok(()),
    }
}

/// A page of the tenant's projects, oldest first.
pub async fn list(scope: &TenantScope, page: PageRequest) -> Result<Page<Project>> {
    let limit = page.checked_limit()?;
    let mut q = select_columns(scope);
    if let Some(after) = page.after {
        q.and_where(Expr::col((Alias::new("p"), Alias::new("id"))).gt(after));
    }
    q.order_by((Alias::new("p"), Alias::new("id")), Order::Asc)
        .limit(limit + 1);
    let rows = scope.fetch_all(&q).await?;
    Ok(Page::from_overfetch(rows, limit, |p: &Project| p.id))
}

// ANCHOR: summary
/// A page of projects with their open and done task counts: the domain's one join.
///
/// The join condition carries `tenant_id` as the foreign key does, so the planner uses the
/// composite index and a task can only ever count for a project of its own tenant.
pub async fn summary(scope: &TenantScope, page: PageRequest) -> Result<Page<ProjectSummary>> {
    let limit = page.checked_limit()?;
    let (p, t) = (Alias::new("p"), Alias::new("t"));
    let done = Expr::col((t.clone(), Alias::new("done")));
    let mut q = scope.select(TABLE, "p");
    q.column((p.clone(), Alias::new("id")))
        .column((p.clone(), Alias::new("name")))
        .expr_as(
            Func::count(Expr::col((t.clone(), Alias::new("id")))).filter(done.clone().not()),
            Alias::new("open_tasks"),
        )
        .expr_as(
            Func::count(Expr::col((t.clone(), Alias::new("id")))).filter(done),
            Alias::new("done_tasks"),
        )
        .join(
            JoinType::LeftJoin,
            scope.table_as(super::TASKS, "t"),
            Expr::col((t.clone(), Alias::new("tenant_id")))
                .equals((p.clone(), Alias::new("tenant_id")))
                .and(
                    Expr::col((t, Alias::new("project_id"))).equals((p.clone(), Alias::new("id"))),
                ),
        )
        .group_by_col((p.clone(), Alias::new("id")))
        .group_by_col((p.clone(), Alias::new("name")))
        .order_by((p.clone(), Alias::new("id")), Order::Asc)
        .limit(limit + 1);
    if let Some(after) = page.after {
        q.and_where(Expr::col((p, Alias::new("id"))).gt(after));
    }
    let rows = scope.fetch_all(&q).await?;
    Ok(Page::from_overfetch(rows, limit, |s: &ProjectSummary| s.id))
}
// ANCHOR_END: summary
