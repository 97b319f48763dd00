//! The example SaaS domain of the tenancy workspace: projects, and tasks that belong to a
//! project, written once against a [`TenantScope`](tenancy_core::TenantScope).
//!
//! This crate is an application of `tenancy-core`, not a part of it: core knows no table of
//! its own, and a store provisions, migrates, exports, moves and purges exactly the tables its
//! migrations create. The demo, the benches, the testkit's conformance suite and the book use
//! this domain; a product brings its own in the same shape:
//! - entities ([`project`], [`task`]) with a `tenant_id` column and keys that start with it;
//! - the tenant [`migrations`] ([`migration`]), with unqualified table names, given to a store's
//!   options;
//! - the operations ([`projects`], [`tasks`]), which go through the scope
//!   ([`tenancy_core::entity`], or the scope's builders for the summary join), so the tenant
//!   predicate and the table placement come with every statement.
//!
//! ```no_run
//! # // no_run: needs a PostgreSQL server; the testkit's conformance suite runs the same.
//! # async fn f() -> anyhow::Result<()> {
//! use tenancy_core::{NewTenant, Slug, TenantStore};
//! use tenancy_example::projects::{self, NewProject};
//! use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
//!
//! let options = SharedSchemaOptions {
//!     migrations: tenancy_example::migrations(),
//!     ..Default::default()
//! };
//! let store = SharedSchemaStore::connect("postgres://postgres@127.0.0.1/app", options).await?;
//! let acme = store.create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme")).await?;
//! let scope = store.scope(&acme).await?;
//! projects::create(&scope, NewProject::named("Launch")).await?;
//! scope.commit().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod migration;
pub mod project;
pub mod projects;
pub mod seed;
pub mod task;
pub mod tasks;

use tenancy_core::TextRule;
use tenancy_core::migration::TenantMigrations;

/// The table of [`projects`] (a plan limits its rows by this name).
pub const PROJECTS: &str = "projects";
/// The table of [`tasks`] (a plan limits its rows by this name).
pub const TASKS: &str = "tasks";

/// The domain's tenant tables, in creation order (parents first). Every one has a
/// `tenant_id` column.
pub const TENANT_TABLES: [&str; 2] = [PROJECTS, TASKS];

/// The domain's tenant migrations, for a store's options
/// (`migrations: tenancy_example::migrations()`).
pub fn migrations() -> TenantMigrations {
    use tenancy_core::sea_orm_migration::MigratorTrait;
    TenantMigrations::new(migration::Migrator::migrations())
}

// ANCHOR: rules
/// A project's name: not blank, at most 200 characters. The one definition of the rule: the
/// domain checks it ([`TextRule::check`]) and the demo's OpenAPI document publishes it
/// ([`TextRule::schema`]).
pub const PROJECT_NAME: TextRule = TextRule::required(200);
/// A project's description: may be empty, at most 4,000 characters.
pub const PROJECT_DESCRIPTION: TextRule = TextRule::optional(4000);
/// A task's title: not blank, at most 500 characters.
pub const TASK_TITLE: TextRule = TextRule::required(500);
// ANCHOR_END: rules
