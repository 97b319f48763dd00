//! Test support for the tenancy workspace.
//!
//! - [`TestDatabase`]: a freshly created database per test on a real PostgreSQL, from
//!   `DATABASE_URL` when set, otherwise on an embedded server started from local binaries.
//!   Dropped after a passing test, kept (and named on stderr) after a failing one.
//! - [`TestServer`]: a PostgreSQL cluster of a test's own on a free port (the second server of
//!   the multi-server tests), which the test may stop and start.
//! - [`Replicated`]: a primary of a test's own and a streaming replica made from it with
//!   `pg_basebackup -R`, whose replay the test can pause, and which it can stop and start.
//! - [`DatabaseOn::Citus`]: the same on a Citus cluster (a coordinator and two workers of the
//!   test process's own, stopped when it ends, or `CITUS_URL`).
//! - [`fault_report`]: where the fault tests write what they counted.
//! - [`conformance`]: the suite every [`TenantStore`](tenancy_core::TenantStore) runs from its
//!   own tests, through [`conformance_tests!`].

#![warn(missing_docs)]

mod citus;
pub mod conformance;
mod database;
mod pgbouncer;
mod replica;
mod server;

pub use database::{DatabaseOn, TestDatabase, admin_url, assert_no_schema};
pub use pgbouncer::pgbouncer_url;
pub use replica::Replicated;
pub use server::TestServer;

/// Writes a fault test's counts to `target/fault-reports/<name>.json` (which `.ci/run`
/// prints) and to stderr.
pub fn fault_report(name: &str, counts: &serde_json::Value) -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fault-reports");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(counts)?;
    std::fs::write(dir.join(format!("{name}.json")), &text)?;
    eprintln!("{name}: {text}");
    Ok(())
}
