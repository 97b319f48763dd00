//! The `projects` table as a sea-orm entity, for domain code written with entities (see
//! [`tenancy_core::entity`]); [`super::projects`] holds the operations the demo serves.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

// ANCHOR: project_entity
/// A project as stored. Its key starts with `tenant_id`, like every key of a tenant table.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Project))]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    /// The tenant the project belongs to; set by the scope, never changed.
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    /// The project's id (UUID v7, so ids sort by creation time).
    pub id: Uuid,
    /// Its name: not blank, at most [`MAX_NAME`](super::projects::MAX_NAME) characters.
    pub name: String,
    /// A free text, empty by default.
    pub description: String,
    #[sea_orm(column_type = "TimestampWithTimeZone")]
    /// When it was created (the database's clock).
    pub created_at: DateTime<Utc>,
}

/// A project has many tasks.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::task::Entity")]
    /// Its tasks, by `(tenant_id, id)` = `tasks (tenant_id, project_id)`.
    Tasks,
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
// ANCHOR_END: project_entity
