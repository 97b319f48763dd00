//! The conformance suite: what every [`TenantStore`] must do, whatever its placement.
//!
//! A strategy crate runs it from its integration tests with
//!
//! ```no_run
//! # // no_run: the generated tests need a PostgreSQL server; each strategy crate's
//! # // tests/it runs them.
//! use std::sync::Arc;
//! use tenancy_core::TenantStore;
//! use tenancy_testkit::TestDatabase;
//! use tenancy_testkit::conformance::StoreConfig;
//!
//! async fn store(db: &TestDatabase, config: StoreConfig) -> anyhow::Result<Arc<dyn TenantStore>> {
//!     // Build the store under test on `db.url()`, with `config.migrations()`.
//! #   let _ = (db, config);
//!     todo!()
//! }
//!
//! tenancy_testkit::conformance_tests!(store);
//! # fn main() {}
//! ```
//!
//! where the factory is an async `fn(&TestDatabase, StoreConfig) -> anyhow::Result<Arc<dyn
//! TenantStore>>`. Each check becomes its own `#[tokio::test]` on its own fresh database.
//!
//! The checks live in one file per promise: `lifecycle.rs` (creating, finding, listing and
//! deleting tenants), `domain.rs` (projects and tasks), `bad_input.rs` (what is refused) and
//! `isolation.rs` (no tenant reaches another), `transfer.rs` (export and import), `entities.rs`
//! (sea-orm entities through a scope), `interrupted.rs` (a process stopped at each
//! fault point of creating, migrating and deleting), and on a Citus cluster only `citus.rs`
//! (the tenants really are distributed) and `node_moves.rs` (a tenant moved between workers
//! under load, and stopped at each step); `support.rs` holds what they share.
//! [`conformance_tests!`](crate::conformance_tests) is the one list of the checks.

mod bad_input;
mod citus;
mod domain;
mod entities;
pub mod interrupted;
mod isolation;
mod lifecycle;
mod node_moves;
mod runs;
mod support;
mod transfer;
mod usage;

use std::sync::Arc;

use anyhow::Result;
use futures::future::BoxFuture;
use tenancy_core::TenantStore;
use tenancy_core::migration::TenantMigrations;

use crate::{DatabaseOn, TestDatabase};

pub use bad_input::*;
pub use citus::distributed_on_citus;
pub use domain::*;
pub use entities::*;
pub use interrupted::{
    interrupted_creation_resumes, interrupted_deletion_finishes, interrupted_migration_resumes,
};
pub use isolation::*;
pub use lifecycle::*;
pub use node_moves::{interrupted_node_move_resumes, node_move_refusals, node_move_under_load};
pub use runs::every_tenant_run_finishes_after_a_crash;
pub use support::{rows_anywhere, rows_in};
pub use transfer::*;
pub use usage::usage_and_quota_per_tenant;

/// What a test asks of the store it gets.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The most connections the store may hold to each server.
    pub max_connections: u32,
    /// The tenant migrations, when not the example domain's (a factory passes them to the
    /// store's options).
    pub migrations: Option<TenantMigrations>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_connections: 5,
            migrations: None,
        }
    }
}

impl StoreConfig {
    /// The store's tenant migrations: the configured ones, or the example domain's
    /// (`tenancy-example`), which the checks use.
    pub fn migrations(&self) -> TenantMigrations {
        self.migrations
            .clone()
            .unwrap_or_else(tenancy_example::migrations)
    }
}

/// Builds a store on a test database.
pub type StoreFactory = Arc<
    dyn for<'a> Fn(&'a TestDatabase, StoreConfig) -> BoxFuture<'a, Result<Arc<dyn TenantStore>>>
        + Send
        + Sync,
>;

/// What each conformance check gets: its database and a way to build stores on it.
pub struct Harness {
    /// The check's own database.
    pub db: TestDatabase,
    factory: StoreFactory,
    /// The test's name as the test binary knows it (`module::check`), for re-running it in a
    /// child process ([`interrupted`]).
    test: String,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A store on this test's database.
    pub async fn store(&self, config: StoreConfig) -> Result<Arc<dyn TenantStore>> {
        (self.factory)(&self.db, config).await
    }
}

/// Runs one check on a fresh database; drops the database when the check passes. `test` is
/// the test's path (`module_path!()` and the check's name).
///
/// In a child process started by [`interrupted`]'s checks the check runs on its parent's
/// database instead, and leaves it to the parent.
pub async fn run<F>(check: F, factory: StoreFactory, test: &str) -> Result<()>
where
    F: for<'a> FnOnce(&'a Harness) -> BoxFuture<'a, Result<()>>,
{
    run_on(DatabaseOn::Plain, check, factory, test).await
}

/// [`run`], with the check's database made `on` the test server or the Citus cluster.
pub async fn run_on<F>(on: DatabaseOn, check: F, factory: StoreFactory, test: &str) -> Result<()>
where
    F: for<'a> FnOnce(&'a Harness) -> BoxFuture<'a, Result<()>>,
{
    // The test binary names tests without the crate's own segment.
    let test = test
        .split_once("::")
        .map_or(test, |(_, rest)| rest)
        .to_owned();
    if let Some(name) = interrupted::parent_database() {
        let harness = Harness {
            db: TestDatabase::existing(&name).await?,
            factory,
            test,
        };
        return check(&harness).await;
    }
    let harness = Harness {
        db: TestDatabase::create_on(on).await?,
        factory,
        test,
    };
    match check(&harness).await {
        Ok(()) => harness.db.drop_database().await,
        Err(e) => {
            eprintln!("kept test database {} for inspection", harness.db.name());
            Err(e)
        }
    }
}

/// Generates one `#[tokio::test]` per conformance check for a store factory.
///
/// `conformance_tests!(factory)` generates every check; `conformance_tests!(factory; a, b)`
/// only the named ones. Written `conformance_tests!(citus factory)` (or `(citus factory; a,
/// b)`), each check's database is made on the Citus cluster ([`DatabaseOn::Citus`]).
///
/// The first arm is the one list of the checks: a check is a `pub async fn(&Harness)` in one
/// of the suite's files, and the identifier written here names both the generated test and
/// the function it runs (`conformance::<check>`, re-exported from its file).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@on Plain, $factory);
        // runs.rs: 100 tenants, on one server only (building them on the Citus cluster for
        // every run of the suite would take minutes).
        $crate::conformance_tests!(@on Plain, $factory; every_tenant_run_finishes_after_a_crash);
    };
    (citus $factory:path) => {
        $crate::conformance_tests!(@on Citus, $factory);
        // citus.rs: the one check that only a Citus cluster can pass.
        $crate::conformance_tests!(@on Citus, $factory;
            distributed_on_citus,
            // node_moves.rs
            node_move_under_load, node_move_refusals, interrupted_node_move_resumes,
        );
    };
    (@on $on:ident, $factory:path) => {
        $crate::conformance_tests!(@on $on, $factory;
            // lifecycle.rs
            lifecycle, exclusive_creation_has_one_winner,
            // domain.rs
            projects_crud_and_paging, tasks_crud_and_paging, summary_join,
            // bad_input.rs
            invalid_slugs_write_nothing, unknown_ids_are_not_found, invalid_values_write_nothing,
            // isolation.rs
            isolation_between_tenants, concurrent_tenants_see_only_their_own,
            no_state_survives_checkout, tenant_id_never_changes, delete_leaves_other_tenants,
            deleted_tenant_takes_no_writes,
            // interrupted.rs
            interrupted_creation_resumes, interrupted_migration_resumes,
            interrupted_deletion_finishes,
            // transfer.rs
            export_import_round_trips, corrupted_export_is_refused,
            // entities.rs
            entity_reads_stay_in_the_tenant, entity_bulk_writes_stay_in_the_tenant,
            entity_writes_of_another_tenant_are_refused, read_only_scope_refuses_writes,
            // usage.rs
            usage_and_quota_per_tenant,
        );
    };
    (citus $factory:path; $($check:ident),+ $(,)?) => {
        $crate::conformance_tests!(@on Citus, $factory; $($check),+);
    };
    (@on $on:ident, $factory:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> ::anyhow::Result<()> {
                let factory: $crate::conformance::StoreFactory =
                    ::std::sync::Arc::new(|db, config| ::std::boxed::Box::pin($factory(db, config)));
                $crate::conformance::run_on(
                    $crate::DatabaseOn::$on,
                    |h| ::std::boxed::Box::pin($crate::conformance::$check(h)),
                    factory,
                    concat!(module_path!(), "::", stringify!($check)),
                ).await
            }
        )+
    };
    ($factory:path; $($check:ident),+ $(,)?) => {
        $crate::conformance_tests!(@on Plain, $factory; $($check),+);
    };
}
