//! The tenant migrator: the domain's tables, with unqualified names (see the module above).

use sea_orm_migration::prelude::*;

/// The domain's migrations. Shared-schema runs it as a sea-orm-migration migrator (ledger
/// `tenancy_tenant_migrations`); the other strategies apply [`Migrator::migrations`] per
/// schema or database through [`crate::migration::TenantMigrations`].
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001ProjectsAndTasks)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("tenancy_tenant_migrations").into_iden()
    }
}

// ANCHOR: tenant_tables
/// Projects and tasks. Every key starts with `tenant_id`, and so does the foreign key from a
/// task to its project: a task can never point at another tenant's project, and the tables
/// can be distributed by `tenant_id` (Citus) without change.
#[derive(Debug, DeriveMigrationName)]
pub struct M0001ProjectsAndTasks;

#[async_trait::async_trait]
impl MigrationTrait for M0001ProjectsAndTasks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE projects (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE tasks (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    project_id uuid NOT NULL,
    title      text NOT NULL,
    done       boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT tasks_project_fk FOREIGN KEY (tenant_id, project_id)
        REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_project_idx ON tasks (tenant_id, project_id, id);
"#,
            )
            .await?;
        Ok(())
    }
}
// ANCHOR_END: tenant_tables
