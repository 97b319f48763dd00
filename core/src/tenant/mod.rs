//! The tenant model: ids, validated slugs, where a tenant lives and what state it is in.

// One file a job: `names` (the ids, the slug, and the checks and quoting of names that go into
// SQL), `placement` (where a tenant lives), `moves` (a move in progress, and the steps and kinds
// of the jobs that drive moves) and `record` (the tenant as the catalog records it, its states,
// and what creating one needs).
mod moves;
mod names;
mod placement;
mod record;

pub use moves::{JobKind, Move, MoveStep};
pub use names::{JobId, Slug, TenantId, check_identifier, quote_ident, storable};
pub use placement::{Placement, PlacementKind};
pub use record::{NewTenant, Tenant, TenantState};
