//! The catalog of tenants in the control database, shared by every strategy: the only module
//! whose SQL touches `tenancy.tenants`. For strategy crates; applications go through
//! [`TenantStore`](crate::TenantStore).
//!
//! A strategy decides where a tenant's rows go; the catalog records it, with the tenant's
//! state. The states make creation and deletion crash-safe: a tenant is served only when
//! `ready`, and a `provisioning` or `deleting` row tells a retry what is left to do.

use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::sql::stmt;
use crate::store::Strategy;
use crate::tenant::{Move, MoveStep, NewTenant, Placement, Slug, Tenant, TenantId, TenantState};

#[derive(Debug, FromQueryResult)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    placement: serde_json::Value,
    state: String,
    schema_version: i32,
    created_at: DateTime<Utc>,
    moving: Option<serde_json::Value>,
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
            moving: row
                .moving
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|_| corrupt("move record"))?,
        })
    }
}

const COLUMNS: &str = "id, slug, name, placement, state, schema_version, created_at, moving";

async fn one(conn: &impl ConnectionTrait, s: Statement) -> Result<Option<Tenant>> {
    match conn.query_one_raw(s).await? {
        Some(row) => Ok(Some(TenantRow::from_query_result(&row, "")?.try_into()?)),
        None => Ok(None),
    }
}

async fn many(conn: &impl ConnectionTrait, s: Statement) -> Result<Vec<Tenant>> {
    conn.query_all_raw(s)
        .await?
        .iter()
        .map(|r| {
            TenantRow::from_query_result(r, "")
                .map_err(Error::from)
                .and_then(Tenant::try_from)
        })
        .collect()
}

fn placement_json(placement: &Placement) -> Result<serde_json::Value> {
    serde_json::to_value(placement).map_err(|e| Error::Invalid {
        field: "placement",
        reason: e.to_string(),
    })
}

/// The channel on which every change to a tenant's catalog row is announced (payload: the
/// tenant's slug), when the change commits. `LISTEN` on it to forget cached tenants at once.
pub const CATALOG_CHANNEL: &str = "tenancy_catalog";

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

// ANCHOR: moves
/// Starts a move: the tenant, which must be `ready`, becomes `moving` with `mv` recorded
/// (it is still served from its placement). Returns the tenant as it is now, or
/// [`Error::TenantNotReady`] when it was not ready (another move or a deletion holds it).
pub async fn begin_move(conn: &impl ConnectionTrait, id: TenantId, mv: &Move) -> Result<Tenant> {
    let record = serde_json::to_value(mv).map_err(|e| Error::invalid("move", e.to_string()))?;
    let moved = one(
        conn,
        stmt(
            &format!(
                "UPDATE tenancy.tenants SET state = 'moving', moving = $2 \
                 WHERE id = $1 AND state = 'ready' RETURNING {COLUMNS}"
            ),
            [id.as_uuid().into(), record.into()],
        ),
    )
    .await?;
    match moved {
        Some(t) => Ok(t),
        None => Err(Error::not_ready(&get(conn, id).await?)),
    }
}

/// Moves the step of move `job` of tenant `id` from one of `from` to `to`, in one statement:
/// `false` when the move is not at one of those steps (or not that move any more). What keeps
/// a rollback and a flip from both happening, whichever processes run them.
pub async fn set_move_step(
    conn: &impl ConnectionTrait,
    id: TenantId,
    job: Uuid,
    from: &[MoveStep],
    to: MoveStep,
) -> Result<bool> {
    let from: Vec<String> = from.iter().map(|s| s.as_str().to_owned()).collect();
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.tenants SET moving = jsonb_set(moving, '{step}', to_jsonb($4::text)) \
             WHERE id = $1 AND state = 'moving' AND moving->>'job' = $2::text \
             AND moving->>'step' = ANY($3)",
            [
                id.as_uuid().into(),
                job.to_string().into(),
                from.into(),
                to.as_str().into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// The flip: the tenant's placement becomes its move's target, in one statement, so every
/// reader of the catalog sees either the old placement or the new one; only from the step
/// `fenced` of move `job` (a move being rolled back is never flipped). The commit announces it
/// on [`CATALOG_CHANNEL`].
pub async fn flip_move(conn: &impl ConnectionTrait, id: TenantId, job: Uuid) -> Result<()> {
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.tenants SET placement = moving->'to', \
             moving = jsonb_set(moving, '{step}', to_jsonb('flipped'::text)) \
             WHERE id = $1 AND state = 'moving' AND moving->>'job' = $2::text \
             AND moving->>'step' = 'fenced'",
            [id.as_uuid().into(), job.to_string().into()],
        ))
        .await?;
    if res.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "the move of tenant {id} is no longer fenced: it was rolled back or ended elsewhere"
        )));
    }
    Ok(())
}

/// Ends move `job`, finished or rolled back: the tenant is `ready` where its placement says.
pub async fn end_move(conn: &impl ConnectionTrait, id: TenantId, job: Uuid) -> Result<()> {
    conn.execute_raw(stmt(
        "UPDATE tenancy.tenants SET state = 'ready', moving = NULL \
         WHERE id = $1 AND state = 'moving' AND moving->>'job' = $2::text",
        [id.as_uuid().into(), job.to_string().into()],
    ))
    .await?;
    Ok(())
}

/// Jobs left unfinished by a process that stopped between recording a job and starting its
/// move (no tenant is moving under them), older than a minute: marked failed.
pub async fn abandon_orphan_jobs(conn: &impl ConnectionTrait) -> Result<u64> {
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.jobs j SET step = 'failed', error = 'abandoned: the process that \
             started it stopped before the move began', finished_at = now(), updated_at = now() \
             WHERE j.finished_at IS NULL AND j.started_at < now() - interval '1 minute' \
             AND NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.moving->>'job' = j.id::text)",
            [],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// Every tenant with a move in progress (what a restarted mover resumes or rolls back).
pub async fn moving(conn: &impl ConnectionTrait) -> Result<Vec<Tenant>> {
    many(
        conn,
        stmt(
            &format!("SELECT {COLUMNS} FROM tenancy.tenants WHERE state = 'moving' ORDER BY id"),
            [],
        ),
    )
    .await
}
// ANCHOR_END: moves

/// A long-running operation on a tenant (a move), as recorded in `tenancy.jobs`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, FromQueryResult)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// The job's id (UUID v7), as in `GET /admin/jobs/{id}`.
    pub id: Uuid,
    /// What the job does: `move`.
    pub kind: String,
    /// The tenant the job works on.
    pub tenant_id: Uuid,
    /// The tenant's slug when the job began.
    pub slug: String,
    /// Where from and where to, as placements: `{"from": ..., "to": ...}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// How far it got: `started`, `fenced`, `copied`, `flipped`, then `done`, `rolled_back`
    /// or `failed`.
    pub step: String,
    /// Rows copied so far, of `rows_total`.
    pub rows_done: i64,
    /// Rows to copy, counted when the copy began (0 before).
    pub rows_total: i64,
    /// Why the job failed or was rolled back, if it was.
    pub error: Option<String>,
    /// When the job was recorded.
    pub started_at: DateTime<Utc>,
    /// When its step or counts last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended (done, rolled back or failed); `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// Whether the job has ended (done, rolled back or failed).
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

const JOB_COLUMNS: &str = "id, kind, tenant_id, slug, detail, step, rows_done, rows_total, \
                           error, started_at, updated_at, finished_at";

/// Records a new job for `tenant`.
pub async fn insert_job(
    conn: &impl ConnectionTrait,
    kind: &str,
    tenant: &Tenant,
    detail: serde_json::Value,
) -> Result<Job> {
    let row = conn
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO tenancy.jobs (id, kind, tenant_id, slug, detail, step) \
                 VALUES ($1, $2, $3, $4, $5, 'started') RETURNING {JOB_COLUMNS}"
            ),
            [
                Uuid::now_v7().into(),
                kind.into(),
                tenant.id.as_uuid().into(),
                tenant.slug.as_str().into(),
                detail.into(),
            ],
        ))
        .await?
        .ok_or_else(|| Error::Conflict("the job was not recorded".into()))?;
    Ok(Job::from_query_result(&row, "")?)
}

/// Records a job's progress; `finished` ends it (with `error`, when it failed).
pub async fn update_job(
    conn: &impl ConnectionTrait,
    id: Uuid,
    step: &str,
    rows: Option<(i64, i64)>,
    error: Option<&str>,
    finished: bool,
) -> Result<()> {
    let (done, total) = rows.map_or((None, None), |(d, t)| (Some(d), Some(t)));
    conn.execute_raw(stmt(
        "UPDATE tenancy.jobs SET step = $2, rows_done = coalesce($3, rows_done), \
         rows_total = coalesce($4, rows_total), error = coalesce($5, error), updated_at = now(), \
         finished_at = CASE WHEN $6 THEN now() END WHERE id = $1",
        [
            id.into(),
            step.into(),
            Value::BigInt(done),
            Value::BigInt(total),
            error.map(str::to_owned).into(),
            finished.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The job with this id, if any.
pub async fn job(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Job>> {
    let row = conn
        .query_one_raw(stmt(
            &format!("SELECT {JOB_COLUMNS} FROM tenancy.jobs WHERE id = $1"),
            [id.into()],
        ))
        .await?;
    row.map(|r| Job::from_query_result(&r, "").map_err(Error::from))
        .transpose()
}
