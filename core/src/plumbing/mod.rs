//! The strategy door: what a strategy crate builds on, and an application never needs.
//!
//! An application imports the crate root (the tenant model, [`TenantStore`](crate::TenantStore),
//! the scope, entity methods, errors, its [`TenantMigrations`](crate::TenantMigrations)). A
//! strategy crate (`tenancy-shared-schema`, `tenancy-separate-schema`, `tenancy-separate-db`,
//! `tenancy-hybrid`) also imports this module:
//!
//! - [`Placements`]: the placement operations a store lends to exports, imports and moves
//!   (build, purge and reach a tenant's tables at a placement), and its catalog pool;
//! - [`citus`]: whether the database is a Citus coordinator, and the refusal of stores that do
//!   not run on one;
//! - [`catalog`]: the queries on `tenancy.tenants`, the templates and the jobs;
//! - [`control`]: the catalog's own migrator, run by every store at connect;
//! - [`transfer`]: export files, checksums, copies between placements, fences, batch deletes;
//! - [`pin`]: the check constraint that pins a schema's or database's tables to its tenant;
//! - [`connect_pool`] with [`PoolSettings`] (a store's [`PoolOptions`] made into one pool's
//!   settings), [`connect_sqlx_pool`], [`LentConnection`];
//! - [`sql`]: statements and advisory locks by name;
//! - [`sync`]: the one policy for a lock a panic poisoned;
//! - [`notices`]: the process's one `LISTEN` loop, which every process-wide cache subscribes to;
//! - [`fault`]: the fault points the crash tests trip.

use async_trait::async_trait;

pub mod catalog;
pub mod citus;
mod connect;
pub mod control;
pub mod fault;
mod lent;
pub mod notices;
pub mod pin;
pub mod replica;
pub mod sql;
pub mod sync;
pub mod transfer;

pub use connect::{
    ConnectionHooks, PoolOptions, PoolSettings, connect_pool, connect_sqlx_pool,
    loopback_without_tls,
};
pub use lent::{ConnectionHome, LentConnection};

use crate::error::Result;
use crate::tenant::{NewTenant, Placement, Tenant};
use transfer::TenantTables;

/// The key of the strategy door: [`TenantStore::placements`](crate::TenantStore::placements)
/// takes it, so that only code that imports this module (a strategy crate, the testkit) can
/// reach a store's placement operations and its catalog pool. An application never names it.
#[derive(Debug, Clone, Copy)]
pub struct StrategyDoor;

// ANCHOR: placements
/// The placement operations of a store, for exports, imports and moves (the hybrid store moves
/// tenants between its three stores through these), and the pool on its catalog. A store hands
/// them out through [`TenantStore::placements`](crate::TenantStore::placements), which takes the
/// [`StrategyDoor`] key: an application that does not import this module cannot reach them.
#[async_trait]
pub trait Placements: Send + Sync {
    /// The pool on the control database that holds the catalog (`tenancy.tenants`).
    fn catalog(&self) -> &sea_orm::DatabaseConnection;

    /// Where this store would place `new` (for separate-db, on the server asked for or the one
    /// with the fewest tenants), recording nothing.
    async fn placement_for(&self, new: &NewTenant) -> Result<Placement>;

    /// The version a tenant's tables get when they are built now: the latest tenant migration.
    fn tenant_version(&self) -> i32;

    /// Builds empty tables for `tenant` (which the catalog holds) at `placement`, one of this
    /// store's, at [`Placements::tenant_version`], clearing first whatever an earlier attempt
    /// left there. The catalog is not changed. Returns the version built.
    async fn build_at(&self, tenant: &Tenant, placement: &Placement) -> Result<i32>;

    /// Removes `tenant`'s rows at `placement` (and the schema or database that held them),
    /// with any fence there. Idempotent; the catalog is not changed.
    async fn purge_at(&self, tenant: &Tenant, placement: &Placement) -> Result<()>;

    /// A direct connection to where `placement` keeps `tenant`'s tables.
    async fn tables_at(&self, tenant: &Tenant, placement: &Placement) -> Result<TenantTables>;
}
// ANCHOR_END: placements
