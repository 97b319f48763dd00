//! Fault points: named places in creating, migrating and deleting a tenant where a test can
//! stop the process, to prove that the next run completes or cleans up what was left.
//!
//! A point does nothing unless the environment variable `TENANCY_FAULT` names it; then the
//! process aborts there, as a crash or a `kill -9` would stop it: no destructor runs, no
//! error path cleans up, and the server rolls back whatever transaction was open. The
//! variable is read once. The points, in the order a tenant meets them:
//!
//! | point | where |
//! |---|---|
//! | `create:registered` | the catalog row exists (`provisioning`), nothing is built |
//! | `create:built` | separate-schema: the schema is built, inside the transaction that marks it ready; separate-db: the database is copied from the template |
//! | `create:pinned` | separate-db: the tables are pinned to the tenant, not yet marked ready |
//! | `migrate:applied` | a tenant's migrations ran, their transaction is not committed |
//! | `migrate:committed` | a tenant's migrations are committed; separate-db: the catalog's copy of the version is not yet updated |
//! | `delete:marked` | the tenant is marked `deleting`, nothing is purged |
//! | `delete:purged` | the rows, schema or database are gone, the catalog row is not |
//! | `move:started` | hybrid: the tenant is `moving`, nothing is built at the target |
//! | `move:built` | the target's empty tables are built, the source is not fenced |
//! | `move:fenced` | the source refuses the tenant's writes, nothing is copied |
//! | `move:copied` | the rows are copied and checked, the catalog still points at the source |
//! | `move:flipped` | the catalog points at the target, the source is not purged |
//! | `move:purged` | the source is purged, the move is not yet ended in the catalog |
//! | `run:recorded` | a run for every tenant recorded one tenant's outcome ([`crate::runner`]) |
//!
//! A point met many times (`run:recorded`) stops the process the `TENANCY_FAULT_AT`th time it
//! is met (default: the first).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fault points of creating, migrating and deleting a tenant, for tests that walk
/// through them ([`MOVE_POINTS`] are a move's).
pub const POINTS: &[&str] = &[
    "create:registered",
    "create:built",
    "create:pinned",
    "migrate:applied",
    "migrate:committed",
    "delete:marked",
    "delete:purged",
];

/// The fault points of a move between placements (`tenancy-hybrid`), in order.
pub const MOVE_POINTS: &[&str] = &[
    "move:started",
    "move:built",
    "move:fenced",
    "move:copied",
    "move:flipped",
    "move:purged",
];

/// Stops the process here if `TENANCY_FAULT` names `point` (the `TENANCY_FAULT_AT`th time it
/// is met). For strategy crates.
pub fn point(point: &'static str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    static AT: OnceLock<usize> = OnceLock::new();
    static MET: AtomicUsize = AtomicUsize::new(0);
    let armed = ARMED.get_or_init(|| std::env::var("TENANCY_FAULT").ok());
    if armed.as_deref() == Some(point) {
        let at = *AT.get_or_init(|| {
            std::env::var("TENANCY_FAULT_AT")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        });
        if MET.fetch_add(1, Ordering::SeqCst) + 1 >= at {
            eprintln!("tenancy: stopped at fault point {point} (TENANCY_FAULT)");
            std::process::abort();
        }
    }
}
