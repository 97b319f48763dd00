//! `tenancy-separate-schema`: each tenant's tables in a schema of its own, in one database.
//!
//! - **Routing**: a scope names every table with the tenant's schema (`"tenant_acme".projects`).
//!   No `search_path` is set, so nothing can survive the connection's return to the pool, and a
//!   read costs one round trip like a read of a plain table. The alternatives (a transaction
//!   with `SET LOCAL search_path`, or a pool per tenant with `search_path` set at connect) cost
//!   round trips or connections; see the book's chapter on this strategy.
//! - **Provisioning** copies the structure of a pre-migrated template schema
//!   (`CREATE TABLE ... (LIKE template.t INCLUDING ALL EXCLUDING INDEXES)`, then its keys,
//!   indexes and foreign keys under the template's own names) in the same
//!   transaction that marks the tenant `ready`: a half-built schema never exists.
//! - **Migrations** run per schema with bounded concurrency, each tenant in its own transaction
//!   with its version recorded in the catalog, so a failure stops no one else and a rerun
//!   resumes; with nothing pending a run is one catalog query.
//! - **Memory**: PostgreSQL caches every relation a connection has touched, so pooled
//!   connections are recycled after their lifetime (`pool.max_lifetime` in
//!   [`SeparateSchemaOptions`], 300 s by default).
//! - **On Citus** (the extension found in the database at connect): each tenant schema is
//!   made a distributed schema, placed whole on one worker; the template and the catalog stay
//!   on the coordinator. New migrations are first tried in a distributed schema that is rolled
//!   back, so what Citus refuses there (inheritance, a foreign key out of the schema, several
//!   DDL statements in one message) is [`tenancy_core::Error::Unsupported`] before the
//!   template or any tenant changes.
//!
//! ```no_run
//! # // no_run: needs a PostgreSQL server; the conformance suite runs the same against one.
//! # async fn demo() -> tenancy_core::Result<()> {
//! use tenancy_core::{NewTenant, Slug, TenantStore};
//! use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
//! use tenancy_example::task;
//! use tenancy_core::entity::SelectInTenant;
//! use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
//!
//! let store = SeparateSchemaStore::connect(
//!     "postgres://postgres@127.0.0.1:5432/tenancy",
//!     // The application's own tenant migrations (here the workspace's example domain).
//!     SeparateSchemaOptions {
//!         migrations: tenancy_example::migrations(),
//!         ..SeparateSchemaOptions::default()
//!     },
//! )
//! .await?;
//! let acme = store.create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme")).await?;
//! let scope = store.scope(&acme).await?;
//! let open = task::Entity::find()
//!     .filter(task::Column::Done.eq(false))
//!     .all_in(&scope)
//!     .await?;
//! scope.commit().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod citus;
mod options;
mod store;
mod template;

pub use options::SeparateSchemaOptions;
pub use store::SeparateSchemaStore;
