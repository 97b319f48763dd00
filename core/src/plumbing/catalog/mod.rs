//! The catalog of tenants in the control database, shared by every strategy: the only module
//! whose SQL touches `tenancy.tenants`. For strategy crates; applications go through
//! [`TenantStore`](crate::TenantStore).
//!
//! A strategy decides where a tenant's rows go; the catalog records it, with the tenant's
//! state. The states make creation and deletion crash-safe: a tenant is served only when
//! `ready`, and a `provisioning` or `deleting` row tells a retry what is left to do.

// This file holds what the catalog's queries share: the mapping of a `tenancy.tenants` row to
// a `Tenant`, the columns they select and the channel changes are announced on. The queries
// are grouped by what they work on, a file each: `tenants` (creating, finding, listing,
// versions and states, deleting), `templates` (the templates' versions), `moves` (the steps of
// a move on a tenant's row), `jobs` (`tenancy.jobs`) and `runs` (`tenancy.task_runs`).
mod jobs;
mod moves;
mod runs;
mod templates;
mod tenants;

pub use jobs::{Job, end_job, insert_job, job, job_step};
pub use moves::{abandon_orphan_jobs, begin_move, end_move, flip_move, moving, set_move_step};
pub use runs::{record_outcome, run_outcomes};
pub use templates::{set_template_version, template_version};
pub use tenants::{
    behind, by_id, by_slug, claim, count, count_ready, delete_in_two_phases, get, get_by_slug,
    insert_provisioning, list, lock, placement_kinds, remove, resume_creation,
    set_all_schema_versions, set_plan, set_ready, set_schema_version, set_state, set_suspended,
    tenants_per_server,
};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use uuid::Uuid;

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
    moving: Option<serde_json::Value>,
    suspended_at: Option<DateTime<Utc>>,
    plan: Option<String>,
    placed_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;
    fn try_from(row: TenantRow) -> Result<Tenant> {
        let corrupt =
            |what: &str| Error::Internal(format!("catalog row {} has an invalid {what}", row.id));
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
            suspended_at: row.suspended_at,
            plan: row.plan.clone(),
            placed_at: row.placed_at,
        })
    }
}

const COLUMNS: &str = "id, slug, name, placement, state, schema_version, created_at, moving, suspended_at, plan, \
     placed_at";

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
