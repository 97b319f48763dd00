//! # tenancy-separate-db: a database per tenant
//!
//! Each tenant's tables live in a PostgreSQL database of their own, on one of several
//! servers; the catalog in the control database records which. Isolation is the database
//! boundary: a connection to tenant A's database cannot name tenant B's tables at all.
//!
//! - **Placement**: a new tenant goes to the server with the fewest tenants unless the caller
//!   names one ([`tenancy_core::NewTenant::server`]). Its database is named from the validated
//!   slug and always quoted.
//! - **Routing**: a router opens connections to a tenant database one at a time ("slots",
//!   pools of one connection), as its traffic needs them and up to
//!   `connections_per_database`, under a fixed budget of connections per server; idle slots
//!   are closed, least recently used first, to make room, and a request that finds every
//!   slot busy waits (bounded) for one. See the `router` module.
//! - **Provisioning**: `CREATE DATABASE ... TEMPLATE` from a pre-migrated template database
//!   on the tenant's server, never a replay of the migrations; crash-safe through the
//!   catalog's `provisioning` state.
//! - **Migrations**: each tenant database (and each template) records its version in a
//!   one-row table, updated in the same transaction as the migration, so a run is resumable
//!   and idempotent; bounded concurrency within the budget.
//! - **Deletion**: mark `deleting`, close its slots, `DROP DATABASE ... WITH (FORCE)`, remove.
//! - **Outages**: a server that does not answer makes its tenants fail with
//!   [`tenancy_core::Error::Unavailable`] while the others keep working; it is tried again
//!   after `retry_after`, so it recovers without a restart.
//!
//! ```no_run
//! # // no_run: needs two PostgreSQL servers; tests/it/two_servers.rs runs them.
//! # async fn demo() -> tenancy_core::Result<()> {
//! use tenancy_core::{NewTenant, Slug, TenantStore};
//! use tenancy_separate_db::{SeparateDbOptions, SeparateDbStore, ServerConfig};
//! use tenancy_example::task;
//! use tenancy_core::entity::SelectInTenant;
//! use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
//!
//! let store = SeparateDbStore::connect(
//!     "postgres://postgres@127.0.0.1:5432/tenancy",
//!     SeparateDbOptions {
//!         // The application's own tenant migrations (here the workspace's example domain).
//!         migrations: tenancy_example::migrations(),
//!         servers: vec![ServerConfig {
//!             name: "second".into(),
//!             url: "postgres://postgres@127.0.0.1:5433/postgres".into(),
//!             tenant_url: None,
//!             replica: None,
//!         }],
//!         ..SeparateDbOptions::default()
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

mod migrate;
mod mutex;
mod options;
mod placement;
mod router;
mod server;
mod store;
mod template;

pub use options::{SeparateDbOptions, ServerConfig};
pub use store::SeparateDbStore;
