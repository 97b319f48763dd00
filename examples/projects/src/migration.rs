//! The tenant migrations of the example domain: projects and tasks, with unqualified names, so
//! each strategy decides where they land.

use sea_orm_migration::prelude::*;

/// The domain's migrations, in order, as a sea-orm-migration migrator. Stores apply them
/// through [`tenancy_core::migration::TenantMigrations`] (see [`crate::migrations`]): once for
/// the shared tables, once per tenant schema or database for the others, with each tenant's
/// version in the catalog counting how many have run.
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
#[derive(Debug)]
pub struct M0001ProjectsAndTasks;

impl MigrationName for M0001ProjectsAndTasks {
    fn name(&self) -> &str {
        "m0001_projects_and_tasks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001ProjectsAndTasks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One statement per message: Citus refuses a message of several DDL statements in a
        // distributed tenant schema (it sends the message's text on to the worker).
        for statement in STATEMENTS {
            manager
                .get_connection()
                .execute_unprepared(statement)
                .await?;
        }
        Ok(())
    }
}

const STATEMENTS: [&str; 3] = [
    r#"
CREATE TABLE projects (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
)"#,
    r#"
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
)"#,
    r#"
CREATE INDEX tasks_project_idx ON tasks (tenant_id, project_id, id)"#,
];
// ANCHOR_END: tenant_tables
