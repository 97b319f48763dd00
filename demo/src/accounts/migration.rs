//! The demo's own control tables: users, memberships and API tokens, beside the catalog in
//! schema `tenancy`. The library's control migrator knows no web app, so the app that serves
//! accounts creates them, with a ledger of its own (`public.tenancy_demo_migrations`).

use tenancy_core::plumbing::sql::AdvisoryLock;
use tenancy_core::sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tenancy_core::sea_orm_migration::prelude::*;

/// Brings the demo's tables up to date: in one transaction, under an advisory lock, so two
/// processes starting at once migrate one after the other. Run after the store connected
/// (which installs the catalog these tables refer to).
pub async fn run(db: &DatabaseConnection) -> tenancy_core::Result<()> {
    let txn = db.begin().await?;
    AdvisoryLock::new("tenancy-demo:migrate").lock(&txn).await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}

/// The demo's migrations; the list is append-only.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Accounts),
            Box::new(M0002TokenExpiryAndNotices),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("tenancy_demo_migrations").into_iden()
    }
}

/// Users, memberships (with the demo's roles, `owner` and `member`) and token hashes.
/// `IF NOT EXISTS`: databases made before the demo owned these tables already have them.
#[derive(Debug)]
pub struct M0001Accounts;

impl MigrationName for M0001Accounts {
    fn name(&self) -> &str {
        "m0001_accounts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Accounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE IF NOT EXISTS tenancy.users (
    id         uuid PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tenancy.memberships (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES tenancy.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user_idx ON tenancy.memberships (user_id);

CREATE TABLE IF NOT EXISTS tenancy.api_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES tenancy.users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#,
            )
            .await?;
        Ok(())
    }
}

/// Tokens may expire (`expires_at`), and every change to a token or a membership is announced
/// on channel `tenancy_accounts` when it commits (`token:<hex of the hash>`, `memberships`),
/// so that every process forgets what it cached at once.
#[derive(Debug)]
pub struct M0002TokenExpiryAndNotices;

impl MigrationName for M0002TokenExpiryAndNotices {
    fn name(&self) -> &str {
        "m0002_token_expiry_and_notices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002TokenExpiryAndNotices {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
ALTER TABLE tenancy.api_tokens ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS api_tokens_user_idx ON tenancy.api_tokens (user_id);

CREATE OR REPLACE FUNCTION tenancy.announce_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenancy_accounts', 'token:' || encode(OLD.token_hash, 'hex'));
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS api_tokens_announce_change ON tenancy.api_tokens;
CREATE TRIGGER api_tokens_announce_change
    AFTER UPDATE OR DELETE ON tenancy.api_tokens
    FOR EACH ROW EXECUTE FUNCTION tenancy.announce_token_change();

CREATE OR REPLACE FUNCTION tenancy.announce_membership_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenancy_accounts', 'memberships');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS memberships_announce_change ON tenancy.memberships;
CREATE TRIGGER memberships_announce_change
    AFTER INSERT OR UPDATE OR DELETE ON tenancy.memberships
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.announce_membership_change();
"#,
            )
            .await?;
        Ok(())
    }
}
