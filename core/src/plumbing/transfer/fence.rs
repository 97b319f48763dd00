//! The fence of a move: triggers that refuse a tenant's writes in the tables it is moving out
//! of (SQLSTATE `TNMOV`), and their removal.

use sea_orm::sqlx::{self, AssertSqlSafe};

use super::{TenantTables, db, tables};
use crate::error::Result;
use crate::tenant::{TenantId, quote_ident};

/// The setting that lets a purge through a move's fence (transaction-local, set to the id of
/// the tenant whose copy is being purged).
pub(super) const FENCE_LIFTED: &str = "tenancy.fence_lifted";

impl TenantTables {
    // ANCHOR: fence
    /// Refuses every write of `tenant` here from the commit on, with SQLSTATE `TNMOV`
    /// ([`Error::TenantMoving`](crate::Error::TenantMoving)): a trigger on each of its tables (a
    /// row trigger that looks at `tenant_id` on shared tables, a statement trigger on tables of its
    /// own). Creating a trigger waits for the transactions that are writing to the table, so once
    /// this returns every write that was acknowledged here is visible to the copy, and no other
    /// will be. Waits at most `lock_timeout` for them.
    pub async fn fence(
        &mut self,
        tenant: TenantId,
        lock_timeout: std::time::Duration,
    ) -> Result<()> {
        // Two fences at once in one schema race to replace its function; the loser retries.
        // A lock timeout is not retried: the writers it waited for are waiting behind it.
        let mut attempt = 0;
        loop {
            match self.fence_once(tenant, lock_timeout).await {
                Err(e) if attempt < 2 && !e.chain().contains("lock timeout") => {
                    attempt += 1;
                    tracing::debug!(error = %e.chain(), "fencing again");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                done => return done,
            }
        }
    }

    async fn fence_once(
        &mut self,
        tenant: TenantId,
        lock_timeout: std::time::Duration,
    ) -> Result<()> {
        self.begin(tenant, false).await?;
        let result = async {
            sqlx::query("SELECT set_config('lock_timeout', $1, true)")
                .bind(format!("{}ms", lock_timeout.as_millis().max(1)))
                .execute(&mut *self.conn)
                .await
                .map_err(db)?;
            let schema = quote_ident(&self.schema);
            sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE OR REPLACE FUNCTION {schema}.tenancy_refuse_writes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    fenced boolean := false;
BEGIN
    IF coalesce(current_setting('{FENCE_LIFTED}', true), '') <> TG_ARGV[0] THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            fenced := true;
        ELSE
            -- A row of the tenant, before or after: an UPDATE is refused either way.
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                fenced := OLD.tenant_id::text = TG_ARGV[0];
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.tenant_id::text = TG_ARGV[0] THEN
                fenced := true;
            END IF;
        END IF;
    END IF;
    IF fenced THEN
        RAISE EXCEPTION 'tenant % is being moved: its writes go to its new copy', TG_ARGV[0]
            USING ERRCODE = '{code}';
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN RETURN NULL; END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$"#,
                code = crate::error::FENCED,
            )))
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
            let schema_name = self.schema.clone();
            for t in tables(&mut self.conn, &schema_name).await? {
                let (level, events) = if self.shared {
                    ("ROW", "INSERT OR UPDATE OR DELETE")
                } else {
                    ("STATEMENT", "INSERT OR UPDATE OR DELETE OR TRUNCATE")
                };
                // OR REPLACE rather than DROP and CREATE: dropping a trigger locks out the
                // table's readers too, and shared tables are every tenant's.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE OR REPLACE TRIGGER {name} BEFORE {events} ON {table} \
                     FOR EACH {level} EXECUTE FUNCTION {schema}.tenancy_refuse_writes('{id}')",
                    name = fence_name(tenant),
                    table = self.qualified(&t.name),
                    id = tenant.as_uuid(),
                )))
                .execute(&mut *self.conn)
                .await
                .map_err(db)?;
            }
            Ok(())
        }
        .await;
        self.finish(result).await
    }
    // ANCHOR_END: fence

    /// Takes `tenant`'s fence away (a move rolled back, or a purge done). Idempotent. Dropping
    /// a trigger locks its table's readers out for a moment; the wait for that lock is held
    /// to a few seconds.
    pub async fn unfence(&mut self, tenant: TenantId) -> Result<()> {
        self.begin(tenant, false).await?;
        let result = async {
            sqlx::query("SELECT set_config('lock_timeout', '5s', true)")
                .execute(&mut *self.conn)
                .await
                .map_err(db)?;
            // Only where a fence is: dropping a trigger locks its table, shared tables too.
            let fenced: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND g.tgname = $2",
            )
            .bind(&self.schema)
            .bind(format!("tenancy_fence_{}", tenant.as_uuid().simple()))
            .fetch_all(&mut *self.conn)
            .await
            .map_err(db)?;
            for table in fenced {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    fence_name(tenant),
                    self.qualified(&table)
                )))
                .execute(&mut *self.conn)
                .await
                .map_err(db)?;
            }
            Ok(())
        }
        .await;
        self.finish(result).await
    }
}

fn fence_name(tenant: TenantId) -> String {
    quote_ident(&format!("tenancy_fence_{}", tenant.as_uuid().simple()))
}
