//! One tenant's rows, out and in: per-tenant export and import (backup and restore), and the
//! copy, verification and fence of a move between placements.
//!
//! Everything here works on a tenant's tables wherever a strategy keeps them: a schema (the
//! shared tables' `public`, a tenant's own schema, or `public` in a tenant's own database) on a
//! direct connection the strategy lends ([`TenantTables`]). The tables are found in the
//! database's catalog (every table of the schema with a `tenant_id` column, parents before
//! children), so tables an application adds with its own migrations travel too.
//!
//! Rows travel as binary `COPY` of every column but `tenant_id`, in primary-key order, from a
//! snapshot (`REPEATABLE READ`): the same rows give the same bytes in every placement, which
//! is what the checksums compare. An export file is
//!
//! ```text
//! TENANCY-EXPORT 1\n
//! per table: chunks of (u32 big-endian length, bytes), then a u32 0
//! the manifest as JSON, its length as u64 big-endian, then TENANCY-END\n
//! ```
//!
//! The manifest (schema version, and per table its columns, row count, byte count and
//! SHA-256) comes last because the checksums are known only once the rows are out; an import
//! reads the whole file once to check it before it writes anything.

use std::ops::{Deref, DerefMut};

use futures::TryStreamExt;
use sea_orm::sqlx::{self, AssertSqlSafe, PgConnection, Postgres, pool::PoolConnection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::tenant::{Placement, Tenant, TenantId, quote_ident};

const MAGIC: &[u8] = b"TENANCY-EXPORT 1\n";
const END: &[u8] = b"TENANCY-END\n";
/// The version of the file layout (not of the tenant tables).
pub const FORMAT: u32 = 1;
/// The setting that lets a purge through a move's fence (transaction-local, set to the id of
/// the tenant whose copy is being purged).
const FENCE_LIFTED: &str = "tenancy.fence_lifted";

/// A direct connection to the database that holds a tenant's tables, lent by a strategy for an
/// export, an import or a move, with the schema the tables are in.
#[derive(Debug)]
pub struct TenantTables {
    conn: Conn,
    schema: String,
    /// Shared tables hold other tenants' rows too: statements filter by `tenant_id`, and a
    /// fence refuses only this tenant's rows.
    shared: bool,
    /// Set from `BEGIN` until a clean `COMMIT` or `ROLLBACK`: a connection dropped while set
    /// (an error on the way, a COPY cut short, a cancelled future) may be inside a
    /// transaction or a COPY, and is closed rather than given back to its pool.
    dirty: bool,
}

impl Drop for TenantTables {
    fn drop(&mut self) {
        if self.dirty
            && let Conn::Pooled(c) = &mut self.conn
        {
            c.close_on_drop();
        }
    }
}

#[derive(Debug)]
enum Conn {
    Pooled(PoolConnection<Postgres>),
    Own(PgConnection),
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Own(c) => c,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pooled(c) => &mut *c,
            Conn::Own(c) => c,
        }
    }
}

impl TenantTables {
    /// For strategy crates: tables in `schema`, reached through a connection from a pool.
    pub fn pooled(conn: PoolConnection<Postgres>, schema: &str, shared: bool) -> Self {
        TenantTables {
            conn: Conn::Pooled(conn),
            schema: schema.to_owned(),
            shared,
            dirty: false,
        }
    }

    /// For strategy crates: tables in `schema`, reached through a connection of their own.
    pub fn own(conn: PgConnection, schema: &str, shared: bool) -> Self {
        TenantTables {
            conn: Conn::Own(conn),
            schema: schema.to_owned(),
            shared,
            dirty: false,
        }
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

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

/// One table of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    /// The table's name.
    pub name: String,
    /// The columns exported, in order (every column but `tenant_id`).
    pub columns: Vec<String>,
    /// How many rows were exported.
    pub rows: u64,
    /// How many `COPY` bytes they took.
    pub bytes: u64,
    /// SHA-256 of the table's `COPY` bytes, lowercase hex.
    pub sha256: String,
}

/// What an export holds: checked by an import before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file format's version (1).
    pub format: u32,
    /// The tenant exported (an import may give the rows another slug and id).
    pub tenant_id: TenantId,
    /// The exported tenant's slug.
    pub slug: String,
    /// The exported tenant's name.
    pub name: String,
    /// Where the rows came from.
    pub placement: Placement,
    /// How many tenant migrations the tables had: an import needs the same.
    pub schema_version: i32,
    /// When the export was taken.
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// Parents before children.
    pub tables: Vec<TableManifest>,
}

impl Manifest {
    /// Rows over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// How far an export, import or copy got, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows of the tables finished so far.
    pub rows_done: u64,
    /// Rows in all (known once the snapshot is counted).
    pub rows_total: u64,
    /// Bytes so far.
    pub bytes: u64,
}

/// Told of progress.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// A tenant table as the database's catalog describes it.
#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<String>,
    key: Vec<String>,
    parents: Vec<String>,
}

fn db(err: sqlx::Error) -> Error {
    Error::from(err)
}

/// A table as the catalog query below returns it: name, columns, key, parents.
type TableRow = (String, Vec<String>, Vec<String>, Vec<String>);

/// The tenant tables of `schema`: every table with a `tenant_id` column, parents first.
async fn tables(conn: &mut PgConnection, schema: &str) -> Result<Vec<Table>> {
    let rows: Vec<TableRow> = sqlx::query_as(
        "SELECT c.relname::text, \
           array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
                 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
                 AND a.attname <> 'tenant_id' ORDER BY a.attnum), \
           array(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = c.oid AND i.indisprimary AND a.attname <> 'tenant_id' \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)), \
           array(SELECT DISTINCT r.relname::text FROM pg_constraint k \
                 JOIN pg_class r ON r.oid = k.confrelid \
                 WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid <> c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AND EXISTS (\
           SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
           AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
         ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut pending: Vec<Table> = rows
        .into_iter()
        .map(|(name, columns, key, parents)| Table {
            name,
            columns,
            key,
            parents,
        })
        .collect();
    // Parents first: a table goes once every table it refers to has gone.
    let mut ordered: Vec<Table> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let Some(i) = pending.iter().position(|t| {
            t.parents.iter().all(|p| {
                ordered.iter().any(|o| &o.name == p) || !pending.iter().any(|q| &q.name == p)
            })
        }) else {
            return Err(Error::Conflict(format!(
                "the tenant tables of schema {schema} refer to each other in a cycle"
            )));
        };
        ordered.push(pending.remove(i));
    }
    Ok(ordered)
}

impl Table {
    /// The same table with `tenant_id` among the columns copied: what a move copies, since
    /// the tenant keeps its id.
    fn with_tenant_id(&self) -> Table {
        let mut t = self.clone();
        t.columns.insert(0, crate::TENANT_ID.to_owned());
        t
    }
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TenantTables {
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// Opens the transaction every operation here runs in. On shared tables the tenant is
    /// bound the way row-level security expects it, for a connecting role it applies to.
    async fn begin(&mut self, tenant: TenantId, read_only: bool) -> Result<()> {
        let begin = if read_only {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN"
        };
        self.dirty = true;
        sqlx::raw_sql(begin)
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
        sqlx::query("SELECT set_config('tenancy.tenant_id', $1, true), set_config('statement_timeout', '0', true)")
            .bind(tenant.to_string())
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn end(&mut self, commit: bool) -> Result<()> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(sql)
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
        self.dirty = false;
        Ok(())
    }

    /// Ends the transaction (committing only when `result` is a success) and returns
    /// `result`: its error first, when both failed.
    async fn finish<T>(&mut self, result: Result<T>) -> Result<T> {
        let ended = self.end(result.is_ok()).await;
        let value = result?;
        ended?;
        Ok(value)
    }

    /// [`TenantTables::finish`] for a read: always rolled back.
    async fn finish_read<T>(&mut self, result: Result<T>) -> Result<T> {
        let ended = self.end(false).await;
        let value = result?;
        ended?;
        Ok(value)
    }

    /// `COPY (SELECT columns FROM table WHERE tenant_id = tenant ORDER BY key) TO STDOUT`:
    /// the statement whose bytes are exported and checksummed.
    fn copy_out_sql(
        &self,
        table: &str,
        columns: &[String],
        key: &[String],
        tenant: TenantId,
    ) -> String {
        let order = if key.is_empty() {
            column_list(columns)
        } else {
            column_list(key)
        };
        // A COPY takes no parameters; the id is a UUID we format ourselves.
        format!(
            "COPY (SELECT {} FROM {} WHERE tenant_id = '{}'::uuid ORDER BY {order}) \
             TO STDOUT (FORMAT binary)",
            column_list(columns),
            self.qualified(table),
            tenant.as_uuid()
        )
    }

    async fn count(&mut self, table: &str, tenant: TenantId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {} WHERE tenant_id = $1",
            self.qualified(table)
        )))
        .bind(tenant.as_uuid())
        .fetch_one(&mut *self.conn)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Streams one table's rows of `tenant` to `out` (when given, as length-prefixed
    /// chunks), telling `on_chunk` each chunk's size; returns the bytes and their SHA-256.
    async fn copy_table_out<W: AsyncWrite + Unpin + Send + ?Sized>(
        &mut self,
        table: &Table,
        tenant: TenantId,
        mut out: Option<&mut W>,
        on_chunk: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(u64, String)> {
        let sql = self.copy_out_sql(&table.name, &table.columns, &table.key, tenant);
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut stream = self.conn.copy_out_raw(&sql).await.map_err(db)?;
        while let Some(chunk) = stream.try_next().await.map_err(db)? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if let Some(w) = out.as_deref_mut() {
                write_chunk(w, &chunk).await?;
            }
            on_chunk(chunk.len() as u64);
        }
        Ok((bytes, format!("{:x}", hasher.finalize())))
    }

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

    // ANCHOR: export
    /// Writes `tenant`'s rows here to `out` as an export file (see the module's
    /// documentation), from one snapshot, and returns its manifest.
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

    /// Refuses tables here that do not fit `wanted` (missing, other columns) or that already
    /// hold rows of `tenant`.
    async fn check_tables(&mut self, tenant: TenantId, wanted: &[TableManifest]) -> Result<()> {
        let schema = self.schema.clone();
        let here = tables(&mut self.conn, &schema).await?;
        for t in wanted {
            let Some(found) = here.iter().find(|h| h.name == t.name) else {
                return Err(Error::BadExport(format!(
                    "table {} of the file does not exist here",
                    t.name
                )));
            };
            if let Some(c) = t
                .columns
                .iter()
                .find(|c| *c != crate::TENANT_ID && !found.columns.contains(c))
            {
                return Err(Error::BadExport(format!(
                    "column {c} of table {} does not exist here",
                    t.name
                )));
            }
            if self.count(&t.name, tenant).await? > 0 {
                return Err(Error::Conflict(format!(
                    "table {} already holds rows of this tenant: import into a new tenant",
                    t.name
                )));
            }
        }
        if let Some(extra) = here
            .iter()
            .find(|h| !wanted.iter().any(|t| t.name == h.name))
        {
            return Err(Error::BadExport(format!(
                "table {} exists here but not in the file",
                extra.name
            )));
        }
        Ok(())
    }

    /// A temporary table shaped like `t`'s columns, which the rows are copied into first: the
    /// file holds no `tenant_id`, and `COPY FROM` is refused on a table under row-level
    /// security.
    async fn begin_table_in(&mut self, t: &TableManifest) -> Result<String> {
        let temp = quote_ident(&format!("tenancy_in_{}", t.name));
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
            column_list(&t.columns),
            self.qualified(&t.name)
        )))
        .execute(&mut *self.conn)
        .await
        .map_err(db)?;
        Ok(temp)
    }

    async fn end_table_in(
        &mut self,
        t: &TableManifest,
        temp: &str,
        tenant: TenantId,
        rows: u64,
    ) -> Result<()> {
        if rows != t.rows {
            return Err(Error::BadExport(format!(
                "table {} holds {rows} rows in the file, and its manifest says {}",
                t.name, t.rows
            )));
        }
        let cols = column_list(&t.columns);
        // A move's rows carry their tenant_id already (the same tenant); a file's do not.
        let sql = if t.columns.iter().any(|c| c == crate::TENANT_ID) {
            format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {temp} WHERE tenant_id = $1",
                self.qualified(&t.name)
            )
        } else {
            format!(
                "INSERT INTO {} (tenant_id, {cols}) SELECT $1, {cols} FROM {temp}",
                self.qualified(&t.name)
            )
        };
        sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_uuid())
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {temp}")))
            .execute(&mut *self.conn)
            .await
            .map_err(db)?;
        Ok(())
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
            return Err(Error::Conflict(format!(
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
                return Err(Error::Conflict(format!(
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

    // ANCHOR: fence
    /// Refuses every write of `tenant` here from the commit on, with SQLSTATE `TNMOV`
    /// ([`Error::TenantMoving`]): a trigger on each of its tables (a row trigger that looks
    /// at `tenant_id` on shared tables, a statement trigger on tables of its own). Creating a
    /// trigger waits for the transactions that are writing to the table, so once this returns
    /// every write that was acknowledged here is visible to the copy, and no other will be.
    /// Waits at most `lock_timeout` for them.
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

fn fence_name(tenant: TenantId) -> String {
    quote_ident(&format!("tenancy_fence_{}", tenant.as_uuid().simple()))
}

fn io(err: std::io::Error) -> Error {
    Error::Unavailable(format!("export file: {err}"))
}

fn truncated(err: std::io::Error) -> Error {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::BadExport("the file is truncated".into())
    } else {
        io(err)
    }
}

async fn write_chunk<W: AsyncWrite + Unpin + ?Sized>(out: &mut W, chunk: &[u8]) -> Result<()> {
    let len =
        u32::try_from(chunk.len()).map_err(|_| Error::invalid("export", "a chunk over 4 GiB"))?;
    out.write_all(&len.to_be_bytes()).await.map_err(io)?;
    out.write_all(chunk).await.map_err(io)?;
    Ok(())
}

async fn read_u32<R: AsyncRead + Unpin + ?Sized>(input: &mut R) -> Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b).await.map_err(truncated)?;
    Ok(u32::from_be_bytes(b))
}

// ANCHOR: check_file
/// Reads a whole export file and checks it: the layout, the manifest at its end, and each
/// table's byte count and SHA-256 against the manifest. Returns the manifest; writes nothing.
pub async fn check_file<R: AsyncRead + AsyncSeek + Unpin + Send + ?Sized>(
    input: &mut R,
) -> Result<Manifest> {
    let bad = |m: &str| Error::BadExport(m.to_owned());
    let len = input.seek(std::io::SeekFrom::End(0)).await.map_err(io)?;
    let tail = (END.len() + 8) as u64;
    if len < (MAGIC.len() as u64) + tail {
        return Err(bad("the file is truncated (too short to be an export)"));
    }
    input.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).await.map_err(truncated)?;
    if magic != MAGIC {
        return Err(bad("not a tenancy export (its first line is wrong)"));
    }
    input
        .seek(std::io::SeekFrom::End(-(tail as i64)))
        .await
        .map_err(io)?;
    let mut trailer = vec![0u8; tail as usize];
    input.read_exact(&mut trailer).await.map_err(truncated)?;
    if &trailer[8..] != END {
        return Err(bad("the file is truncated (its last line is missing)"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&trailer[..8]);
    let manifest_len = u64::from_be_bytes(n);
    let Some(manifest_at) = len
        .checked_sub(tail + manifest_len)
        .filter(|&at| at >= MAGIC.len() as u64)
    else {
        return Err(bad("the file is truncated (its manifest is cut)"));
    };
    input
        .seek(std::io::SeekFrom::Start(manifest_at))
        .await
        .map_err(io)?;
    let mut json = vec![0u8; usize::try_from(manifest_len).map_err(|_| bad("manifest too large"))?];
    input.read_exact(&mut json).await.map_err(truncated)?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| Error::BadExport(format!("its manifest cannot be read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::BadExport(format!(
            "file format {} (this build reads {FORMAT})",
            manifest.format
        )));
    }
    input
        .seek(std::io::SeekFrom::Start(MAGIC.len() as u64))
        .await
        .map_err(io)?;
    let mut at = MAGIC.len() as u64;
    for t in &manifest.tables {
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        loop {
            if at + 4 > manifest_at {
                return Err(Error::BadExport(format!("table {} is cut short", t.name)));
            }
            let chunk = u64::from(read_u32(input).await?);
            at += 4;
            if chunk == 0 {
                break;
            }
            if at + chunk > manifest_at {
                return Err(Error::BadExport(format!("table {} is cut short", t.name)));
            }
            let mut buf = vec![0u8; chunk as usize];
            input.read_exact(&mut buf).await.map_err(truncated)?;
            at += chunk;
            bytes += chunk;
            hasher.update(&buf);
        }
        let sha = format!("{:x}", hasher.finalize());
        if bytes != t.bytes || sha != t.sha256 {
            return Err(Error::BadExport(format!(
                "table {}: its rows do not match their checksum (the file is corrupt)",
                t.name
            )));
        }
    }
    if at != manifest_at {
        return Err(bad("the file holds more than its manifest lists"));
    }
    Ok(manifest)
}
// ANCHOR_END: check_file

/// What an import reads: an export file, or anything that can be read and rewound like one.
pub trait ExportFile: AsyncRead + AsyncSeek + Unpin + Send {}
impl<T: AsyncRead + AsyncSeek + Unpin + Send> ExportFile for T {}

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
