//! Backup and restore: one tenant's rows written to an export file from one snapshot, and an
//! export file (checked whole first) read back into a tenant's empty tables; for a store, the
//! export of a tenant and its import into a new one.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use super::format::{
    END, ExportFile, FORMAT, MAGIC, Manifest, TableManifest, check_file, io, read_u32, truncated,
};
use super::{OnProgress, Progress, TenantTables, column_list, db, tables};
use crate::error::{Error, Result};
use crate::tenant::{Tenant, TenantId};

impl TenantTables {
    // ANCHOR: export
    /// Writes `tenant`'s rows here to `out` as an export file (see the documentation of
    /// [`crate::plumbing::transfer`]), from one snapshot, and returns its manifest.
    pub async fn export<W: AsyncWrite + Unpin + Send + ?Sized>(
        &mut self,
        tenant: &Tenant,
        out: &mut W,
        progress: OnProgress<'_>,
    ) -> Result<Manifest> {
        self.begin(tenant.id, true).await?;
        let result = self.export_in_snapshot(tenant, out, progress).await;
        let manifest = self.finish_read(result).await?;
        let json =
            serde_json::to_vec(&manifest).map_err(|e| Error::invalid("manifest", e.to_string()))?;
        out.write_all(&json).await.map_err(io)?;
        out.write_all(&(json.len() as u64).to_be_bytes())
            .await
            .map_err(io)?;
        out.write_all(END).await.map_err(io)?;
        out.flush().await.map_err(io)?;
        Ok(manifest)
    }
    // ANCHOR_END: export

    async fn export_in_snapshot<W: AsyncWrite + Unpin + Send + ?Sized>(
        &mut self,
        tenant: &Tenant,
        out: &mut W,
        progress: OnProgress<'_>,
    ) -> Result<Manifest> {
        let schema = self.schema.clone();
        let tables = tables(&mut self.conn, &schema).await?;
        let mut counts = Vec::with_capacity(tables.len());
        for t in &tables {
            counts.push(self.count(&t.name, tenant.id).await?);
        }
        let mut state = Progress {
            rows_total: counts.iter().sum(),
            ..Progress::default()
        };
        progress(state);
        out.write_all(MAGIC).await.map_err(io)?;
        let mut manifest = Manifest {
            format: FORMAT,
            tenant_id: tenant.id,
            slug: tenant.slug.to_string(),
            name: tenant.name.clone(),
            placement: tenant.placement.clone(),
            schema_version: tenant.schema_version,
            exported_at: chrono::Utc::now(),
            tables: Vec::with_capacity(tables.len()),
        };
        for (table, rows) in tables.into_iter().zip(counts) {
            let (bytes, sha256) = self
                .copy_table_out(&table, tenant.id, Some(&mut *out), &mut |len| {
                    state.bytes += len;
                    progress(state);
                })
                .await?;
            out.write_all(&0u32.to_be_bytes()).await.map_err(io)?;
            state.rows_done += rows;
            progress(state);
            manifest.tables.push(TableManifest {
                name: table.name,
                columns: table.columns,
                rows,
                bytes,
                sha256,
            });
        }
        Ok(manifest)
    }

    // ANCHOR: import
    /// Reads an export file from `input` into `tenant`'s tables here, which must be empty and
    /// at the manifest's schema version. The whole file is checked first (layout, lengths,
    /// every checksum, the version, the tables and columns): a file that fails any check is
    /// refused with [`Error::BadExport`] and nothing is written. The rows then go in one
    /// transaction, and each table's row count is checked again on the way.
    pub async fn import<R: AsyncRead + AsyncSeek + Unpin + Send + ?Sized>(
        &mut self,
        tenant: &Tenant,
        input: &mut R,
        progress: OnProgress<'_>,
    ) -> Result<Manifest> {
        let manifest = check_file(input).await?;
        if manifest.schema_version != tenant.schema_version {
            return Err(Error::BadExport(format!(
                "the file was made at schema version {} and tenant {} is at {}",
                manifest.schema_version, tenant.slug, tenant.schema_version
            )));
        }
        input
            .seek(std::io::SeekFrom::Start(MAGIC.len() as u64))
            .await
            .map_err(io)?;
        self.begin(tenant.id, false).await?;
        let result = self
            .import_in_transaction(tenant.id, &manifest, input, progress)
            .await;
        self.finish(result).await.map(|()| manifest)
    }
    // ANCHOR_END: import

    async fn import_in_transaction<R: AsyncRead + Unpin + Send + ?Sized>(
        &mut self,
        tenant: TenantId,
        manifest: &Manifest,
        input: &mut R,
        progress: OnProgress<'_>,
    ) -> Result<()> {
        self.check_tables(tenant, &manifest.tables).await?;
        let mut state = Progress {
            rows_total: manifest.rows(),
            ..Progress::default()
        };
        progress(state);
        for t in &manifest.tables {
            let temp = self.begin_table_in(t).await?;
            let mut copy = self
                .conn
                .copy_in_raw(&format!(
                    "COPY {temp} ({}) FROM STDIN (FORMAT binary)",
                    column_list(&t.columns)
                ))
                .await
                .map_err(db)?;
            loop {
                let len = read_u32(input).await?;
                if len == 0 {
                    break;
                }
                let mut buf = vec![0u8; len as usize];
                input.read_exact(&mut buf).await.map_err(truncated)?;
                state.bytes += u64::from(len);
                copy.send(buf).await.map_err(db)?;
                progress(state);
            }
            let rows = copy.finish().await.map_err(db)?;
            self.end_table_in(t, &temp, tenant, rows).await?;
            state.rows_done += rows;
            progress(state);
        }
        Ok(())
    }
}

// ANCHOR: export_tenant
/// Exports `tenant` (ready, or being moved) from the store whose placements these are to
/// `out`: what [`TenantStore::export`](crate::TenantStore::export) does.
pub async fn export_tenant(
    store: &dyn crate::plumbing::Placements,
    tenant: &Tenant,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    progress: OnProgress<'_>,
) -> Result<Manifest> {
    tenant.ensure_ready()?;
    let mut tables = store.tables_at(tenant, &tenant.placement).await?;
    tables.export(tenant, out, progress).await
}
// ANCHOR_END: export_tenant

// ANCHOR: import_tenant
/// Restores an export into a new tenant `new` of `store` (whose placements `placements` are):
/// what [`TenantStore::import`](crate::TenantStore::import) does.
pub async fn import_tenant<S: crate::TenantStore + ?Sized>(
    store: &S,
    placements: &dyn crate::plumbing::Placements,
    new: crate::NewTenant,
    input: &mut dyn ExportFile,
    progress: OnProgress<'_>,
) -> Result<Tenant> {
    let manifest = check_file(input).await?;
    let version = placements.tenant_version();
    if manifest.schema_version != version {
        return Err(Error::BadExport(format!(
            "the file was made at schema version {} and new tenants here are at {version}: \
             bring both to the same version first",
            manifest.schema_version
        )));
    }
    let tenant = store.create_tenant(new.exclusive()).await?;
    let imported = async {
        let mut tables = placements.tables_at(&tenant, &tenant.placement).await?;
        tables.import(&tenant, input, progress).await
    }
    .await;
    match imported {
        Ok(_) => Ok(tenant),
        Err(e) => {
            if let Err(cleanup) = store.delete_tenant(tenant.id).await {
                tracing::error!(tenant = %tenant.slug, error = %cleanup.chain(), "could not remove a tenant whose import failed");
            }
            Err(e)
        }
    }
}
// ANCHOR_END: import_tenant
