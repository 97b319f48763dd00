//! The catalog's jobs (`tenancy.jobs`): long-running operations on a tenant, recorded,
//! updated as they go and looked up.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::sql::stmt;
use crate::tenant::Tenant;

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
