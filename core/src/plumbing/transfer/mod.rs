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

// This file holds what every job here shares: the lent connection (`TenantTables`), its
// transactions, the tenant tables found in the database's catalog, counting and streaming a
// table's rows out, and writing rows in through a temporary table (an import and a move's copy
// both do). Each job is a file: `format` (the export file and its checks), `backup` (export and
// import), `layout` (where a tenant's rows are, for the explorer), `copy` (a move's copy and
// its verification), `fence` (the triggers that refuse a moving tenant's writes) and `purge`
// (batch deletes) and `storage` (the room a tenant's tables take).
mod backup;
mod copy;
mod fence;
mod format;
mod layout;
mod purge;
mod storage;

pub use backup::{export_tenant, import_tenant};
pub use format::{ExportFile, FORMAT, Manifest, TableManifest, check_file};
pub use layout::TableLayout;

use std::ops::{Deref, DerefMut};

use futures::TryStreamExt;
use sea_orm::sqlx::{self, AssertSqlSafe, PgConnection, Postgres, pool::PoolConnection};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use crate::error::{Error, Result};
use crate::tenant::{TenantId, quote_ident};
use format::write_chunk;

/// Whether a tenant's tables hold other tenants' rows too, as [`TenantTables`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSharing {
    /// The shared tables (shared-schema's `public`), with every tenant's rows: statements
    /// filter by `tenant_id`, and a fence refuses only this tenant's rows.
    Shared,
    /// Tables of the tenant's own (its schema, or `public` in its database): every row is its.
    Dedicated,
}

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
    pub fn pooled(conn: PoolConnection<Postgres>, schema: &str, sharing: TableSharing) -> Self {
        TenantTables {
            conn: Conn::Pooled(conn),
            schema: schema.to_owned(),
            shared: sharing == TableSharing::Shared,
            dirty: false,
        }
    }

    /// For strategy crates: tables in `schema`, reached through a connection of their own.
    pub fn own(conn: PgConnection, schema: &str, sharing: TableSharing) -> Self {
        TenantTables {
            conn: Conn::Own(conn),
            schema: schema.to_owned(),
            shared: sharing == TableSharing::Shared,
            dirty: false,
        }
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
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
            return Err(Error::Unsupported(format!(
                "the tenant tables of schema {schema} refer to each other in a cycle"
            )));
        };
        ordered.push(pending.remove(i));
    }
    Ok(ordered)
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
}
