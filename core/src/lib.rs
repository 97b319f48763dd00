//! `tenancy-core`: what every multi-tenancy strategy in this workspace shares. It knows no
//! application table: an application brings its own entities and tenant migrations.
//!
//! Two doors:
//!
//! - **The application door**, this crate's root: the tenant model ([`TenantId`], [`Slug`],
//!   [`Tenant`], [`PlacementKind`], [`Placement`], [`TenantState`]); the [`TenantStore`] an
//!   application calls (create, look up, list, delete, migrate, export, import, jobs) and the
//!   [`TenantScope`] handle it gives, the only door to tenant data; sea-orm [`entity`] methods
//!   through a scope (`all_in`, `insert_in`, `exec_in`), which filter, stamp and place every
//!   statement for the scope's tenant; the application's [`TenantMigrations`]; the pool
//!   settings every store's options share ([`PoolOptions`]); keyset paging ([`Page`],
//!   [`PageRequest`]); the one [`Error`] type.
//! - **The strategy door**, [`plumbing`]: what a strategy crate builds on (the catalog, jobs,
//!   transfer, lent connections, pool settings, fault points, and the [`Placements`](plumbing::Placements) a store
//!   lends to exports, imports and moves). An application never imports it.
//!
//! Domain code takes a scope, whatever strategy made it. With an application's own entity
//! (here `invoice`, from the workspace's `examples/invoices`):
//!
//! ```no_run
//! # // no_run: needs a scope, which a store makes (see a strategy crate's front page).
//! # mod invoice {
//! #     use tenancy_core::sea_orm::entity::prelude::*;
//! #     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//! #     #[sea_orm(table_name = "invoices")]
//! #     pub struct Model {
//! #         #[sea_orm(primary_key, auto_increment = false)]
//! #         pub tenant_id: Uuid,
//! #         #[sea_orm(primary_key, auto_increment = false)]
//! #         pub id: Uuid,
//! #         pub paid: bool,
//! #     }
//! #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! #     pub enum Relation {}
//! #     impl ActiveModelBehavior for ActiveModel {}
//! # }
//! use tenancy_core::entity::SelectInTenant;
//! use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
//!
//! async fn unpaid(scope: &tenancy_core::TenantScope) -> tenancy_core::Result<Vec<invoice::Model>> {
//!     invoice::Entity::find()
//!         .filter(invoice::Column::Paid.eq(false))
//!         .all_in(scope)
//!         .await
//! }
//! ```
//!
//! Core depends on no strategy crate.

#![warn(missing_docs)]

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod entity;
mod error;
pub mod migration;
mod page;
pub mod plumbing;
pub mod quota;
pub mod runner;
mod scope;
mod store;
mod strategy;
mod tenant;
mod text;
pub mod usage;

// Inside core, the strategy door's modules by their short names.
pub(crate) use plumbing::{catalog, sql, transfer};

pub use error::{Error, Result, SlugError, is_undefined_table};
pub use migration::TenantMigrations;
pub use page::{Page, PageRequest};
pub use plumbing::PoolOptions;
pub use plumbing::catalog::Job;
pub use plumbing::replica::{Lsn, ReplicaOptions};
pub use plumbing::transfer::{ExportFile, Manifest, OnProgress, Progress, TableLayout};
pub use quota::{Limits, Plan, Plans};
pub use runner::{Outcome, RunOptions, RunReport, run_for_every_tenant};
pub use scope::{ScopeMode, StatementObserver, TENANT_ID, TableNamespace, TenantScope};
pub use store::{
    Connections, MigrateOptions, MigrationOutcome, MigrationReport, Strategy, TenantMigration,
    TenantStore, UnscopedView,
};
pub use tenant::{
    JobId, JobKind, Move, MoveStep, NewTenant, Placement, PlacementKind, Slug, Tenant, TenantId,
    TenantState, check_identifier, quote_ident, storable,
};
pub use text::{BLANK, TextRule};
pub use usage::{Storage, TenantUsage};

pub use sea_orm;
pub use sea_orm_migration;
