//! The control-plane migrator: the catalog of tenants in the `tenancy` schema. It knows no
//! application: users, memberships and tokens belong to the app that serves them.

use sea_orm_migration::prelude::*;

/// Runs the catalog's migrations; its ledger is `public.tenancy_control_migrations`.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Catalog)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("tenancy_control_migrations").into_iden()
    }
}

/// The catalog: tenants with their placement and state, and the strategies' templates.
/// An application keeps its own control tables (users, memberships, tokens) with a migrator
/// of its own: the demo's are in `tenancy-demo`.
#[derive(Debug, DeriveMigrationName)]
pub struct M0001Catalog;

#[async_trait::async_trait]
impl MigrationTrait for M0001Catalog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE SCHEMA IF NOT EXISTS tenancy;

CREATE TABLE tenancy.tenants (
    id             uuid PRIMARY KEY,
    slug           text NOT NULL UNIQUE,
    name           text NOT NULL,
    placement      jsonb NOT NULL,
    state          text NOT NULL CHECK (state IN ('provisioning', 'ready', 'deleting')),
    schema_version integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_pending_idx ON tenancy.tenants (schema_version) WHERE state = 'ready';

-- Per-placement bookkeeping kept by a strategy (the template's version, for instance).
CREATE TABLE tenancy.templates (
    name           text PRIMARY KEY,
    schema_version integer NOT NULL DEFAULT 0
);
"#,
            )
            .await?;
        Ok(())
    }
}
