//! The demo's own control tables: users, memberships and API tokens, beside the catalog in
//! schema `tenancy`. The library's control migrator knows no web app, so the app that serves
//! accounts creates them, with a ledger of its own (`public.tenancy_demo_migrations`).

use tenancy_core::sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tenancy_core::sea_orm_migration::prelude::*;
use tenancy_core::sql::AdvisoryLock;

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
        vec![Box::new(M0001Accounts)]
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
