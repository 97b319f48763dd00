//! `tenancy-shared-schema`: every tenant's rows in the same tables, told apart by `tenant_id`.
//!
//! Two layers keep tenants apart:
//!
//! 1. **The predicate.** Every statement the domain sends goes through
//!    [`TenantScope`](tenancy_core::TenantScope) (sea-orm entities with
//!    [`tenancy_core::entity`], or the scope's builders), which adds `tenant_id = $tenant` to
//!    reads, updates and deletes and writes the tenant id into inserts.
//! 2. **Row-level security beneath it.** Every tenant table has `ENABLE` and
//!    `FORCE ROW LEVEL SECURITY` and a policy comparing `tenant_id` with the setting
//!    `tenancy.tenant_id`. Tenant traffic runs as an application role that owns nothing and is
//!    neither superuser nor `BYPASSRLS`. The setting is bound per [`RlsBinding`]: on a direct
//!    connection it stays on the connection between scopes of one tenant and is written again
//!    when another tenant takes the connection (a warm read is one round trip); behind a
//!    transaction pooler it is set in each scope's transaction and ends with it. Either way no
//!    connection goes back to the pool with a tenant on it.
//!
//! A forgotten predicate is caught by the policy; a forgotten tenant binding sees no rows at
//! all, because the policy compares with a setting that is unset.
//!
//! On a Citus coordinator (the extension found in the database at connect) the same tables
//! are distributed by `tenant_id`, co-located, with the other tables of `public` as reference
//! tables; every scope binds its tenant with `SET LOCAL` sent on to the workers, and the
//! predicate keeps every scoped statement on one shard. See
//! [`SharedSchemaStore::on_citus`].
//!
//! ```no_run
//! # // no_run: needs a PostgreSQL server; the conformance suite runs the same against one.
//! # async fn demo() -> tenancy_core::Result<()> {
//! use tenancy_core::{NewTenant, Slug, TenantStore};
//! use tenancy_shared_schema::{SharedSchemaOptions, SharedSchemaStore};
//! use tenancy_example::task;
//! use tenancy_core::entity::SelectInTenant;
//! use tenancy_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
//!
//! let store = SharedSchemaStore::connect(
//!     "postgres://postgres@127.0.0.1:5432/tenancy",
//!     // The application's own tenant migrations (here the workspace's example domain).
//!     SharedSchemaOptions {
//!         migrations: tenancy_example::migrations(),
//!         ..SharedSchemaOptions::default()
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

mod binding;
mod citus;
mod options;
mod security;
mod store;

pub use options::{Isolation, RlsBinding, SharedSchemaOptions};
pub use store::SharedSchemaStore;
