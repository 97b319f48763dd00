//! The control-plane migrator: the catalog in the `tenancy` schema.

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

/// The catalog: tenants, global users, memberships with roles, hashed API tokens.
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

CREATE TABLE tenancy.users (
    id         uuid PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenancy.memberships (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES tenancy.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON tenancy.memberships (user_id);

CREATE TABLE tenancy.api_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES tenancy.users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

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
