//! A move in progress: where a tenant's rows come from and go to, and the step the move got to.

use serde::{Deserialize, Serialize};

use super::placement::Placement;

/// A move in progress, recorded on the tenant's catalog row while it is
/// [`TenantState::Moving`](crate::TenantState::Moving): where the rows come from and go to, and how
/// far the move got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The job that drives the move (`tenancy.jobs`).
    pub job: uuid::Uuid,
    /// Where the tenant's rows are served from until the flip.
    pub from: Placement,
    /// Where they are going.
    pub to: Placement,
    /// How far the move got.
    pub step: MoveStep,
    /// For a move between the workers of a Citus cluster (`from` and `to` are then the same
    /// placement): the worker it goes to, `host:port`. `None` for a placement move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// How far a move got. Before [`MoveStep::Flipped`] the tenant is served from `from`, and
/// an interrupted move is rolled back; from it on, from `to`, and an interrupted move is
/// finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// Recorded; the target is being built.
    Started,
    /// Writes to the source are refused; its rows are being copied.
    Fenced,
    /// The catalog points at the target; the source is being purged.
    Flipped,
    /// The move failed or was found stopped before the flip: the target is being purged and
    /// the source's fence lifted. Never flipped from here.
    RollingBack,
}

impl MoveStep {
    /// The text stored in the catalog and in job reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            MoveStep::Started => "started",
            MoveStep::Fenced => "fenced",
            MoveStep::Flipped => "flipped",
            MoveStep::RollingBack => "rolling_back",
        }
    }
}
