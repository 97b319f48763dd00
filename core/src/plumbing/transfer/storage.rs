//! How much room a tenant's tables take: each table's bytes (heap, indexes and TOAST) and the
//! tenant's rows in it, for usage figures and a plan's storage limit. On tables of the
//! tenant's own the bytes are measured; on shared tables they are estimated from the tenant's
//! share of the rows. On Citus the size is the table's over its shards, wherever they are.

use sea_orm::sqlx::{self, AssertSqlSafe};

use super::{TenantTables, db, tables};
use crate::error::Result;
use crate::tenant::TenantId;
use crate::usage::{CitusTenantStats, Storage, TableStorage};

impl TenantTables {
    /// The room `tenant`'s tables take, from one snapshot. Only `tenant`'s rows are counted.
    pub async fn storage(&mut self, tenant: TenantId) -> Result<Storage> {
        self.begin(tenant, true).await?;
        let result = async {
            let citus: bool = sqlx::query_scalar(
                "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
            )
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db)?;
            let mut out = Vec::new();
            for table in tables(&mut self.conn, &self.schema.clone()).await? {
                let rows = self.count(&table.name, tenant).await?;
                let qualified = self.qualified(&table.name);
                // A distributed table's coordinator copy is empty: its size is its shards'.
                let size = if citus {
                    "CASE WHEN EXISTS (SELECT 1 FROM pg_dist_partition \
                     WHERE logicalrelid = $1::regclass) \
                     THEN citus_total_relation_size($1::regclass) \
                     ELSE pg_total_relation_size($1::regclass) END"
                } else {
                    "pg_total_relation_size($1::regclass)"
                };
                // The table's row estimate: the planner's (from the last ANALYZE or vacuum) or
                // the statistics collector's live rows, whichever is higher; neither is
                // filtered by row-level security, which a count could be.
                let (bytes, estimate): (i64, f64) = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {size}, greatest(\
                       (SELECT reltuples::float8 FROM pg_class WHERE oid = $1::regclass), \
                       (SELECT n_live_tup::float8 FROM pg_stat_all_tables \
                        WHERE relid = $1::regclass), 0)"
                )))
                .bind(&qualified)
                .fetch_one(&mut *self.conn)
                .await
                .map_err(db)?;
                let bytes = u64::try_from(bytes).unwrap_or(0);
                let bytes = if self.shared {
                    let all = if estimate >= rows as f64 && estimate > 0.0 {
                        estimate
                    } else if citus {
                        // A distributed table's coordinator keeps no estimate of its rows: a
                        // count, run on the shards in parallel (row-level security is not
                        // forced on Citus, so it sees them all).
                        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                            "SELECT count(*) FROM {qualified}"
                        )))
                        .fetch_one(&mut *self.conn)
                        .await
                        .map_err(db)?;
                        n as f64
                    } else {
                        // No estimate yet (a table never analysed): the tenant is given the
                        // whole table, the bound its share cannot pass.
                        rows as f64
                    };
                    share(bytes, rows, all.max(1.0))
                } else {
                    bytes
                };
                out.push(TableStorage {
                    table: table.name,
                    rows,
                    bytes,
                });
            }
            Ok(Storage {
                bytes: out.iter().map(|t| t.bytes).sum(),
                estimated: self.shared,
                tables: out,
            })
        }
        .await;
        self.finish_read(result).await
    }
}

impl TenantTables {
    /// Citus' statistics of `tenant` (`citus_stat_tenants`), where these tables are on a Citus
    /// coordinator that tracks tenants; `None` elsewhere, or when Citus has not seen it in
    /// this period or the last. Citus names a tenant by its `tenant_id` in distributed tables
    /// and by its schema under schema-based sharding.
    pub async fn citus_stats(&mut self, tenant: TenantId) -> Result<Option<CitusTenantStats>> {
        let tracked: bool = sqlx::query_scalar(
            "SELECT to_regclass('pg_catalog.citus_stat_tenants') IS NOT NULL \
             AND current_setting('citus.stat_tenants_track', true) = 'all'",
        )
        .fetch_one(&mut *self.conn)
        .await
        .map_err(db)?;
        if !tracked {
            return Ok(None);
        }
        let attribute = if self.shared {
            tenant.as_uuid().to_string()
        } else {
            self.schema.clone()
        };
        type Row = (i64, i64, i64, i64, f64, f64);
        let row: Option<Row> = sqlx::query_as(
            "SELECT sum(read_count_in_this_period)::int8, sum(read_count_in_last_period)::int8, \
               sum(query_count_in_this_period)::int8, sum(query_count_in_last_period)::int8, \
               sum(cpu_usage_in_this_period)::float8, sum(cpu_usage_in_last_period)::float8 \
             FROM citus_stat_tenants WHERE tenant_attribute = $1 HAVING count(*) > 0",
        )
        .bind(&attribute)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(db)?;
        Ok(row.map(|(r, rl, q, ql, c, cl)| CitusTenantStats {
            attribute,
            read_count_in_this_period: r,
            read_count_in_last_period: rl,
            query_count_in_this_period: q,
            query_count_in_last_period: ql,
            cpu_usage_in_this_period: c,
            cpu_usage_in_last_period: cl,
        }))
    }
}

/// `rows` of `all` rows' share of `bytes`.
fn share(bytes: u64, rows: u64, all: f64) -> u64 {
    ((bytes as f64) * (rows as f64 / all).min(1.0)).round() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_share_of_the_bytes_is_proportional_to_the_rows_and_never_more_than_all() {
        assert_eq!(super::share(1000, 10, 100.0), 100);
        assert_eq!(super::share(1000, 0, 100.0), 0);
        assert_eq!(super::share(1000, 200, 100.0), 1000);
    }
}
