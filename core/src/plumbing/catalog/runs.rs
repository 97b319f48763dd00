//! The outcomes of runs for every tenant (`tenancy.task_runs`), one row per run and tenant:
//! what lets a run stopped part-way be finished without doing a done tenant's task again.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::error::Result;
use crate::sql::stmt;
use crate::tenant::TenantId;

/// The outcomes run `run` recorded so far, by tenant: the outcome (`done`, `failed` or
/// `skipped`) and its error or reason.
pub async fn run_outcomes(
    conn: &impl ConnectionTrait,
    run: &str,
) -> Result<HashMap<TenantId, (String, Option<String>)>> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT tenant_id, outcome, error FROM tenancy.task_runs WHERE run = $1",
            [run.into()],
        ))
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("", "tenant_id")?;
        out.insert(
            TenantId::from_uuid(id),
            (row.try_get("", "outcome")?, row.try_get("", "error")?),
        );
    }
    Ok(out)
}

/// Records tenant `id`'s outcome in run `run` (replacing an earlier attempt's).
pub async fn record_outcome(
    conn: &impl ConnectionTrait,
    run: &str,
    id: TenantId,
    outcome: &str,
    error: Option<&str>,
) -> Result<()> {
    conn.execute_raw(stmt(
        "INSERT INTO tenancy.task_runs (run, tenant_id, outcome, error) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (run, tenant_id) DO UPDATE \
         SET outcome = excluded.outcome, error = excluded.error, finished_at = now()",
        [
            run.into(),
            id.as_uuid().into(),
            outcome.into(),
            error.map(str::to_owned).into(),
        ],
    ))
    .await?;
    Ok(())
}
