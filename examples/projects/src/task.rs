//! The `tasks` table as a sea-orm entity (see [`tenancy_core::entity`]); [`super::tasks`] holds the
//! operations the demo serves.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: task_entity
/// A task as stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Task))]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    /// The tenant the task belongs to; set by the scope, never changed.
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    /// The task's id (UUID v7).
    pub id: Uuid,
    /// The project it belongs to, of the same tenant (the composite foreign key says so).
    pub project_id: Uuid,
    /// Its title: not blank, at most [`MAX_TITLE`](super::tasks::MAX_TITLE) characters.
    pub title: String,
    /// Whether it is done; `false` when created.
    pub done: bool,
    #[sea_orm(column_type = "TimestampWithTimeZone")]
    /// When it was created (the database's clock).
    pub created_at: DateTime<Utc>,
}

/// A task belongs to its project, by the same composite key as the table's foreign key:
/// `(tenant_id, project_id) -> projects (tenant_id, id)`. A join on it can only reach a
/// project of the task's own tenant.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "(Column::TenantId, Column::ProjectId)",
        to = "(super::project::Column::TenantId, super::project::Column::Id)",
        on_delete = "Cascade"
    )]
    /// The project the task belongs to.
    Project,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
// ANCHOR_END: task_entity
