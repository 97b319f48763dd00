//! Projects: create, read, update, delete, list, and the summary join with task counts.

//!
//! Written with the [`project`] entity through the scope
//! ([`tenancy_core::entity`]), except the summary: a hand-written join with aggregate filters is what
//! the scope's string builders are for.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, JoinType, Order};
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::project;
use super::{PROJECT_DESCRIPTION, PROJECT_NAME};
use tenancy_core::TenantScope;
use tenancy_core::entity::{ActiveModelInTenant, ManyInTenant, SelectInTenant};
use tenancy_core::{Error, Result};
use tenancy_core::{Page, PageRequest};

const TABLE: &str = super::PROJECTS;

/// The longest project name accepted.
pub const MAX_NAME: usize = PROJECT_NAME.max;
/// The longest description accepted.
pub const MAX_DESCRIPTION: usize = PROJECT_DESCRIPTION.max;

/// A project as stored: the [`project`] entity's model.
pub type Project = project::Model;

/// What [`create`] needs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// The name: not blank, at most [`MAX_NAME`] characters ([`PROJECT_NAME`]).
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::name))]
    pub name: String,
    #[serde(default)]
    /// A description, at most [`MAX_DESCRIPTION`] characters; empty when left out.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::description, required = false))]
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
    /// A new name, when given.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::new_name, required = false))]
    pub name: Option<String>,
    /// A new description, when given.
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = schema::new_description, required = false)
    )]
    pub description: Option<String>,
}

/// The fields' schemas in the OpenAPI document, from the same rules the checks use.
#[cfg(feature = "openapi")]
mod schema {
    use super::{PROJECT_DESCRIPTION, PROJECT_NAME};
    use utoipa::openapi::schema::Object;

    pub(super) fn name() -> Object {
        PROJECT_NAME.schema("The name.")
    }
    pub(super) fn description() -> Object {
        PROJECT_DESCRIPTION.schema("A description; empty when left out.")
    }
    pub(super) fn new_name() -> Object {
        PROJECT_NAME.nullable_schema("A new name, when given.")
    }
    pub(super) fn new_description() -> Object {
        PROJECT_DESCRIPTION.nullable_schema("A new description, when given.")
    }
}

/// A project with the number of its open and done tasks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromQueryResult)]
pub struct ProjectSummary {
    /// The project's id.
    pub id: Uuid,
    /// The project's name.
    pub name: String,
    /// How many of its tasks are not done.
    pub open_tasks: i64,
    /// How many of its tasks are done.
    pub done_tasks: i64,
}

fn check_new(new: &NewProject) -> Result<()> {
    PROJECT_NAME.check("name", &new.name)?;
    PROJECT_DESCRIPTION.check("description", &new.description)
}

// ANCHOR: create
/// Creates a project in the scope's tenant.
pub async fn create(scope: &TenantScope, new: NewProject) -> Result<Project> {
    check_new(&new)?;
    project::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        description: Set(new.description),
        ..Default::default()
    }
    .insert_in(scope)
    .await
}
// ANCHOR_END: create

// ANCHOR: get
/// The project `id` of the scope's tenant. Another tenant's id is [`Error::NotFound`].
pub async fn get(scope: &TenantScope, id: Uuid) -> Result<Project> {
    project::Entity::find()
        .filter(project::Column::Id.eq(id))
        .one_in(scope)
        .await?
        .ok_or(Error::NotFound("project"))
}
// ANCHOR_END: get

/// Changes the fields given in `patch` and returns the project as it now is.
pub async fn update(scope: &TenantScope, id: Uuid, patch: ProjectPatch) -> Result<Project> {
    let mut changes = project::ActiveModel {
        id: Set(id),
        ..Default::default()
    };
    if let Some(name) = patch.name {
        PROJECT_NAME.check("name", &name)?;
        changes.name = Set(name);
    }
    if let Some(description) = patch.description {
        PROJECT_DESCRIPTION.check("description", &description)?;
        changes.description = Set(description);
    }
    changes.update_in(scope).await.map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound("project"),
        e => e,
    })
}

/// Deletes the project and, through the foreign key, its tasks.
pub async fn delete(scope: &TenantScope, id: Uuid) -> Result<()> {
    let deleted = project::Entity::delete_many()
        .filter(project::Column::Id.eq(id))
        .exec_in(scope)
        .await?;
    match deleted {
        0 => Err(Error::NotFound("project")),
        _ => Ok(()),
    }
}

/// A page of the tenant's projects, oldest first.
pub async fn list(scope: &TenantScope, page: PageRequest) -> Result<Page<Project>> {
    let limit = page.checked_limit()?;
    let mut q = project::Entity::find();
    if let Some(after) = page.after {
        q = q.filter(project::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(project::Column::Id)
        .limit(limit + 1)
        .all_in(scope)
        .await?;
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
