//! A move in progress: where a tenant's rows come from and go to, and the step the move got to;
//! the kinds of job that drive moves, and the steps both records name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::names::JobId;
use super::placement::Placement;
use crate::error::Error;

/// A move in progress, recorded on the tenant's catalog row while it is
/// [`TenantState::Moving`](crate::TenantState::Moving): where the rows come from and go to, and how
/// far the move got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The job that drives the move (`tenancy.jobs`).
    pub job: JobId,
    /// Where the tenant's rows are served from until the flip.
    pub from: Placement,
    /// Where they are going.
    pub to: Placement,
    /// How far the move got: on the tenant's row only [`MoveStep::Started`],
    /// [`MoveStep::Fenced`], [`MoveStep::Flipped`] or [`MoveStep::RollingBack`].
    pub step: MoveStep,
    /// For a move between the workers of a Citus cluster (`from` and `to` are then the same
    /// placement): the worker it goes to, `host:port`. `None` for a placement move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

// ANCHOR: move_step
/// How far a move got: the one list of steps for the move on the tenant's row
/// ([`Move::step`]) and for the job that reports on it ([`Job::step`](crate::Job::step), the
/// `step` column of `tenancy.jobs`). Stored and shown as the snake_case names (`started`,
/// `rolling_back`, ...).
///
/// The tenant's row holds `started`, `fenced`, `flipped` and `rolling_back`. Before
/// [`MoveStep::Flipped`] the tenant is served from `from`, and an interrupted move is rolled
/// back; from it on, from `to`, and an interrupted move is finished.
///
/// A job goes through `started`, then for a placement move `fenced`, `copied`, `flipped`, and
/// for a node move `isolated`, `moved`; it ends [`MoveStep::is_final`]: `done`, `rolled_back`
/// or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MoveStep {
    /// Recorded; the target is being built (or, for a node move, the tenant's rows are about
    /// to be made movable).
    Started,
    /// Writes to the source are refused; its rows are being copied.
    Fenced,
    /// The job's only: the rows are copied and checked; the flip is next.
    Copied,
    /// The catalog points at the target; the source is being purged.
    Flipped,
    /// The move failed or was found stopped before the flip: the target is being purged and
    /// the source's fence lifted. Never flipped from here. The tenant row's only.
    RollingBack,
    /// A node move's job only: the tenant's rows are movable on their own (shared tables
    /// isolated into shards of their own).
    Isolated,
    /// A node move's job only: the rows are on the target worker.
    Moved,
    /// The job's only, final: the move is finished.
    Done,
    /// The job's only, final: the move was rolled back; the tenant is where it was.
    RolledBack,
    /// The job's only, final: the move failed (the job's `error` says why).
    Failed,
}
// ANCHOR_END: move_step

impl MoveStep {
    /// Every step, in the order a move meets them.
    pub const ALL: [MoveStep; 10] = [
        MoveStep::Started,
        MoveStep::Fenced,
        MoveStep::Copied,
        MoveStep::Flipped,
        MoveStep::RollingBack,
        MoveStep::Isolated,
        MoveStep::Moved,
        MoveStep::Done,
        MoveStep::RolledBack,
        MoveStep::Failed,
    ];

    /// The text stored in the catalog (the tenant's `moving` record, `tenancy.jobs.step`) and
    /// in job reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            MoveStep::Started => "started",
            MoveStep::Fenced => "fenced",
            MoveStep::Copied => "copied",
            MoveStep::Flipped => "flipped",
            MoveStep::RollingBack => "rolling_back",
            MoveStep::Isolated => "isolated",
            MoveStep::Moved => "moved",
            MoveStep::Done => "done",
            MoveStep::RolledBack => "rolled_back",
            MoveStep::Failed => "failed",
        }
    }

    /// Whether a job at this step has ended: `done`, `rolled_back` or `failed`.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            MoveStep::Done | MoveStep::RolledBack | MoveStep::Failed
        )
    }
}

impl fmt::Display for MoveStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MoveStep {
    type Err = Error;
    /// Parses a step's stored name; anything else is [`Error::Invalid`].
    fn from_str(s: &str) -> Result<Self, Error> {
        MoveStep::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| Error::invalid("step", format!("{s:?} is not a step of a move")))
    }
}

/// What a job does (`tenancy.jobs.kind`), stored and shown as `move` or `node_move`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobKind {
    /// A tenant moved to another placement (the hybrid store).
    Move,
    /// A tenant moved to another worker of a Citus cluster.
    NodeMove,
}

impl JobKind {
    /// Every kind of job.
    pub const ALL: [JobKind; 2] = [JobKind::Move, JobKind::NodeMove];

    /// The text stored in `tenancy.jobs.kind` and in job reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Move => "move",
            JobKind::NodeMove => "node_move",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = Error;
    /// Parses `move` or `node_move`; anything else is [`Error::Invalid`].
    fn from_str(s: &str) -> Result<Self, Error> {
        JobKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| Error::invalid("kind", format!("{s:?} is not a kind of job")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_kinds_parse_what_they_show_and_nothing_else() {
        for step in MoveStep::ALL {
            assert_eq!(step.as_str().parse::<MoveStep>().ok(), Some(step));
            assert_eq!(
                serde_json::to_value(step).ok(),
                Some(serde_json::Value::String(step.to_string()))
            );
        }
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>().ok(), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.to_string()))
            );
        }
        for bad in ["copying", "Started", "rolling-back", ""] {
            assert!(bad.parse::<MoveStep>().is_err(), "{bad:?}");
        }
        for bad in ["node-move", "Move", ""] {
            assert!(bad.parse::<JobKind>().is_err(), "{bad:?}");
        }
    }

    /// A move recorded on a tenant's row before the ids and steps were typed reads the same.
    #[test]
    fn a_stored_move_record_reads_and_writes_unchanged() {
        let stored = serde_json::json!({
            "job": "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
            "from": { "kind": "shared" },
            "to": { "kind": "schema", "schema": "t_acme" },
            "step": "rolling_back",
        });
        let mv: Option<Move> = serde_json::from_value(stored.clone()).ok();
        assert_eq!(
            mv.as_ref().map(|m| (m.job.to_string(), m.step)),
            Some((
                "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b".to_owned(),
                MoveStep::RollingBack
            ))
        );
        assert_eq!(mv.and_then(|m| serde_json::to_value(m).ok()), Some(stored));
    }
}
