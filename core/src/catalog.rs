//! The catalog of tenants in the control database, shared by every strategy.
//!
//! A strategy decides where a tenant's rows go; the catalog records it, with the tenant's
//! state. The states make creation and deletion crash-safe: a tenant is served only when
//! `ready`, and a `provisioning` or `deleting` row tells a retry what is left to do.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::domain::{Page, PageRequest};
use crate::error::{Error, Result};
use crate::tenant::{Placement, Slug, Tenant, TenantId, TenantState};

#[derive(Debug, FromQueryResult)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    placement: serde_json::Value,
    state: String,
    schema_version: i32,
    created_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;
    fn try_from(row: TenantRow) -> Result<Tenant> {
        let corrupt =
            |what: &str| Error::Conflict(format!("catalog row {} has an invalid {what}", row.id));
        Ok(Tenant {
            id: TenantId::from_uuid(row.id),
            slug: Slug::parse(&row.slug).map_err(|_| corrupt("slug"))?,
            name: row.name.clone(),
            placement: serde_json::from_value(row.placement.clone())
                .map_err(|_| corrupt("placement"))?,
            state: TenantState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
            schema_version: row.schema_version,
            created_at: row.created_at,
        })
    }
}

const COLUMNS: &str = "id, slug, name, placement, state, schema_version, created_at";

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn one(conn: &impl ConnectionTrait, s: Statement) -> Result<Option<Tenant>> {
    match conn.query_one_raw(s).await? {
        Some(row) => Ok(Some(TenantRow::from_query_result(&row, "")?.try_into()?)),
        None => Ok(None),
    }
}

fn placement_json(placement: &Placement) -> Result<serde_json::Value> {
    serde_json::to_value(placement).map_err(|e| Error::Invalid {
        field: "placement",
        reason: e.to_string(),
    })
}

/// Records a new tenant as `provisioning`, unless the slug is taken. Returns the catalog row
/// for the slug and whether this call inserted it.
pub async fn insert_provisioning(
    conn: &impl ConnectionTrait,
    slug: &Slug,
    name: &str,
    placement: &Placement,
) -> Result<(Tenant, bool)> {
    let id = TenantId::new();
    let inserted = one(
        conn,
        stmt(
            &format!(
                "INSERT INTO tenancy.tenants (id, slug, name, placement, state) \
                 VALUES ($1, $2, $3, $4, 'provisioning') \
                 ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
            ),
            [
                id.as_uuid().into(),
                slug.as_str().into(),
                name.into(),
                placement_json(placement)?.into(),
            ],
        ),
    )
    .await?;
    match inserted {
        Some(t) => Ok((t, true)),
        None => Ok((
            by_slug(conn, slug).await?.ok_or(Error::TenantNotFound)?,
            false,
        )),
    }
}

/// The tenant with this id, if any.
pub async fn by_id(conn: &impl ConnectionTrait, id: TenantId) -> Result<Option<Tenant>> {
    one(
        conn,
        stmt(
            &format!("SELECT {COLUMNS} FROM tenancy.tenants WHERE id = $1"),
            [id.as_uuid().into()],
        ),
    )
    .await
}

/// The tenant with this id, locked `FOR UPDATE` until the transaction ends, so two
/// provisioning or deleting runs of one tenant never overlap.
pub async fn lock(conn: &impl ConnectionTrait, id: TenantId) -> Result<Option<Tenant>> {
    one(
        conn,
        stmt(
            &format!("SELECT {COLUMNS} FROM tenancy.tenants WHERE id = $1 FOR UPDATE"),
            [id.as_uuid().into()],
        ),
    )
    .await
}

/// The tenant with this slug, if any.
pub async fn by_slug(conn: &impl ConnectionTrait, slug: &Slug) -> Result<Option<Tenant>> {
    one(
        conn,
        stmt(
            &format!("SELECT {COLUMNS} FROM tenancy.tenants WHERE slug = $1"),
            [slug.as_str().into()],
        ),
    )
    .await
}

/// A page of tenants in id (creation) order, whatever their state.
pub async fn list(conn: &impl ConnectionTrait, page: PageRequest) -> Result<Page<Tenant>> {
    let limit = page.checked_limit()?;
    let rows = conn
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM tenancy.tenants WHERE ($1::uuid IS NULL OR id > $1) \
                 ORDER BY id LIMIT $2"
            ),
            [
                Value::Uuid(page.after),
                Value::BigInt(Some(i64::try_from(limit + 1).unwrap_or(i64::MAX))),
            ],
        ))
        .await?;
    let tenants = rows
        .iter()
        .map(|r| {
            TenantRow::from_query_result(r, "")
                .map_err(Error::from)
                .and_then(Tenant::try_from)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(tenants, limit, |t: &Tenant| {
        t.id.as_uuid()
    }))
}

/// How many tenants are `ready` (a migration report's "up to date" is this minus those behind).
pub async fn count_ready(conn: &impl ConnectionTrait) -> Result<usize> {
    let n = conn
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM tenancy.tenants WHERE state = 'ready'",
            [],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Ready tenants whose version is below `latest`: the work of a migration run. Uses a partial
/// index, so "nothing pending" is one cheap query however many tenants there are.
pub async fn behind(conn: &impl ConnectionTrait, latest: i32) -> Result<Vec<Tenant>> {
    let rows = conn
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM tenancy.tenants \
                 WHERE state = 'ready' AND schema_version < $1 ORDER BY id"
            ),
            [latest.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            TenantRow::from_query_result(r, "")
                .map_err(Error::from)
                .and_then(Tenant::try_from)
        })
        .collect()
}

/// Moves a tenant to `state`.
pub async fn set_state(
    conn: &impl ConnectionTrait,
    id: TenantId,
    state: TenantState,
) -> Result<()> {
    conn.execute_raw(stmt(
        "UPDATE tenancy.tenants SET state = $2 WHERE id = $1",
        [id.as_uuid().into(), state.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// Marks a tenant `ready` at `schema_version`.
pub async fn set_ready(
    conn: &impl ConnectionTrait,
    id: TenantId,
    schema_version: i32,
) -> Result<()> {
    conn.execute_raw(stmt(
        "UPDATE tenancy.tenants SET state = 'ready', schema_version = $2 WHERE id = $1",
        [id.as_uuid().into(), schema_version.into()],
    ))
    .await?;
    Ok(())
}

/// Records that a tenant's tables are at `schema_version`.
pub async fn set_schema_version(
    conn: &impl ConnectionTrait,
    id: TenantId,
    schema_version: i32,
) -> Result<()> {
    conn.execute_raw(stmt(
        "UPDATE tenancy.tenants SET schema_version = $2 WHERE id = $1",
        [id.as_uuid().into(), schema_version.into()],
    ))
    .await?;
    Ok(())
}

/// Sets every ready tenant's version (shared-schema migrates all tenants at once).
pub async fn set_all_schema_versions(
    conn: &impl ConnectionTrait,
    schema_version: i32,
) -> Result<u64> {
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.tenants SET schema_version = $1 WHERE state = 'ready' AND schema_version <> $1",
            [schema_version.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// Removes a tenant from the catalog (its memberships go with it).
pub async fn remove(conn: &impl ConnectionTrait, id: TenantId) -> Result<()> {
    conn.execute_raw(stmt(
        "DELETE FROM tenancy.tenants WHERE id = $1",
        [id.as_uuid().into()],
    ))
    .await?;
    Ok(())
}

/// The version recorded for a template (`0` when none is).
pub async fn template_version(conn: &impl ConnectionTrait, name: &str) -> Result<i32> {
    let row = conn
        .query_one_raw(stmt(
            "SELECT schema_version FROM tenancy.templates WHERE name = $1",
            [name.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<i32>("", "schema_version")?,
        None => 0,
    })
}

/// Records a template's version.
pub async fn set_template_version(
    conn: &impl ConnectionTrait,
    name: &str,
    version: i32,
) -> Result<()> {
    conn.execute_raw(stmt(
        "INSERT INTO tenancy.templates (name, schema_version) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET schema_version = EXCLUDED.schema_version",
        [name.into(), version.into()],
    ))
    .await?;
    Ok(())
}
