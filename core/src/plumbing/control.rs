//! The control-plane migrator: the catalog of tenants in the `tenancy` schema. It knows no
//! application: users, memberships and tokens belong to the app that serves them.

use sea_orm_migration::prelude::*;

/// Runs the catalog's migrations; its ledger is `public.tenancy_control_migrations`.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Catalog),
            Box::new(M0002CatalogNotifications),
            Box::new(M0003Moves),
            Box::new(M0004TenantMigrationNames),
            Box::new(M0005Suspension),
            Box::new(M0006TaskRuns),
            Box::new(M0007Plans),
            Box::new(M0008PlacedAt),
        ]
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

/// Every change to a tenant's catalog row (its state, its version, its removal) is announced
/// on channel [`CATALOG_CHANNEL`](crate::catalog::CATALOG_CHANNEL) with the tenant's slug, when
/// the change commits: processes that cache tenants `LISTEN` and forget the tenant at once,
/// whichever process (or `psql`) made the change.
/// Named by hand: the derive names a migration after its file, which M0001 already took.
#[derive(Debug)]
pub struct M0002CatalogNotifications;

impl MigrationName for M0002CatalogNotifications {
    fn name(&self) -> &str {
        "m0002_catalog_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002CatalogNotifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE OR REPLACE FUNCTION tenancy.announce_tenant_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenancy_catalog', OLD.slug);
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_announce_change
    AFTER UPDATE OR DELETE ON tenancy.tenants
    FOR EACH ROW EXECUTE FUNCTION tenancy.announce_tenant_change();
"#,
            )
            .await?;
        Ok(())
    }
}

/// Moves between placements: the `moving` state, the move record on the tenant's row (source,
/// target, step) and the jobs that report on them.
#[derive(Debug)]
pub struct M0003Moves;

impl MigrationName for M0003Moves {
    fn name(&self) -> &str {
        "m0003_moves"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Moves {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
ALTER TABLE tenancy.tenants DROP CONSTRAINT tenants_state_check;
ALTER TABLE tenancy.tenants ADD CONSTRAINT tenants_state_check
    CHECK (state IN ('provisioning', 'ready', 'deleting', 'moving'));
ALTER TABLE tenancy.tenants ADD COLUMN moving jsonb;
ALTER TABLE tenancy.tenants ADD CONSTRAINT tenants_moving_check
    CHECK ((state = 'moving') = (moving IS NOT NULL));

CREATE TABLE tenancy.jobs (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    tenant_id   uuid NOT NULL,
    slug        text NOT NULL,
    detail      jsonb NOT NULL,
    step        text NOT NULL,
    rows_done   bigint NOT NULL DEFAULT 0,
    rows_total  bigint NOT NULL DEFAULT 0,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX jobs_tenant_idx ON tenancy.jobs (tenant_id, started_at);
"#,
            )
            .await?;
        Ok(())
    }
}

/// The names of the tenant migrations, by version: a tenant's `schema_version` counts the
/// migrations applied to it, so the list a store is given must begin with the one its tenants
/// were built with. [`TenantMigrations::check_recorded`](crate::TenantMigrations::check_recorded)
/// records the list here and refuses one that no longer begins with it.
#[derive(Debug)]
pub struct M0004TenantMigrationNames;

impl MigrationName for M0004TenantMigrationNames {
    fn name(&self) -> &str {
        "m0004_tenant_migration_names"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004TenantMigrationNames {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE tenancy.tenant_migrations (
    version integer PRIMARY KEY CHECK (version > 0),
    name    text NOT NULL
);
"#,
            )
            .await?;
        Ok(())
    }
}

/// Suspension: a tenant kept whole but served no scope, from `suspended_at` until it is
/// resumed. The column's change is announced like any change of the row (the trigger of
/// [`M0002CatalogNotifications`]), so every process stops serving the tenant within a second.
#[derive(Debug)]
pub struct M0005Suspension;

impl MigrationName for M0005Suspension {
    fn name(&self) -> &str {
        "m0005_suspension"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Suspension {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE tenancy.tenants ADD COLUMN suspended_at timestamptz")
            .await?;
        Ok(())
    }
}

/// Runs of a task for every tenant ([`crate::runner`]): each tenant's outcome in a named run,
/// so a run stopped part-way is finished by running it again, without doing a tenant's task
/// twice once it is recorded done.
#[derive(Debug)]
pub struct M0006TaskRuns;

impl MigrationName for M0006TaskRuns {
    fn name(&self) -> &str {
        "m0006_task_runs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0006TaskRuns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE tenancy.task_runs (
    run         text NOT NULL,
    tenant_id   uuid NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('done', 'failed', 'skipped')),
    error       text,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, tenant_id)
);
"#,
            )
            .await?;
        Ok(())
    }
}

/// Plans: the name of the plan each tenant is on (`NULL`: the application's default plan).
/// What a plan allows is the application's to configure ([`crate::quota::Plans`]); the
/// catalog records only which one a tenant is on, so a change is announced like any other.
#[derive(Debug)]
pub struct M0007Plans;

impl MigrationName for M0007Plans {
    fn name(&self) -> &str {
        "m0007_plans"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Plans {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE tenancy.tenants ADD COLUMN plan text")
            .await?;
        Ok(())
    }
}

/// When each tenant was last placed (created, or flipped by a move): a read replica serves a
/// tenant only once it has surely replayed its placement (see
/// [`crate::plumbing::replica::ReplicaRoute::read`]). Existing tenants take their creation time.
#[derive(Debug)]
pub struct M0008PlacedAt;

impl MigrationName for M0008PlacedAt {
    fn name(&self) -> &str {
        "m0008_placed_at"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0008PlacedAt {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE tenancy.tenants ADD COLUMN placed_at timestamptz; \
                 UPDATE tenancy.tenants SET placed_at = created_at; \
                 ALTER TABLE tenancy.tenants ALTER COLUMN placed_at SET DEFAULT now(), \
                 ALTER COLUMN placed_at SET NOT NULL",
            )
            .await?;
        Ok(())
    }
}
