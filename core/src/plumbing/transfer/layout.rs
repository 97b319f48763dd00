//! Where a tenant's rows are: each of its tables' database, schema, row count and first rows,
//! for a page that shows a learner where a tenant went (the demo's explorer).

use sea_orm::sqlx::{self, AssertSqlSafe};
use serde::{Deserialize, Serialize};

use super::{TenantTables, db, tables};
use crate::error::{Error, Result};
use crate::tenant::{TenantId, quote_ident};

/// Where one of a tenant's tables is, from [`TenantTables::layout`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableLayout {
    /// The database that holds it.
    pub database: String,
    /// The schema it is in.
    pub schema: String,
    /// The table's name.
    pub table: String,
    /// How many of the tenant's rows it holds (a shared table holds other tenants' too).
    pub rows: u64,
    /// The first of the tenant's rows, as JSON objects.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub sample: Vec<serde_json::Value>,
}

impl TenantTables {
    // ANCHOR: layout
    /// Where each of `tenant`'s tables physically is, how many of its rows each holds, and
    /// up to `sample` of them (as JSON, in key order), from one snapshot: for a page that
    /// shows a learner where a tenant's rows went. Only `tenant`'s rows are read.
    pub async fn layout(&mut self, tenant: TenantId, sample: u32) -> Result<Vec<TableLayout>> {
        self.begin(tenant, true).await?;
        let result = async {
            let database: String = sqlx::query_scalar("SELECT current_database()::text")
                .fetch_one(&mut *self.conn)
                .await
                .map_err(db)?;
            let mut out = Vec::new();
            for table in tables(&mut self.conn, &self.schema.clone()).await? {
                let rows = self.count(&table.name, tenant).await?;
                let order = table
                    .key
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let order = if order.is_empty() {
                    String::new()
                } else {
                    format!(" ORDER BY {order}")
                };
                let shown: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text FROM {} t WHERE tenant_id = $1{order} LIMIT $2",
                    self.qualified(&table.name)
                )))
                .bind(tenant.as_uuid())
                .bind(i64::from(sample))
                .fetch_all(&mut *self.conn)
                .await
                .map_err(db)?;
                out.push(TableLayout {
                    database: database.clone(),
                    schema: self.schema.clone(),
                    table: table.name,
                    rows,
                    sample: shown
                        .iter()
                        .map(|r| serde_json::from_str(r))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| Error::Backend(sea_orm::DbErr::Json(e.to_string())))?,
                });
            }
            Ok(out)
        }
        .await;
        self.finish_read(result).await
    }
    // ANCHOR_END: layout
}
