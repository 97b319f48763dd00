//! `tenancy-core`: what every multi-tenancy strategy in this workspace shares.
//!
//! - the tenant model ([`TenantId`], [`Slug`], [`Tenant`], [`Placement`], [`TenantState`]);
//! - the [`TenantStore`] contract and the [`TenantScope`] handle, the only door to tenant data;
//! - the one [`Error`] type;
//! - the example [`domain`] (projects and tasks), written once against the scope;
//! - the [`migration`]s: the control-plane catalog and the tenant tables;
//! - the [`catalog`] queries the strategies share.
//!
//! Core depends on no strategy crate.

pub mod catalog;
mod connect;
pub mod domain;
#[cfg(feature = "embedded")]
pub mod embedded;
mod error;
pub mod migration;
mod scope;
mod store;
mod tenant;

pub use connect::loopback_without_tls;
pub use error::{Error, Result, SlugError, sqlstate};
pub use scope::{ScopeGuard, ScopeMode, TENANT_ID, TableNamespace, TenantScope};
pub use store::{
    Connections, MigrateOptions, MigrationOutcome, MigrationReport, Strategy, TenantMigration,
    TenantStore, UnscopedView,
};
pub use tenant::{NewTenant, Placement, Slug, Tenant, TenantId, TenantState, quote_ident};

/// The domain's tenant tables, in creation order. Every one has a `tenant_id` column.
pub const TENANT_TABLES: [&str; 2] = ["projects", "tasks"];

pub use sea_orm;
pub use sea_orm_migration;
