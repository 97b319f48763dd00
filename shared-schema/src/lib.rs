//! `tenancy-shared-schema`: every tenant's rows in the same tables, told apart by `tenant_id`.
//!
//! Two layers keep tenants apart:
//!
//! 1. **The predicate.** Every statement the domain sends is built by
//!    [`TenantScope`](tenancy_core::TenantScope), which adds `tenant_id = $tenant` to reads,
//!    updates and deletes and writes the tenant id into inserts.
//! 2. **Row-level security beneath it.** Every tenant table has `ENABLE` and
//!    `FORCE ROW LEVEL SECURITY` and a policy comparing `tenant_id` with the transaction-local
//!    setting `tenancy.tenant_id`. Tenant traffic runs as an application role that owns
//!    nothing and is neither superuser nor `BYPASSRLS`, switched to with `SET LOCAL ROLE`.
//!    Both the role and the setting end with the transaction, so nothing survives the
//!    connection's return to the pool (or to PgBouncer in transaction mode).
//!
//! A forgotten predicate is caught by the policy; a forgotten tenant binding sees no rows at
//! all, because the policy compares with a setting that is unset.

mod binding;
mod options;
mod security;
mod store;

pub use options::{Isolation, RlsBinding, SharedSchemaOptions};
pub use store::SharedSchemaStore;
