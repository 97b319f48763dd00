//! `tenancy-core`: what every multi-tenancy strategy in this workspace shares.
//!
//! - the tenant model ([`TenantId`], [`Slug`], [`Tenant`], [`Placement`], [`TenantState`]);
//! - the [`TenantStore`] contract and the [`TenantScope`] handle, the only door to tenant data;
//! - the one [`Error`] type;
//! - the example [`domain`] (projects and tasks), written once against the scope, with its
//!   sea-orm entities ([`domain::project`], [`domain::task`]);
//! - sea-orm [`entity`] methods through a scope (`all_in`, `insert_in`, `exec_in`), which
//!   filter, stamp and place every statement for the scope's tenant;
//! - the [`migration`]s: the control-plane catalog and the tenant tables;
//! - keyset paging ([`Page`], [`PageRequest`]) for every list;
//! - per-tenant export and import ([`transfer::export_tenant`], [`transfer::import_tenant`]).
//!
//! For strategy crates only (an application never needs them): the [`catalog`] queries, the
//! [`sql`] helpers (statements, advisory locks by name), [`connect_pool`] with
//! [`PoolSettings`], [`connect_sqlx_pool`] and [`LentConnection`], the [`fault`] points, and the constructors of
//! [`TenantScope`] (`in_transaction`, `autocommit`, `on_connection`).
//!
//! Domain code takes a scope, whatever strategy made it:
//!
//! ```no_run
//! # // no_run: needs a scope, which a store makes (see a strategy crate's front page).
//! use tenancy_core::domain::task;
//! use tenancy_core::entity::SelectInTenant;
//! use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
//!
//! async fn open_tasks(scope: &tenancy_core::TenantScope) -> tenancy_core::Result<Vec<task::Model>> {
//!     task::Entity::find()
//!         .filter(task::Column::Done.eq(false))
//!         .all_in(scope)
//!         .await
//! }
//! ```
//!
//! Core depends on no strategy crate.

#![warn(missing_docs)]

pub mod catalog;
mod connect;
pub mod domain;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod entity;
mod error;
pub mod fault;
mod lent;
pub mod migration;
mod page;
mod scope;
pub mod sql;
mod store;
mod tenant;
pub mod transfer;

pub use connect::{
    ConnectionHooks, PoolSettings, connect_pool, connect_sqlx_pool, loopback_without_tls,
};
pub use domain::TENANT_TABLES;
pub use error::{Error, Result, SlugError, is_undefined_table};
pub use lent::{ConnectionHome, LentConnection};
pub use page::{Page, PageRequest};
pub use scope::{ScopeMode, StatementObserver, TENANT_ID, TableNamespace, TenantScope};
pub use store::{
    Connections, MigrateOptions, MigrationOutcome, MigrationReport, Strategy, TenantMigration,
    TenantStore, UnscopedView,
};
pub use tenant::{
    Move, MoveStep, NewTenant, Placement, Slug, Tenant, TenantId, TenantState, check_identifier,
    quote_ident,
};

pub use sea_orm;
pub use sea_orm_migration;
