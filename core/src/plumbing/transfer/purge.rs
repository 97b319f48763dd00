//! The purge of a tenant's rows from shared tables: deleted in batches, children first,
//! through the tenant's fence.

use sea_orm::sqlx::{self, AssertSqlSafe};

use super::fence::FENCE_LIFTED;
use super::{TenantTables, db, tables};
use crate::error::{Error, Result};
use crate::tenant::TenantId;

impl TenantTables {
    /// Deletes `tenant`'s rows here, children first, in batches of `batch` rows a transaction,
    /// through its fence (shared tables; a placement of its own is dropped whole instead).
    pub async fn delete_rows(&mut self, tenant: TenantId, batch: u32) -> Result<()> {
        let schema_name = self.schema.clone();
        let tables = tables(&mut self.conn, &schema_name).await?;
        for t in tables.iter().rev() {
            loop {
                self.begin(tenant, false).await?;
                let deleted = async {
                    sqlx::query("SELECT set_config($1, $2, true)")
                        .bind(FENCE_LIFTED)
                        .bind(tenant.to_string())
                        .execute(&mut *self.conn)
                        .await
                        .map_err(db)?;
                    let table = self.qualified(&t.name);
                    let res = sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE tenant_id = $1 AND ctid = ANY(ARRAY(\
                         SELECT ctid FROM {table} WHERE tenant_id = $1 LIMIT $2))"
                    )))
                    .bind(tenant.as_uuid())
                    .bind(i64::from(batch.max(1)))
                    .execute(&mut *self.conn)
                    .await
                    .map_err(db)?;
                    Ok::<_, Error>(res.rows_affected())
                }
                .await;
                if self.finish(deleted).await? == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}
