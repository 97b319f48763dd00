//! The catalog's jobs (`tenancy.jobs`): long-running operations on a tenant, recorded,
//! updated as they go and looked up.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, QueryResult, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::sql::stmt;
use crate::tenant::{JobId, JobKind, MoveStep, Tenant};

/// A long-running operation on a tenant (a move), as recorded in `tenancy.jobs`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// The job's id (UUID v7), as in `GET /admin/jobs/{id}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Uuid))]
    pub id: JobId,
    /// What the job does: `move` or `node_move`.
    pub kind: JobKind,
    /// The tenant the job works on.
    pub tenant_id: Uuid,
    /// The tenant's slug when the job began.
    pub slug: String,
    /// Where from and where to, as placements: `{"from": ..., "to": ...}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// How far it got: `started`, then `fenced`, `copied`, `flipped` (a move) or `isolated`,
    /// `moved` (a node move), and at the end `done`, `rolled_back` or `failed`.
    pub step: MoveStep,
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

/// A `tenancy.jobs` row as stored: its kind and step as text, checked into a [`Job`].
#[derive(Debug, FromQueryResult)]
struct JobRow {
    id: Uuid,
    kind: String,
    tenant_id: Uuid,
    slug: String,
    detail: serde_json::Value,
    step: String,
    rows_done: i64,
    rows_total: i64,
    error: Option<String>,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = Error;
    /// A kind or step this version does not know is [`Error::Internal`] naming the job and
    /// the value.
    fn try_from(row: JobRow) -> Result<Job> {
        let id = row.id;
        let corrupt = |what: &str, value: &str| {
            Error::Internal(format!(
                "job {id} in the catalog has an invalid {what}: {value:?}"
            ))
        };
        let kind: JobKind = row.kind.parse().map_err(|_| corrupt("kind", &row.kind))?;
        let step: MoveStep = row.step.parse().map_err(|_| corrupt("step", &row.step))?;
        Ok(Job {
            id: JobId::from_uuid(id),
            kind,
            tenant_id: row.tenant_id,
            slug: row.slug,
            detail: row.detail,
            step,
            rows_done: row.rows_done,
            rows_total: row.rows_total,
            error: row.error,
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

fn from_row(row: &QueryResult) -> Result<Job> {
    JobRow::from_query_result(row, "")?.try_into()
}

const JOB_COLUMNS: &str = "id, kind, tenant_id, slug, detail, step, rows_done, rows_total, \
                           error, started_at, updated_at, finished_at";

/// Records a new job of `kind` for `tenant`, at step `started`.
pub async fn insert_job(
    conn: &impl ConnectionTrait,
    kind: JobKind,
    tenant: &Tenant,
    detail: serde_json::Value,
) -> Result<Job> {
    let row = conn
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO tenancy.jobs (id, kind, tenant_id, slug, detail, step) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {JOB_COLUMNS}"
            ),
            [
                JobId::new().as_uuid().into(),
                kind.as_str().into(),
                tenant.id.as_uuid().into(),
                tenant.slug.as_str().into(),
                detail.into(),
                MoveStep::Started.as_str().into(),
            ],
        ))
        .await?
        .ok_or_else(|| Error::Internal("the job was not recorded".into()))?;
    from_row(&row)
}

// ANCHOR: update_job
/// Records a running job's `step`, and the rows copied of the rows to copy when `rows` says.
pub async fn job_step(
    conn: &impl ConnectionTrait,
    id: JobId,
    step: MoveStep,
    rows: Option<(i64, i64)>,
) -> Result<()> {
    record(conn, id, step, rows, None, false).await
}

/// Ends a job at its last `step` (done, rolled back or failed), with `error` saying why when
/// it failed or was rolled back.
pub async fn end_job(
    conn: &impl ConnectionTrait,
    id: JobId,
    step: MoveStep,
    error: Option<&str>,
) -> Result<()> {
    debug_assert!(step.is_final(), "{step} does not end a job");
    record(conn, id, step, None, error, true).await
}

async fn record(
    conn: &impl ConnectionTrait,
    id: JobId,
    step: MoveStep,
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
            id.as_uuid().into(),
            step.as_str().into(),
            Value::BigInt(done),
            Value::BigInt(total),
            error.map(str::to_owned).into(),
            finished.into(),
        ],
    ))
    .await?;
    Ok(())
}
// ANCHOR_END: update_job

/// The job with this id, if any.
pub async fn job(conn: &impl ConnectionTrait, id: JobId) -> Result<Option<Job>> {
    let row = conn
        .query_one_raw(stmt(
            &format!("SELECT {JOB_COLUMNS} FROM tenancy.jobs WHERE id = $1"),
            [id.as_uuid().into()],
        ))
        .await?;
    row.as_ref().map(from_row).transpose()
}
