//! Test support for the tenancy workspace.
//!
//! - [`TestDatabase`]: a freshly created database per test on a real PostgreSQL, from
//!   `DATABASE_URL` when set, otherwise on an embedded server started from local binaries.
//!   Dropped after a passing test, kept (and named on stderr) after a failing one.
//! - [`TestServer`]: a PostgreSQL cluster of a test's own on a free port (the second server of
//!   the multi-server tests), which the test may stop and start.
//! - [`conformance`]: the suite every [`TenantStore`](tenancy_core::TenantStore) runs from its
//!   own tests, through [`conformance_tests!`].

pub mod conformance;
mod database;
mod pgbouncer;
mod server;

pub use database::{TestDatabase, admin_url};
pub use pgbouncer::pgbouncer_url;
pub use server::TestServer;
