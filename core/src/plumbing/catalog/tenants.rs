//! The catalog's tenants: claiming a slug, finding and listing tenants, counting them, their
//! states and schema versions, and the two phases of a creation and of a deletion.

use std::future::Future;

use sea_orm::{ConnectionTrait, FromQueryResult, Value};

use super::{COLUMNS, TenantRow, many, one, placement_json};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::sql::stmt;
use crate::strategy::Strategy;
use crate::tenant::{NewTenant, Placement, Slug, Tenant, TenantId, TenantState};

/// Records `new` as `provisioning`, unless the slug is taken: returns the catalog row of the
/// slug, or [`Error::TenantAlreadyExists`] when it was taken and `new` is
/// [`exclusive`](NewTenant::exclusive). The unique slug decides between concurrent callers.
pub async fn claim(
    conn: &impl ConnectionTrait,
    new: &NewTenant,
    placement: &Placement,
) -> Result<Tenant> {
    crate::tenant::storable("name", &new.name)?;
    let (tenant, inserted) = insert_provisioning(conn, &new.slug, &new.name, placement).await?;
    if !inserted && new.exclusive {
        return Err(Error::TenantAlreadyExists(new.slug.to_string()));
    }
    if !inserted && tenant.placement.strategy() != placement.strategy() {
        // Only where one catalog holds several placements: the slug was taken for another.
        return Err(Error::Conflict(format!(
            "tenant {} exists already, in {}",
            tenant.slug, tenant.placement
        )));
    }
    Ok(tenant)
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

/// The tenant with this id, or [`Error::TenantNotFound`].
pub async fn get(conn: &impl ConnectionTrait, id: TenantId) -> Result<Tenant> {
    by_id(conn, id).await?.ok_or(Error::TenantNotFound)
}

/// The tenant with this slug, or [`Error::TenantNotFound`].
pub async fn get_by_slug(conn: &impl ConnectionTrait, slug: &Slug) -> Result<Tenant> {
    by_slug(conn, slug).await?.ok_or(Error::TenantNotFound)
}

// ANCHOR: resume_creation
/// What [`TenantStore::create_tenant`](crate::TenantStore::create_tenant) does with the
/// catalog row of a slug: a `ready` tenant is returned as it is, a `deleting` one refused, and
/// a `provisioning` one (new, or left by an interrupted attempt) handed to `provision`.
pub async fn resume_creation<F, Fut>(tenant: Tenant, provision: F) -> Result<Tenant>
where
    F: FnOnce(Tenant) -> Fut,
    Fut: Future<Output = Result<Tenant>>,
{
    match tenant.state {
        TenantState::Ready | TenantState::Moving => Ok(tenant),
        TenantState::Deleting => Err(Error::not_ready(&tenant)),
        TenantState::Provisioning => {
            crate::plumbing::fault::point("create:registered");
            provision(tenant).await
        }
    }
}
// ANCHOR_END: resume_creation

// ANCHOR: delete_in_two_phases
/// The two phases of a deletion: marks `tenant` `deleting` (no store serves it from then
/// on), runs `purge` (which removes its rows, schema or database and must be idempotent, so
/// that a retry after a crash finishes the job), then removes it from the catalog.
pub async fn delete_in_two_phases<F, Fut>(
    conn: &impl ConnectionTrait,
    tenant: &Tenant,
    purge: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    if tenant.state == TenantState::Moving {
        // Its rows are in two places until the move ends; the move must finish first.
        return Err(Error::not_ready(tenant));
    }
    set_state(conn, tenant.id, TenantState::Deleting).await?;
    crate::plumbing::fault::point("delete:marked");
    // A process that still has the tenant cached may write a row between the purge and the
    // removal; where the tenant's rows reference the catalog row (shared tables), the removal
    // is then refused, and the purge runs again.
    let mut attempts = 0;
    loop {
        purge().await?;
        crate::plumbing::fault::point("delete:purged");
        match remove(conn, tenant.id).await {
            Err(Error::ForeignKeyViolation { .. }) if attempts < 3 => attempts += 1,
            done => return done,
        }
    }
}
// ANCHOR_END: delete_in_two_phases

/// The distinct placement kinds (`shared`, `schema`, `database`) of the catalog's tenants:
/// how an application finds that a database was laid out by another strategy.
pub async fn placement_kinds(conn: &impl ConnectionTrait) -> Result<Vec<String>> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT DISTINCT placement->>'kind' AS kind FROM tenancy.tenants ORDER BY 1",
            [],
        ))
        .await?;
    let mut kinds = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(kind) = row.try_get::<Option<String>>("", "kind")? {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// How many tenants each server holds (placement kind `database`), for placing a new one.
pub async fn tenants_per_server(conn: &impl ConnectionTrait) -> Result<Vec<(String, i64)>> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT placement->>'server' AS server, count(*) AS n FROM tenancy.tenants \
             WHERE placement->>'kind' = 'database' GROUP BY 1",
            [],
        ))
        .await?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(server) = row.try_get::<Option<String>>("", "server")? {
            counts.push((server, row.try_get::<i64>("", "n")?));
        }
    }
    Ok(counts)
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

/// How many tenants the catalog holds, in any state.
pub async fn count(conn: &impl ConnectionTrait) -> Result<usize> {
    let n = conn
        .query_one_raw(stmt("SELECT count(*) AS n FROM tenancy.tenants", []))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The `placement->>'kind'` a strategy's tenants have in the catalog; `None` for the hybrid
/// store, whose tenants have every kind.
fn kind_of(strategy: Strategy) -> Option<&'static str> {
    strategy.placement_kind().map(|k| k.as_str())
}

/// How many tenants placed by `strategy` are `ready` (a migration report's "up to date" is
/// this minus those behind). A catalog may hold tenants of several placements.
pub async fn count_ready(conn: &impl ConnectionTrait, strategy: Strategy) -> Result<usize> {
    let n = conn
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM tenancy.tenants \
             WHERE state = 'ready' AND ($1::text IS NULL OR placement->>'kind' = $1)",
            [kind_of(strategy).into()],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Ready tenants placed by `strategy` whose version is below `latest`: the work of a
/// migration run. Uses a partial index, so "nothing pending" is one cheap query however many
/// tenants there are.
pub async fn behind(
    conn: &impl ConnectionTrait,
    latest: i32,
    strategy: Strategy,
) -> Result<Vec<Tenant>> {
    many(
        conn,
        stmt(
            &format!(
                "SELECT {COLUMNS} FROM tenancy.tenants \
                 WHERE state = 'ready' AND schema_version < $1 \
                 AND ($2::text IS NULL OR placement->>'kind' = $2) \
                 ORDER BY id"
            ),
            [latest.into(), kind_of(strategy).into()],
        ),
    )
    .await
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

/// Sets the version of every ready tenant in the shared tables (shared-schema migrates them
/// all at once).
pub async fn set_all_schema_versions(
    conn: &impl ConnectionTrait,
    schema_version: i32,
) -> Result<u64> {
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.tenants SET schema_version = $1 \
             WHERE state = 'ready' AND schema_version <> $1 AND placement->>'kind' = 'shared'",
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

/// Suspends (`suspended`) or resumes tenant `id` and returns it as it is now: a `ready`
/// tenant only (one being created, moved or deleted is [`Error::TenantNotReady`]). Suspending
/// a suspended tenant keeps the time it was first suspended. The commit is announced on
/// [`CATALOG_CHANNEL`](super::CATALOG_CHANNEL), so every process stops (or starts again)
/// serving it within a second.
pub async fn set_suspended(
    conn: &impl ConnectionTrait,
    id: TenantId,
    suspended: bool,
) -> Result<Tenant> {
    let changed = one(
        conn,
        stmt(
            &format!(
                "UPDATE tenancy.tenants \
                 SET suspended_at = CASE WHEN $2 THEN coalesce(suspended_at, now()) END \
                 WHERE id = $1 AND state = 'ready' RETURNING {COLUMNS}"
            ),
            [id.as_uuid().into(), suspended.into()],
        ),
    )
    .await?;
    match changed {
        Some(t) => Ok(t),
        None => Err(Error::not_ready(&get(conn, id).await?)),
    }
}

/// Puts tenant `id` on plan `plan` (`None`: the application's default plan) and returns it as
/// it is now. Any tenant the catalog holds: a plan says what a tenant may add, whatever its
/// state. The commit is announced on [`CATALOG_CHANNEL`](super::CATALOG_CHANNEL), so every
/// process applies the new plan within a second.
pub async fn set_plan(
    conn: &impl ConnectionTrait,
    id: TenantId,
    plan: Option<&str>,
) -> Result<Tenant> {
    one(
        conn,
        stmt(
            &format!("UPDATE tenancy.tenants SET plan = $2 WHERE id = $1 RETURNING {COLUMNS}"),
            [id.as_uuid().into(), plan.map(str::to_owned).into()],
        ),
    )
    .await?
    .ok_or(Error::TenantNotFound)
}
