//! A move on a tenant's catalog row: its start, its steps, the flip of the placement, its end,
//! the tenants with a move in progress, and the jobs a process left before its move began.

use sea_orm::ConnectionTrait;

use super::tenants::get;
use super::{COLUMNS, many, one};
use crate::error::{Error, Result};
use crate::sql::stmt;
use crate::tenant::{JobId, Move, MoveStep, Tenant, TenantId};

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
    job: JobId,
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
/// on [`CATALOG_CHANNEL`](super::CATALOG_CHANNEL).
pub async fn flip_move(conn: &impl ConnectionTrait, id: TenantId, job: JobId) -> Result<()> {
    let res = conn
        .execute_raw(stmt(
            "UPDATE tenancy.tenants SET placement = moving->'to', placed_at = now(), \
             moving = jsonb_set(moving, '{step}', to_jsonb($3::text)) \
             WHERE id = $1 AND state = 'moving' AND moving->>'job' = $2::text \
             AND moving->>'step' = $4",
            [
                id.as_uuid().into(),
                job.to_string().into(),
                MoveStep::Flipped.as_str().into(),
                MoveStep::Fenced.as_str().into(),
            ],
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
pub async fn end_move(conn: &impl ConnectionTrait, id: TenantId, job: JobId) -> Result<()> {
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
            "UPDATE tenancy.jobs j SET step = $1, error = 'abandoned: the process that \
             started it stopped before the move began', finished_at = now(), updated_at = now() \
             WHERE j.finished_at IS NULL AND j.started_at < now() - interval '1 minute' \
             AND NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.moving->>'job' = j.id::text)",
            [MoveStep::Failed.as_str().into()],
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
