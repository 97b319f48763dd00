//! A move's copy: one tenant's rows from one placement's tables into another's, in one
//! snapshot and one transaction, and its verification against the checksums of the source.

use futures::TryStreamExt;
use sea_orm::sqlx;
use sha2::{Digest, Sha256};

use super::{OnProgress, Progress, Table, TableManifest, TenantTables, column_list, db, tables};
use crate::error::{Error, Result};
use crate::tenant::{Tenant, TenantId};

impl Table {
    /// The same table with `tenant_id` among the columns copied: what a move copies, since
    /// the tenant keeps its id.
    fn with_tenant_id(&self) -> Table {
        let mut t = self.clone();
        t.columns.insert(0, crate::TENANT_ID.to_owned());
        t
    }
}

impl TenantTables {
    /// The manifest of `tenant`'s rows here as they are now, in one snapshot, without writing
    /// the rows anywhere: what a copy is verified against.
    pub async fn checksums(&mut self, tenant: TenantId) -> Result<Vec<TableManifest>> {
        self.checksums_with(tenant, false).await
    }

    /// [`TenantTables::checksums`], with `tenant_id` among the columns when `with_tenant_id`.
    async fn checksums_with(
        &mut self,
        tenant: TenantId,
        with_tenant_id: bool,
    ) -> Result<Vec<TableManifest>> {
        self.begin(tenant, true).await?;
        let result = async {
            let mut out = Vec::new();
            for table in tables(&mut self.conn, &self.schema.clone()).await? {
                let table = if with_tenant_id {
                    table.with_tenant_id()
                } else {
                    table
                };
                let rows = self.count(&table.name, tenant).await?;
                let (bytes, sha256) = self
                    .copy_table_out(&table, tenant, None::<&mut tokio::io::Sink>, &mut |_| {})
                    .await?;
                out.push(TableManifest {
                    name: table.name,
                    columns: table.columns,
                    rows,
                    bytes,
                    sha256,
                });
            }
            Ok(out)
        }
        .await;
        self.finish_read(result).await
    }

    // ANCHOR: copy_to
    /// Copies `tenant`'s rows from here into `target` (empty, same tables) in one snapshot here
    /// and one transaction there, then checks the copy: the target's rows, exported again,
    /// give the same bytes (same row counts and checksums) as the source's. Returns the
    /// source's manifest.
    pub async fn copy_to(
        &mut self,
        target: &mut TenantTables,
        tenant: &Tenant,
        progress: OnProgress<'_>,
    ) -> Result<Vec<TableManifest>> {
        self.begin(tenant.id, true).await?;
        let result = async {
            target.begin(tenant.id, false).await?;
            let copied = self.copy_in_snapshot(target, tenant.id, progress).await;
            target.finish(copied).await
        }
        .await;
        let source = self.finish_read(result).await?;
        let copy = target.checksums_with(tenant.id, true).await?;
        if copy != source {
            return Err(Error::Internal(format!(
                "the copy of tenant {} does not match its source (source {:?}, copy {:?})",
                tenant.slug, source, copy
            )));
        }
        Ok(source)
    }
    // ANCHOR_END: copy_to

    async fn copy_in_snapshot(
        &mut self,
        target: &mut TenantTables,
        tenant: TenantId,
        progress: OnProgress<'_>,
    ) -> Result<Vec<TableManifest>> {
        let schema = self.schema.clone();
        let tables: Vec<Table> = tables(&mut self.conn, &schema)
            .await?
            .iter()
            .map(Table::with_tenant_id)
            .collect();
        let mut manifests = Vec::with_capacity(tables.len());
        for t in &tables {
            manifests.push(TableManifest {
                name: t.name.clone(),
                columns: t.columns.clone(),
                rows: self.count(&t.name, tenant).await?,
                bytes: 0,
                sha256: String::new(),
            });
        }
        target.check_tables(tenant, &manifests).await?;
        let mut state = Progress {
            rows_total: manifests.iter().map(|m| m.rows).sum(),
            ..Progress::default()
        };
        progress(state);
        for (table, m) in tables.iter().zip(manifests.iter_mut()) {
            // Straight into the table, unless row-level security applies to the role there
            // (shared tables, an owner that is not superuser): COPY FROM is refused then, and
            // the rows go through a temporary table and an INSERT the policy checks.
            let through_temp = target.shared && target.row_security_active(&m.name).await?;
            let into = if through_temp {
                target.begin_table_in(m).await?
            } else {
                target.qualified(&m.name)
            };
            let sql = self.copy_out_sql(&table.name, &table.columns, &table.key, tenant);
            let mut hasher = Sha256::new();
            let mut copy = target
                .conn
                .copy_in_raw(&format!(
                    "COPY {into} ({}) FROM STDIN (FORMAT binary)",
                    column_list(&m.columns)
                ))
                .await
                .map_err(db)?;
            {
                let mut stream = self.conn.copy_out_raw(&sql).await.map_err(db)?;
                while let Some(chunk) = stream.try_next().await.map_err(db)? {
                    hasher.update(&chunk);
                    m.bytes += chunk.len() as u64;
                    state.bytes += chunk.len() as u64;
                    copy.send(chunk).await.map_err(db)?;
                    progress(state);
                }
            }
            let rows = copy.finish().await.map_err(db)?;
            m.sha256 = format!("{:x}", hasher.finalize());
            if through_temp {
                target.end_table_in(m, &into, tenant, rows).await?;
            } else if rows != m.rows {
                return Err(Error::Internal(format!(
                    "table {}: {rows} rows copied of {}",
                    m.name, m.rows
                )));
            }
            state.rows_done += rows;
            progress(state);
        }
        Ok(manifests)
    }

    /// Whether row-level security applies to this connection's role on `table`.
    async fn row_security_active(&mut self, table: &str) -> Result<bool> {
        let active: bool = sqlx::query_scalar("SELECT row_security_active($1::regclass)")
            .bind(self.qualified(table))
            .fetch_one(&mut *self.conn)
            .await
            .map_err(db)?;
        Ok(active)
    }
}
