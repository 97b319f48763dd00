//! Pinning a tenant's tables to it: a check constraint on every table of a schema or database
//! of the tenant's own, so that the database itself refuses another tenant's row.

use sea_orm::ConnectionTrait;

use crate::error::Result;
use crate::tenant::quote_ident;

// ANCHOR: pin
/// The statement that pins `table` (in `schema`, or unqualified and found on the
/// `search_path`) to `tenant`: a
/// `tenancy_pinned_tenant` check constraint, so that the database itself refuses a row of
/// another tenant, or a change of a row's tenant. For strategies that give a tenant a schema or
/// a database of its own; a schema copied from a template gets one per table that has a
/// `tenant_id` column.
pub fn pin_statement(schema: Option<&str>, table: &str, tenant: crate::TenantId) -> String {
    let target = match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(table),
    };
    format!(
        "ALTER TABLE {target} ADD CONSTRAINT tenancy_pinned_tenant CHECK (tenant_id = '{}')",
        tenant.as_uuid()
    )
}

/// The query that lists the tables of schema `$1` that have a `tenant_id` column and no pin
/// yet, one `t` per row, as [`pin_tenant_tables`] runs it (prepared, with the schema as `$1`).
pub fn unpinned_tables_sql(schema: &str) -> String {
    // Finding a schema's tables: pg_class has no index on its namespace, so a scan of it costs
    // in proportion to every table of every schema, and pinning N tenants' schemas one by one
    // would cost N². pg_depend is indexed by the object depended on, and a table always
    // depends on its schema when the schema was made by CREATE SCHEMA. `public` may be pinned
    // (PostgreSQL 14 and older record no dependencies on it); it only serves a tenant database
    // of its own, whose catalog is small, so it keeps the plain scan.
    let tables = if schema == "public" {
        "SELECT c.oid, c.relname FROM pg_class c \
         WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'p')"
    } else {
        "SELECT c.oid, c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid \
         WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = to_regnamespace($1) \
           AND d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind IN ('r', 'p')"
    };
    format!(
        "SELECT c.relname AS t FROM ({tables}) c \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
           AND NOT a.attisdropped \
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k \
           WHERE k.conrelid = c.oid AND k.conname = 'tenancy_pinned_tenant') \
         ORDER BY c.relname"
    )
}

/// Pins every table of `schema` that has a `tenant_id` column and no pin yet (see
/// [`pin_statement`]) and returns how many it pinned. Idempotent; run it after every migration
/// so that tables added later are pinned too. The search ([`unpinned_tables_sql`]) is one
/// prepared statement, so a run that finds nothing new costs one round trip and no planning.
pub async fn pin_tenant_tables(
    conn: &impl ConnectionTrait,
    schema: &str,
    tenant: crate::TenantId,
) -> Result<usize> {
    let unpinned = conn
        .query_all_raw(crate::sql::stmt(
            &unpinned_tables_sql(schema),
            [schema.into()],
        ))
        .await?;
    for row in &unpinned {
        let table: String = row.try_get("", "t")?;
        conn.execute_unprepared(&pin_statement(Some(schema), &table, tenant))
            .await?;
    }
    Ok(unpinned.len())
}
// ANCHOR_END: pin
